"""Property tests of the policy loader: the project's own example files, mutated, give a located
error or a correct result, never a traceback (issue 17, item 9).

"Correct" is checked against the second parser the audit trail uses (`history.parse_policy_file`,
libyaml first): both must accept the same files with the same objects and report the same errors.

Bounded for the suite (`PATCHCTL_FUZZ_EXAMPLES`, default 200 examples, a few seconds, derandomized
so CI is reproducible); `docs/fuzzing.md` gives the longer run to do by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.sources import history
from controller.sources.documents import MAX_FILE_BYTES
from controller.sources.loading import POLICY_DIRS, YAML_SUFFIXES, SourceFile, load_policy
from controller.testing import PROJECT_ROOT

EXAMPLES = int(os.environ.get("PATCHCTL_FUZZ_EXAMPLES", "200"))
RANDOM = os.environ.get("PATCHCTL_FUZZ_RANDOM", "") == "1"  # a fresh seed each run (by hand)

# What the references of every example object resolve against: loaded with each mutated file.
CONTEXT = (
    "inventory/tenants.yaml",
    "inventory/groups/acme.yaml",
    "inventory/groups/retail.yaml",
    "inventory/groups/logistics.yaml",
    "policies/scripts/linux.yaml",
    "policies/scripts/windows.yaml",
)

# Refusals of a whole file, which have no line to point at.
FILE_LEVEL = ("file is ", "YAML nesting is too deep", "a document expands to more than")

# The catch-all of `loading.validate_document`: an exception no validator should let out.
CATCH_ALL = "cannot be validated ("

# Text that has broken YAML readers before: impossible dates and times, Python tags, binary,
# numbers YAML reads otherwise than written, huge numbers, merge keys and aliases, flow
# indicators, control characters, booleans of YAML 1.1, odd time zones and durations.
TOKENS = [
    "2027-02-30",
    "2027-13-01",
    "2027-01-31T25:00:00Z",
    "2027-01-31 10:00:00 +99:00",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!!binary AAAA",
    "!!binary '%%%'",
    "!!timestamp x",
    "!!int x",
    "!!float x",
    "!!set {a}",
    "!!omap [a: 1]",
    "!!str",
    "!!map",
    "!!seq",
    "!custom",
    "0777",
    "0o17",
    "0x1F",
    "1:30",
    "1_000",
    "9" * 5000,
    "-" + "9" * 400,
    "1e999",
    ".nan",
    ".inf",
    "-.inf",
    "~",
    "null",
    "yes",
    "no",
    "on",
    "off",
    "<<: *a",
    "&a",
    "*a",
    "*missing",
    "<<",
    "? ",
    "- ",
    ": ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "#",
    "|",
    ">",
    "'",
    '"',
    "%YAML 1.1",
    "---",
    "...",
    "\t",
    "\x00",
    "\x85",
    "\ufeff",
    "\u2028",
    "\u200b",
    "\u202e",
    "Europe",
    "x" * 300,
    "../../etc/passwd",
    "0s",
    "99999999999999999999d",
    "-1h",
    "101%",
    "-5%",
    "0 2 * * SUN#9",
    "0 2 L * *",
    "acme//retail",
    "ACME",
    "",
    " ",
]


def corpus() -> dict[str, bytes]:
    """Every policy file of the project's example repository, by path."""
    found = {}
    for top in POLICY_DIRS:
        for path in sorted((PROJECT_ROOT / top).rglob("*")):
            if path.is_file() and path.name.endswith(YAML_SUFFIXES):
                found[path.relative_to(PROJECT_ROOT).as_posix()] = path.read_bytes()
    return found


