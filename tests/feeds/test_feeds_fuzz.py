"""Property-based fuzzing of every feed importer over mutated real-format fixtures (issue 17, item 9).

The invariant: reading a mutated document gives located errors or correct records, never a
traceback or a hang, and what is read survives the catalogue (its JSON form, applicability, and one
import transaction that lands all of it). Mutations work on bytes (flips, cuts, splices) and on the
structure (a JSON value, an XML attribute or element, a deb822 line replaced by a hostile one), so
most examples stay close enough to the format to reach the record-level code.

Bounded for `make test` (a few seconds in all); `PATCHCTL_FUZZ_EXAMPLES=2000` runs longer, see
docs/feeds.md ("Fuzzing the importers").
"""

from __future__ import annotations

import copy
import json
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.core.applicability import (
    ApplicabilityIndex,
    InstalledPackage,
    Inventory,
    detect_missing,
)
from controller.core.patches import from_dict, to_dict
from controller.feeds import FeedResult, read_feed
from controller.kinds.common import OsFamily
from controller.kinds.feeds import FeedFormat
from controller.runtime import feeds as runtime_feeds
from controller.store import catalogue, open_store

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = int(os.environ.get("PATCHCTL_FUZZ_EXAMPLES", "15"))
# The same cases on every run, so that CI is reproducible (docs/fuzzing.md); `=1` draws a
# fresh seed each run, for a longer search by hand
RANDOM = os.environ.get("PATCHCTL_FUZZ_RANDOM", "") == "1"
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=timedelta(seconds=10),  # a hang is a failure, not a slow example
    database=None,  # nothing written outside tmp dirs
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# (format, fixture, release): every importer, every syntax it reads.
DOCUMENTS = [
    pytest.param(FeedFormat.OSV, "osv/USN-9001-1.json", None, id="osv-ubuntu"),
    pytest.param(FeedFormat.OSV, "osv/DSA-9002-1.json", None, id="osv-debian"),
    pytest.param(FeedFormat.OSV, "osv/ALSA-2099-0001.json", None, id="osv-almalinux"),
    pytest.param(FeedFormat.CSAF, "csaf/rhsa-2099_0100.json", None, id="csaf"),
    pytest.param(FeedFormat.MSRC, "msrc/cvrf-2099-Jan.xml", None, id="msrc-xml"),
    pytest.param(FeedFormat.MSRC, "msrc/cvrf-2099-Feb.json", None, id="msrc-json"),
    pytest.param(FeedFormat.UPDATEINFO, "updateinfo/rocky9-updateinfo.xml", None, id="updateinfo"),
    pytest.param(
        FeedFormat.DEB_PACKAGES,
        "debpackages/bookworm-security-main-amd64-Packages",
        "debian:12",
        id="deb-packages",
    ),
    pytest.param(FeedFormat.NATIVE, "native/catalogue.yaml", None, id="native-yaml"),
    pytest.param(FeedFormat.NATIVE, "native/wrapped.json", None, id="native-json"),
]

