"""What a reviewer reads is what runs, and no value stops the loader: every YAML read path (the
loader, and the history's fast and reference parsers) gives the same located error.

Issue 17 items 1 and 2: constructor failures, validators raising, duplicate and merge keys."""

from __future__ import annotations

import pytest

from controller.sources import history
from controller.sources.loading import SourceFile, load_policy

PATH = "policies/x.yaml"
ENVELOPE = "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: a, tenant: acme}\n"
SPEC = "spec:\n  patches: [KB1]\n  targets: {groups: [g]}\n  reason: r\n"
WINDOW = """\
apiVersion: patchctl/v1
kind: PatchWindow
metadata: {name: w, tenant: acme}
spec:
  targets: {groups: [g]}
  recurrence: {cron: "0 2 * * SUN"}
  timezone: %s
  duration: 4h
"""

CASES = [
    (
        "impossible-date",
        ENVELOPE + SPEC + "  expires: 2027-02-30\n",
        [
            f"{PATH}:8:12: spec.expires: '2027-02-30' is not a date or timestamp: "
            "day is out of range for month"
        ],
    ),
    (
        "impossible-date-as-key",
        ENVELOPE + SPEC + "  2027-02-30: x\n",
        [
            f"{PATH}:8:3: spec.2027-02-30: '2027-02-30' is not a date or timestamp: "
            "day is out of range for month"
        ],
    ),
    (
        "impossible-date-in-a-list",
        ENVELOPE + "spec:\n  patches: [KB1, 2027-13-01]\n",
        [
            f"{PATH}:5:18: spec.patches[1]: '2027-13-01' is not a date or timestamp: "
            "month must be in 1..12"
        ],
    ),
    (
        "duplicate-key-block",
        ENVELOPE + SPEC + "  patches: [KB2]\n",
        [
            f"{PATH}:8:3: spec.patches: duplicate key 'patches': written at line 5 and again at "
            "line 8; only one of them would apply"
        ],
    ),
    (
        "duplicate-key-flow",
        ENVELOPE + "spec: {reason: a, reason: b}\n",
        [
            f"{PATH}:4:19: spec.reason: duplicate key 'reason': written at line 4 and again at "
            "line 4; only one of them would apply"
        ],
    ),
    (
        "duplicate-key-top-level",
        ENVELOPE + SPEC + "kind: Baseline\n",
        [
            f"{PATH}:8:1: kind: duplicate key 'kind': written at line 2 and again at line 8; "
            "only one of them would apply"
        ],
    ),
    (
        "duplicate-boolean-keys",
        ENVELOPE + SPEC + "  labels: {yes: a, true: b}\n",
        [
            f"{PATH}:8:20: spec.labels.true: duplicate key True: written at line 8 and again at "
            "line 8; only one of them would apply"
        ],
    ),
    (
        "merge-key-from-an-anchor",
        "base: &b {reason: r}\n" + ENVELOPE + "spec:\n  <<: *b\n  patches: [KB1]\n",
        [
            f"{PATH}:6:3: spec.<<: merge keys (`<<`) are not allowed: the key at line 6 copies "
            "fields from line 1, which a reviewer may not see; write the fields out"
        ],
    ),
    (
        "zero-width-space-after-a-patch-id",
        ENVELOPE + "spec:\n  patches: [KB5011048\u200b]\n",
        [
            f"{PATH}:5:22: invisible or text-direction character U+200B: what a reviewer "
            "reads could differ from what runs; remove it (or, in a quoted string, write it as "
            "an escape such as \\u200b)"
        ],
    ),
    (
        "right-to-left-override-in-a-comment",
        "# approved \u202e,detaleted\n" + ENVELOPE + SPEC,
        [
            f"{PATH}:1:12: invisible or text-direction character U+202E: what a reviewer "
            "reads could differ from what runs; remove it (or, in a quoted string, write it as "
            "an escape such as \\u200b)"
        ],
    ),
    (
        "control-character",
        ENVELOPE + SPEC + "  ticket: a\x00b\n",
        [f"{PATH}:8:12: YAML error: character U+0000 is not allowed in YAML text"],
    ),
    (
        "every-refusal-of-a-document",
        ENVELOPE + "spec:\n  patches: [KB1, 2027-02-30]\n  reason: a\n  reason: b\n  ticket: 010\n",
        [
            f"{PATH}:5:18: spec.patches[1]: '2027-02-30' is not a date or timestamp: "
            "day is out of range for month",
            f"{PATH}:7:3: spec.reason: duplicate key 'reason': written at line 6 and again at "
            "line 7; only one of them would apply",
            f"{PATH}:8:11: spec.ticket: '010' is read by YAML as 8, not as written; write the "
            "number without leading zeros or colons, or quote it as text",
        ],
    ),
    (
        "every-document-of-a-file",
        ENVELOPE + SPEC + "  reason: again\n---\n" + ENVELOPE + "spec: {reason: a, reason: b}\n",
        [
            f"{PATH}:8:3: spec.reason: duplicate key 'reason': written at line 7 and again at "
            "line 8; only one of them would apply",
            f"{PATH}:13:19: spec.reason: duplicate key 'reason': written at line 13 and again at "
            "line 13; only one of them would apply",
        ],
    ),
    (
        "a-refusal-then-a-syntax-error",
        ENVELOPE + SPEC + "  reason: again\n---\n" + ENVELOPE + "spec: [\n",
        [
            f"{PATH}:8:3: spec.reason: duplicate key 'reason': written at line 7 and again at "
            "line 8; only one of them would apply",
            f"{PATH}:14:1: YAML error: while parsing a flow node expected the node content, "
            "but found '<stream end>'",
        ],
    ),
    (
        "a-refusal-then-an-unknown-tag",
        ENVELOPE + SPEC + "  reason: again\n  ticket: !foo x\n",
        [
            f"{PATH}:8:3: spec.reason: duplicate key 'reason': written at line 7 and again at "
            "line 8; only one of them would apply",
            f"{PATH}:9:11: YAML error: could not determine a constructor for the tag '!foo'",
        ],
    ),
    (
        "two-keys-yaml-cannot-build",  # each its own error, not also "duplicate key None"
        ENVELOPE + SPEC + "  2027-02-30: a\n  2027-02-31: b\n",
        [
            f"{PATH}:8:3: spec.2027-02-30: '2027-02-30' is not a date or timestamp: "
            "day is out of range for month",
            f"{PATH}:9:3: spec.2027-02-31: '2027-02-31' is not a date or timestamp: "
            "day is out of range for month",
        ],
    ),
    (
        "kind-is-a-list",
        "apiVersion: patchctl/v1\nkind: [Approval]\nmetadata: {name: a}\nspec: {}\n",
        [
            f"{PATH}:2:1: kind: ['Approval'] is not one of Approval, ApprovalProposal, Baseline, Device, "
            "DeviceGroup, Notification, PatchFeed, PatchWindow, ReportSchedule, ScanSchedule, Script, "
            "ScriptJob, Tenant, Whitelist"
        ],
    ),
    (
        "time-zone-naming-a-folder",
        WINDOW % "Europe",
        [
            f"{PATH}:7:3: spec.timezone: 'Europe' is not an IANA time zone such as "
            "Europe/Berlin or UTC"
        ],
    ),
    (
        "time-zone-too-long-for-a-file-name",
        WINDOW % ("x" * 300),
        [
            f"{PATH}:7:3: spec.timezone: '{'x' * 300}' is not an IANA time zone such as "
            "Europe/Berlin or UTC"
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_read_path_gives_the_same_located_error(text: str, expected: list[str]) -> None:
    """The loader and the history's parser (fast path first) report the same errors: every
    refusal of every document, in reading order, not only the first."""
    source = SourceFile(PATH, text.encode())
    loaded = load_policy([source], revision=None)
    parsed = history.parse_policy_file(source)
    assert expected == [str(p) for p in loaded.problems]
    assert (expected, ()) == ([str(p) for p in parsed.problems], parsed.objects)


def test_a_leading_byte_order_mark_and_an_escaped_zero_width_space_are_fine() -> None:
    """A BOM opening the file is YAML's own; an escape is visible in review."""
    text = "\ufeff" + ENVELOPE + "spec:\n  patches: [KB1]\n  targets: {groups: [g]}\n"
    text += '  reason: "a\\u200bb"\n'
    source = SourceFile(PATH, text.encode())
    assert [] == [str(p) for p in history.parse_policy_file(source).problems]


def test_the_same_key_in_separate_mappings_is_fine() -> None:
    """Only a key repeated within one mapping is refused; the same name at two places loads."""
    text = ENVELOPE + "spec:\n  patches: [KB1]\n  targets: {groups: [g], devices: [d]}\n"
    text += "  reason: targets\n"
    source = SourceFile(PATH, text.encode())
    assert [] == [str(p) for p in history.parse_policy_file(source).problems]
