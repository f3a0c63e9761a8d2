"""The loader: every error collected, each located at file, line, column and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.kinds import Baseline
from controller.sources import files, repository
from controller.sources.loading import LoadResult, SourceFile, load_policy
from controller.testing import PolicyRepo


def load_worktree(repo: PolicyRepo) -> LoadResult:
    return load_policy(files.read_tree(repo.path), revision=None)


def messages(result: LoadResult) -> list[str]:
    return [str(p) for p in result.problems]


BROKEN_BASELINE = """\
apiVersion: patchctl/v1
kind: Baseline
metadata:
  name: windows-servers
  tenant: acme
spec:
  os: windows
  targets:
    groups: [all-windows]
  rules:
    - classifications: [security, critical]
      severities:
        - critical
        - importnt
  colour: blue
"""


def test_schema_errors_name_file_line_column_and_field(policy_repo: PolicyRepo) -> None:
    """Each schema error is reported as path:line:col: field.path: message."""
    policy_repo.write("policies/baselines/win.yaml", BROKEN_BASELINE)
    result = load_worktree(policy_repo)
    assert [
        "policies/baselines/win.yaml:14:11: spec.rules[0].severities[1]: 'importnt' is not one of "
        "critical, important, moderate, low, unspecified",
        "policies/baselines/win.yaml:15:3: spec.colour: unknown field",
    ] == messages(result)
    assert result.state is None


def test_every_error_of_every_file_is_collected(policy_repo: PolicyRepo) -> None:
    """Errors in several files and documents are all reported, not just the first."""
    policy_repo.write("policies/baselines/a.yaml", BROKEN_BASELINE)
    policy_repo.write(
        "policies/approvals/b.yaml",
        "kind: Approval\napiVersion: patchctl/v1\nmetadata: {name: b}\nspec: {patches: [KB1], targets: {}}\n---\nkind: Nonsense\n",
    )
    policy_repo.write("policies/scripts/c.yaml", "key: [unclosed\n")
    result = load_worktree(policy_repo)
    assert [
        "policies/approvals/b.yaml:4:1: spec.reason: required field is missing",
        "policies/approvals/b.yaml:6:1: kind: 'Nonsense' is not one of Approval, ApprovalProposal, Baseline, Device, "
        "DeviceGroup, Notification, PatchFeed, PatchWindow, ReportSchedule, ScanSchedule, Script, "
        "ScriptJob, Tenant, Whitelist",
        "policies/baselines/a.yaml:14:11: spec.rules[0].severities[1]: 'importnt' is not one of "
        "critical, important, moderate, low, unspecified",
        "policies/baselines/a.yaml:15:3: spec.colour: unknown field",
        "policies/scripts/c.yaml:2:1: YAML error: while parsing a flow sequence expected ',' or ']', but got '<stream end>'",
    ] == messages(result)


APPROVAL = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {{name: x, tenant: acme}}
spec: {{patches: {patches}, targets: {{groups: [all-windows]}}, reason: needed}}
"""


@pytest.mark.parametrize(
    ("patches", "expected"),
    [
        pytest.param(
            "[123]",
            ["4:18: spec.patches[0]: input should be a valid string (got 123)"],
            id="bad-item-only",
        ),
        pytest.param(
            "[KB1, 123]",
            ["4:23: spec.patches[1]: input should be a valid string (got 123)"],
            id="bad-second-item-only",
        ),
        pytest.param(
            "[]", ["4:8: spec.patches: needs at least 1 item(s)"], id="empty-is-too-short"
        ),
    ],
)
def test_a_bad_list_item_is_its_only_error(
    policy_repo: PolicyRepo, patches: str, expected: list[str]
) -> None:
    """An item that fails is not also counted as a missing item ("needs at least 1")."""
    policy_repo.write("policies/approvals/x.yaml", APPROVAL.format(patches=patches))
    assert [f"policies/approvals/x.yaml:{e}" for e in expected] == messages(
        load_worktree(policy_repo)
    )


def test_script_limits_are_errors_at_their_fields(policy_repo: PolicyRepo) -> None:
    """A zero timeout (the agent would read "use my default") and exit codes no process ends
    with are refused by validate at the field, not accepted to mean something else."""
    policy_repo.write(
        "policies/scripts/x.yaml",
        "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: x}\nspec:\n  os: linux\n"
        "  shell: bash\n  timeout: 0s\n  successCodes: [256, -1]\n  content: 'true'\n",
    )
    assert [
        "policies/scripts/x.yaml:7:3: spec.timeout: must be longer than 0s",
        "policies/scripts/x.yaml:8:18: spec.successCodes[0]: 256 is not an exit code a linux "
        "process can end with (0-255)",
        "policies/scripts/x.yaml:8:23: spec.successCodes[1]: -1 is not an exit code a linux "
        "process can end with (0-255)",
    ] == messages(load_worktree(policy_repo))