FILES = corpus()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    """One example file with one to four mutations: tokens put in, lines dropped, duplicated,
    swapped or re-indented, bytes cut out or flipped."""
    path = draw(st.sampled_from(sorted(FILES)))
    data = FILES[path]
    for _ in range(draw(st.integers(1, 4))):
        lines = data.split(b"\n")
        at = draw(st.integers(0, len(lines) - 1))
        how = draw(st.sampled_from(("token", "replace", "drop", "dup", "swap", "indent", "bytes")))
        if how == "token":
            column = draw(st.integers(0, len(lines[at])))
            token = draw(st.sampled_from(TOKENS)).encode("utf-8", "surrogatepass")
            lines[at] = lines[at][:column] + token + lines[at][column:]
        elif how == "replace":  # a value swapped for a token: `key: <token>`
            key, sep, _ = lines[at].partition(b": ")
            token = draw(st.sampled_from(TOKENS)).encode()
            lines[at] = key + (sep or b": ") + token
        elif how == "drop":
            del lines[at]
        elif how == "dup":  # a key written twice, at the same or another place
            lines.insert(draw(st.integers(0, len(lines))), lines[at])
        elif how == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif how == "indent":
            lines[at] = b" " * draw(st.integers(0, 6)) + lines[at].lstrip(b" ")
        else:
            blob = draw(st.binary(max_size=8))
            start = draw(st.integers(0, len(data)))
            cut = draw(st.integers(0, 8))
            data = data[:start] + blob + data[start + cut :]
            continue
        data = b"\n".join(lines)
    return path, data[:MAX_FILE_BYTES]


def sources(path: str, data: bytes) -> list[SourceFile]:
    """The mutated file and the example files its references need (unchanged)."""
    found = {name: SourceFile(name, FILES[name]) for name in CONTEXT}
    found[path] = SourceFile(path, data)
    return list(found.values())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written outside tmp dirs
    derandomize=not RANDOM,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated())
def test_a_mutated_file_gives_a_located_error_or_the_same_result_by_both_parsers(
    case: tuple[str, bytes],
) -> None:
    """No traceback; each error names a file and a line; both parsers agree on the outcome."""
    check(*case)


def check(path: str, data: bytes) -> None:
    """The property: located errors (none from the catch-all), or the same objects by both."""
    files = sources(path, data)
    loaded = load_policy(files, revision=None)
    tree = history.PolicyTree()
    for source in files:
        tree.replace(source.path, history.parse_policy_file(source))
    errors = [str(p) for p in loaded.errors]
    unlocated = [
        str(p)
        for p in loaded.errors
        if p.path not in {f.path for f in files}
        or (p.position is None and not p.message.startswith(FILE_LEVEL))
    ]
    assert ([], []) == (unlocated, [e for e in errors if CATCH_ALL in e])
    assert errors == list(tree.errors())
    if loaded.state is not None:
        fast = history.state_of(tree.files, None)
        assert loaded.state.objects == fast.objects


# Values put into a document's structure: what a schema sees after YAML, beyond what text
# mutations reach (most of those break the YAML before any validator runs).
SCALARS = (
    st.text(max_size=20)
    | st.sampled_from(TOKENS[:40])
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.none()
    | st.dates()
    | st.datetimes()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(value: object, here: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    found = [here]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*here, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*here, index))
    return found


@st.composite
def restructured(draw: st.DrawFn) -> tuple[str, bytes]:
    """One example document with a value replaced, a field removed or an unknown one added,
    written back as YAML (the other documents of its file unchanged)."""
    path = draw(st.sampled_from(sorted(FILES)))
    documents = list(yaml.safe_load_all(FILES[path]))
    index = draw(st.integers(0, len(documents) - 1))
    target = draw(st.sampled_from(_paths(documents[index])[1:]))
    parent = documents[index]
    for part in target[:-1]:
        parent = parent[part]
    how = draw(st.sampled_from(("replace", "remove", "add")))
    if how == "replace":
        parent[target[-1]] = draw(VALUES)
    elif how == "remove":
        del parent[target[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
    else:
        parent.append(draw(VALUES))
    return path, yaml.safe_dump_all(documents, allow_unicode=True).encode()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not RANDOM,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(restructured())
def test_a_restructured_document_gives_a_located_error_or_the_same_result_by_both_parsers(
    case: tuple[str, bytes],
) -> None:
    """Validators see every kind of value; none lets an exception out, and both parsers agree."""
    check(*case)


def test_the_corpus_is_the_example_repository() -> None:
    """The fuzzer starts from valid files: the example repository, which loads cleanly."""
    loaded = load_policy([SourceFile(p, d) for p, d in FILES.items()], revision=None)
    assert ([], True) == ([str(p) for p in loaded.errors], len(FILES) > 10)
    assert all(Path(PROJECT_ROOT, p).is_file() for p in CONTEXT)