# Values that broke importers elsewhere: impossible and out-of-range dates, epoch milliseconds,
# non-JSON numbers as text, huge numbers, control characters, version strings no scheme parses,
# and the identifiers the resolvers look for.
HOSTILE = st.sampled_from(
    [
        "",
        " ",
        "0",
        "-1",
        "1700000000000",
        "99999999999999999999",
        "2024-02-30",
        "2027-02-30T00:00:00Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "NaN",
        "Infinity",
        "9" * 5000,
        "²",
        "\x00",
        "\u2028",
        "a" * 300,
        "1:",
        ":1",
        "1.0-",
        "~~",
        "-",
        "::",
        "pkg:",
        "pkg:rpm/",
        "pkg:rpm/redhat/x@?arch=",
        "pkg:deb/debian/x@1.0?distro=debian-",
        "cpe:/o:redhat:enterprise_linux:",
        "cpe:2.3:o:debian:debian_linux:x",
        "CSAFPID-0002",
        "x-1:2-3.el9.x86_64",
        "10.0.17763.x",
        "KB",
        "Ubuntu:",
        "Debian:12:",
        "Red Hat::",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | HOSTILE,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)


def hosts() -> list[Inventory]:
    """A few hosts of every family the fixtures name, with old and unparseable versions."""
    names = (
        "openssh",
        "openssh-client",
        "libexpat1",
        "expat",
        "podman",
        "c-ares",
        "openssl",
        "bash",
        "kernel",
    )
    versions = (("0.1", "amd64"), ("0:0.1-1.el9", "x86_64"), ("not a version!", ""), ("", ""))
    packages = tuple(
        InstalledPackage(name, version, arch, source=name)
        for name in names
        for version, arch in versions
    )
    releases = (
        "debian:12",
        "ubuntu:24.04",
        "ubuntu:16.04",
        "almalinux:9",
        "rocky:9",
        "rhel:9",
        "alpine:3.18",
    )
    found = [
        Inventory(os=OsFamily.LINUX, release=release, packages=packages) for release in releases
    ]
    found += [
        Inventory(os=OsFamily.WINDOWS, os_build=build)
        for build in ("10.0.17763.1", "10.0.19045.1", "x")
    ]
    return found


HOSTS = hosts()


def check(result: FeedResult, path: Path) -> None:
    """The invariant: located problems, and records that survive the catalogue and applicability."""
    for problem in (*result.errors, *result.warnings):
        assert (str(path), True) == (problem.file, bool(problem.message.strip()))
    for record in result.records:
        stored = json.loads(json.dumps(to_dict(record), allow_nan=False))  # PostgreSQL refuses NaN
        assert record == from_dict(stored)
    index = ApplicabilityIndex(result.records)
    for host in HOSTS:
        detect_missing(index, host)
    assert result == read_feed(path, FORMATS[path.name], release=RELEASES.get(path.name))


FORMATS: dict[str, FeedFormat] = {}
RELEASES: dict[str, str] = {}


def target(tmp_path: Path, fmt: FeedFormat, fixture: str, release: str | None) -> Path:
    path = tmp_path / Path(fixture).name
    FORMATS[path.name] = fmt
    if release:
        RELEASES[path.name] = release
    return path


# --- byte mutations ----------------------------------------------------------------------------


def mutate_bytes(data: st.DataObject, raw: bytes) -> bytes:
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        where = data.draw(st.integers(0, max(len(out) - 1, 0)), label="at")
        operation = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate", "splice"]))
        if operation == "flip" and out:
            out[where] ^= 1 << data.draw(st.integers(0, 7))
        elif operation == "cut":
            del out[where : where + data.draw(st.integers(1, 64))]
        elif operation == "insert":
            out[where:where] = data.draw(st.binary(max_size=16) | HOSTILE.map(str.encode))
        elif operation == "truncate":
            del out[where:]
        else:
            start = data.draw(st.integers(0, max(len(out) - 1, 0)))
            out[where:where] = out[start : start + data.draw(st.integers(1, 200))]
    return bytes(out)


@pytest.mark.parametrize(("fmt", "fixture", "release"), DOCUMENTS)
@FUZZ
@given(data=st.data())
def test_mutated_bytes_give_located_errors_or_records(
    tmp_path: Path, fmt: FeedFormat, fixture: str, release: str | None, data: st.DataObject
) -> None:
    """Bit flips, cuts and splices of a real-format document never raise past the importer."""
    path = target(tmp_path, fmt, fixture, release)
    path.write_bytes(mutate_bytes(data, (FIXTURES / fixture).read_bytes()))

    check(read_feed(path, fmt, release=release), path)


# --- structure mutations -----------------------------------------------------------------------


def json_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += json_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += json_paths(value, (*prefix, index))
    return found


def leaves(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in leaves(value)]
    if isinstance(node, list):
        return [leaf for value in node for leaf in leaves(value)]
    return [node]


def mutate_tree(data: st.DataObject, document: Any) -> Any:
    """Replace, delete or splice values at random places of a JSON-like tree."""
    doc = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        path = data.draw(st.sampled_from(json_paths(doc)), label="path")
        if not path:
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        operation = data.draw(st.sampled_from(["replace", "delete", "splice", "duplicate"]))
        if operation == "replace":
            parent[path[-1]] = data.draw(JSON_VALUES, label="value")
        elif operation == "splice":
            parent[path[-1]] = copy.deepcopy(
                data.draw(st.sampled_from(leaves(doc) or [None]), label="leaf")
            )
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return doc


def mutate_xml(data: st.DataObject, raw: bytes) -> bytes:
    """Set attributes and text, drop and duplicate elements of an XML document."""
    root = ET.fromstring(raw)  # noqa: S314 - our own fixture
    elements = list(root.iter())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        element = data.draw(st.sampled_from(elements), label="element")
        operation = data.draw(st.sampled_from(["attribute", "text", "drop", "duplicate"]))
        value = data.draw(HOSTILE | st.text(max_size=12), label="value")
        if operation == "attribute":
            names = [*element.attrib, "date", "type", "name", "version", "epoch", "release", "arch"]
            element.set(data.draw(st.sampled_from(names)), value.replace("\x00", ""))
        elif operation == "text":
            element.text = value.replace("\x00", "")
        elif len(element):
            child = data.draw(st.sampled_from(list(element)))
            if operation == "drop":
                element.remove(child)
            else:
                element.append(copy.deepcopy(child))
    text = ET.tostring(root, encoding="unicode")
    # The declaration is a few bytes of the file: mutate it on purpose, not by chance.
    encoding = data.draw(
        st.sampled_from(["utf-8", "UTF-8", "TTF-8", "utf-16", "latin-1", "cp500", "x"])
    )
    return f'<?xml version="1.0" encoding="{encoding}"?>\n{text}'.encode("utf-8", "surrogatepass")


# Unquoted YAML values whose meaning differs from their text, or which PyYAML's constructors
# refuse after parsing them (impossible timestamps, anchors, aliases, merge keys, tags).
YAML_VALUES = st.sampled_from(
    [
        "2027-02-30",
        "2027-02-30 10:00:00",
        "!!timestamp 2027-13-01",
        "&a x",
        "*a",
        "*nope",
        "!!binary @@",
        "!!python/name:os.system",
        "[*a, *a]",
        "{<<: *a}",
        ".nan",
        "0x_",
        "1e999",
    ]
)


def mutate_lines(data: st.DataObject, raw: bytes) -> bytes:
    """Replace, drop and repeat lines of a deb822 index or a YAML document (indentation kept)."""
    lines = raw.decode("utf-8").split("\n")
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        where = data.draw(st.integers(0, len(lines) - 1), label="line")
        field = lines[where].partition(":")[0] or "Version"
        operation = data.draw(st.sampled_from(["value", "drop", "repeat", "raw"]))
        if operation == "value":
            value = data.draw(HOSTILE | YAML_VALUES | st.text(max_size=12))
            lines[where] = f"{field}: {value}"
        elif operation == "drop":
            del lines[where]
        elif operation == "repeat":
            lines.insert(where, lines[where])
        else:
            lines[where] = data.draw(st.text(max_size=20))
        if not lines:
            lines = [""]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def mutate_structure(data: st.DataObject, fixture: str) -> bytes:
    raw = (FIXTURES / fixture).read_bytes()
    if fixture.endswith(".xml"):
        return mutate_xml(data, raw)
    if fixture.endswith("Packages"):
        return mutate_lines(data, raw)
    if fixture.endswith(".yaml") and data.draw(st.booleans(), label="by lines"):
        return mutate_lines(data, raw)
    if fixture.endswith(".yaml"):
        return yaml.safe_dump(mutate_tree(data, yaml.safe_load(raw)), allow_unicode=True).encode()
    return json.dumps(mutate_tree(data, json.loads(raw))).encode()


@pytest.mark.parametrize(("fmt", "fixture", "release"), DOCUMENTS)
@FUZZ
@given(data=st.data())
def test_mutated_structure_gives_located_errors_or_records(
    tmp_path: Path, fmt: FeedFormat, fixture: str, release: str | None, data: st.DataObject
) -> None:
    """Well-formed documents with hostile values, missing parts and repeated parts never raise past the importer."""
    path = target(tmp_path, fmt, fixture, release)
    path.write_bytes(mutate_structure(data, fixture))

    check(read_feed(path, fmt, release=release), path)


@FUZZ
@given(data=st.data())
def test_mutated_osv_zip_gives_located_errors_or_records(
    tmp_path: Path, data: st.DataObject
) -> None:
    """An osv.dev-style zip archive with damaged bytes or damaged members never raises past the importer."""
    path = target(tmp_path, FeedFormat.OSV, "all.zip", None)
    members = sorted((FIXTURES / "osv").glob("*.json"))
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member in members:
            archive.writestr(member.name, mutate_structure(data, f"osv/{member.name}"))
    path.write_bytes(
        mutate_bytes(data, path.read_bytes()) if data.draw(st.booleans()) else path.read_bytes()
    )

    check(read_feed(path, FeedFormat.OSV), path)


@settings(FUZZ, max_examples=max(EXAMPLES // 5, 3))
@given(data=st.data())
def test_import_lands_all_records_or_none(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Importing a directory of mutated documents writes every record read, in one transaction, and nothing else."""
    folder = tmp_path_factory.mktemp("feed")
    for member in sorted((FIXTURES / "osv").glob("*.json")):
        (folder / member.name).write_bytes(mutate_structure(data, f"osv/{member.name}"))
    store = open_store(f"sqlite:///{folder / 'patchctl.db'}")
    try:
        result = read_feed(folder, FeedFormat.OSV)
        runtime_feeds.import_records(store, result, now=datetime(2099, 1, 1, tzinfo=UTC))
        stored = catalogue.load_catalogue(store)
    finally:
        store.close()

    assert {record.id: record for record in result.records} == stored