def test_feed_sources_the_service_would_refuse_are_errors_at_their_fields(
    policy_repo: PolicyRepo,
) -> None:
    """A PatchFeed source leaving the repository or with a scheme other than http(s), and a
    zero refresh, are refused by validate at the field instead of failing at run time."""
    feed = (
        "apiVersion: patchctl/v1\nkind: PatchFeed\nmetadata: {{name: {name}}}\n"
        "spec: {{format: osv, source: {source}, refresh: {refresh}}}\n"
    )
    policy_repo.write(
        "policies/feeds/x.yaml",
        feed.format(name="a", source="../../etc/passwd", refresh="6h")
        + "---\n"
        + feed.format(name="b", source='"file:///etc/shadow"', refresh="0s"),
    )
    assert [
        "policies/feeds/x.yaml:4:21: spec.source: '../../etc/passwd' leaves the repository: a "
        "repository path is relative to its top; a file elsewhere is named by an absolute path "
        "listed in [feeds] allow of the server configuration",
        "policies/feeds/x.yaml:9:21: spec.source: 'file:///etc/shadow' is refused: only http(s) "
        "URLs are fetched, not file://",
        "policies/feeds/x.yaml:9:51: spec.refresh: must be longer than 0s",
    ] == messages(load_worktree(policy_repo))


def test_email_recipients_are_checked_at_their_item(policy_repo: PolicyRepo) -> None:
    """An email channel's recipient that is not an address is an error naming the item."""
    policy_repo.write(
        "policies/notifications/x.yaml",
        "apiVersion: patchctl/v1\nkind: Notification\nmetadata: {name: x}\nspec:\n"
        "  events: [InstallFailed]\n  channel:\n    email: {to: [not-an-email, '']}\n",
    )
    assert [
        "policies/notifications/x.yaml:7:18: spec.channel.email.to[0]: 'not-an-email' is not an "
        "email address",
        "policies/notifications/x.yaml:7:32: spec.channel.email.to[1]: '' is not an email address",
    ] == messages(load_worktree(policy_repo))


def test_several_documents_per_file_load(policy_repo: PolicyRepo) -> None:
    """A file may hold several documents separated by ---."""
    policy_repo.write(
        "policies/scripts/two.yaml",
        "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: a}\nspec: {os: linux, shell: sh, content: 'true'}\n"
        "---\n"
        "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: b}\nspec: {os: linux, shell: sh, content: 'true'}\n",
    )
    result = load_worktree(policy_repo)
    assert result.state is not None
    assert ["a", "b"] == [s.name for s in result.state.scripts]


def baseline(name: str, *, tenant: str = "acme", groups: str = "[all-windows]") -> str:
    return (
        f"apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {{name: {name}, tenant: {tenant}}}\n"
        f"spec:\n  os: windows\n  targets: {{groups: {groups}}}\n"
    )


CROSS_REFERENCES = [
    (
        {"policies/baselines/a.yaml": baseline("a", groups="[nope]")},
        "policies/baselines/a.yaml:6:22: spec.targets.groups[0]: no DeviceGroup 'nope' in tenant acme or its partner",
    ),
    (
        {"policies/baselines/a.yaml": baseline("a", tenant="other")},
        "policies/baselines/a.yaml:3:21: metadata.tenant: tenant 'other' is not declared by any Tenant (known: acme, acme/retail)",
    ),
    (
        {"policies/baselines/a.yaml": baseline("a", tenant="acme/wholesale")},
        "policies/baselines/a.yaml:3:21: metadata.tenant: client 'wholesale' is not listed in spec.clients of Tenant 'acme'",
    ),
    (
        {"policies/baselines/a.yaml": baseline("a"), "policies/baselines/b.yaml": baseline("a")},
        "policies/baselines/b.yaml:3:12: metadata.name: duplicate Baseline 'a' in tenant acme; first defined at policies/baselines/a.yaml:1",
    ),
    (
        {
            "policies/baselines/a.yaml": baseline(
                "a", tenant="acme/retail", groups="[linux-web]"
            ).replace("os: windows", "os: linux")
            + "---\n"
            + baseline("a", tenant="acme/retail", groups="[linux-web]")
        },
        "policies/baselines/a.yaml:10:12: metadata.name: duplicate Baseline 'a' in tenant acme/retail; first defined at policies/baselines/a.yaml:1",
    ),
    (
        {
            "policies/schedules/w.yaml": "apiVersion: patchctl/v1\nkind: PatchWindow\nmetadata: {name: w, tenant: acme/retail}\nspec:\n  targets: {groups: [linux-web]}\n  recurrence: {cron: '0 2 * * *'}\n  timezone: UTC\n  duration: 2h\n  preScript: drain\n",
            "policies/scripts/s.yaml": "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: drain, tenant: acme}\nspec: {os: windows, shell: powershell, content: 'exit 0'}\n",
        },
        "policies/schedules/w.yaml:9:3: spec.preScript: Script 'drain' runs on windows but this object targets linux devices; narrow the targets with selector.os or use a linux script",
    ),
    (
        {
            "policies/schedules/j.yaml": "apiVersion: patchctl/v1\nkind: ScriptJob\nmetadata: {name: j, tenant: acme}\nspec:\n  script: missing\n  targets: {groups: [all-windows]}\n  recurrence: {cron: '0 2 * * *'}\n"
        },
        "policies/schedules/j.yaml:5:3: spec.script: no Script 'missing' in tenant acme or above",
    ),
]


