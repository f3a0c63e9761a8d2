"""The audit walk's policy tree: swapped file by file, it validates as a fresh load would."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from controller.sources import loading
from controller.sources.loading import SourceFile, parse_policy_file
from controller.sources.policytree import PolicyTree

TENANTS = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: acme}
spec: {clients: [retail]}
"""
GROUP = """\
apiVersion: patchctl/v1
kind: DeviceGroup
metadata: {name: linux-web, tenant: acme/retail}
spec: {selector: {os: linux}}
"""


def approval(name: str, reason: str) -> str:
    return (
        "apiVersion: patchctl/v1\nkind: Approval\n"
        f"metadata: {{name: {name}, tenant: acme/retail}}\n"
        f"spec:\n  patches: [USN-1-1]\n  targets: {{groups: [linux-web]}}\n  reason: {reason}\n"
    )


# Contents a path may hold: the same object written two ways (an edit keeping the key), another
# object, two objects in one file, the tenant file, or nothing. Two paths holding the same key
# are a duplicate until one of them changes.
CONTENTS = (
    approval("one", "first"),
    approval("one", "second"),
    approval("two", "first"),
    approval("one", "first") + "---\n" + approval("two", "second"),
    TENANTS,
    None,
)
PATHS = ("policies/a.yaml", "policies/b.yaml", "inventory/c.yaml")
STEPS = st.lists(
    st.tuples(st.sampled_from(PATHS), st.sampled_from(range(len(CONTENTS)))), max_size=12
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(STEPS)
# An edit that swaps a file's key for another: the old key's count must drop, or a duplicate
# of the new key elsewhere goes unseen.
@example([(PATHS[0], 0), (PATHS[0], 2), (PATHS[1], 2)])
@example([(PATHS[0], 0), (PATHS[1], 0), (PATHS[0], 2), (PATHS[1], 2)])
def test_swapped_files_validate_as_a_fresh_load(steps: list[tuple[str, int]]) -> None:
    """After every swap, the tree's errors are those of loading its files from scratch:
    duplicates appear and disappear with the files that hold the keys, whether an edit keeps
    a file's keys or changes them."""
    tree = PolicyTree()
    for path, text in (("inventory/tenants.yaml", TENANTS), ("inventory/groups.yaml", GROUP)):
        tree.replace(path, parse_policy_file(SourceFile(path, text.encode())))
    for path, which in steps:
        text = CONTENTS[which]
        tree.replace(
            path, None if text is None else parse_policy_file(SourceFile(path, text.encode()))
        )
        fresh = loading.load_parsed(
            [parse_policy_file(f.source) for f in tree.files.values()], revision=None
        )
        assert [str(p) for p in fresh.errors] == list(tree.errors())