@pytest.mark.parametrize(
    ("written", "expected"),
    CROSS_REFERENCES,
    ids=[
        "unknown-group",
        "unknown-tenant",
        "undeclared-client",
        "duplicate-across-files",
        "duplicate-in-one-file",
        "script-of-another-os",
        "unknown-script",
    ],
)
def test_cross_reference_errors(
    policy_repo: PolicyRepo, written: dict[str, str], expected: str
) -> None:
    """References to groups, tenants and scripts are checked across the whole tree."""
    for path, text in written.items():
        policy_repo.write(path, text)
    result = load_worktree(policy_repo)
    assert [expected] == messages(result)
    assert result.state is None


def test_client_objects_see_partner_groups(policy_repo: PolicyRepo) -> None:
    """A client's object may target a group of its partner tenant."""
    policy_repo.write("policies/baselines/a.yaml", baseline("a", tenant="acme/retail"))
    assert [] == messages(load_worktree(policy_repo))


def test_partner_objects_do_not_see_client_groups(policy_repo: PolicyRepo) -> None:
    """A partner's object cannot reach a client's group by name."""
    policy_repo.write("policies/baselines/a.yaml", baseline("a", groups="[linux-web]"))
    assert [
        "policies/baselines/a.yaml:6:22: spec.targets.groups[0]: no DeviceGroup 'linux-web' in tenant acme or its partner"
    ] == messages(load_worktree(policy_repo))


LINUX_WARNINGS = [
    (
        "apiVersion: patchctl/v1\nkind: Whitelist\nmetadata: {name: w, tenant: acme/retail}\nspec:\n  targets: {groups: [linux-web]}\n  patches:\n    - classifications: [security]\n",
        "policies/p.yaml:6:3: warning: spec.patches: whitelist filters approve nothing on Linux devices (Linux patches are approved only by explicit id)",
    ),
    (
        "apiVersion: patchctl/v1\nkind: PatchWindow\nmetadata: {name: w, tenant: acme}\nspec:\n  targets: {selector: {os: linux}}\n  recurrence: {cron: '0 2 * * *'}\n  timezone: UTC\n  duration: 2h\n  approval: auto\n",
        "policies/p.yaml:9:3: warning: spec.approval: approval: auto approves nothing on Linux devices (Linux patches are approved only by explicit id)",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), LINUX_WARNINGS, ids=["whitelist-filter", "auto-window"]
)
def test_linux_filters_warn_but_do_not_fail(
    policy_repo: PolicyRepo, text: str, expected: str
) -> None:
    """Filters and auto approval aimed at Linux are warnings: the tree still loads."""
    policy_repo.write("policies/p.yaml", text)
    result = load_worktree(policy_repo)
    assert [expected] == messages(result)
    assert result.state is not None


def test_example_repository_is_valid(example_repo: PolicyRepo, tmp_path: Path) -> None:
    """The project's own example repository validates with no error and no warning."""
    loaded = repository.load(str(example_repo.path), state_dir=tmp_path / "state")
    assert [] == [str(p) for p in loaded.result.problems]
    assert loaded.result.state is not None
    windows = loaded.result.state.get(Baseline, "acme", "windows-servers")
    assert windows is not None
    assert ("KB5044284",) == windows.spec.include


def test_non_policy_files_are_ignored(policy_repo: PolicyRepo) -> None:
    """Only YAML under policies/ and inventory/ is policy; READMEs and other folders are not."""
    policy_repo.write("policies/README.md", "not yaml: [")
    policy_repo.write("docs/x.yaml", "not: [valid")
    assert [] == messages(load_worktree(policy_repo))


def test_refused_source_files_are_problems() -> None:
    """A file the reader refused is an error naming it."""
    result = load_policy([SourceFile("policies/x.yaml", None, "not a regular file")], revision=None)
    assert ["policies/x.yaml: not a regular file"] == messages(result)
