"""The plan in a reviewer's words: each kind of change rendered as its comment block, and the
warnings a reviewer must see, from the two revisions alone (no fleet) or with one."""

from __future__ import annotations

import pytest

from controller.core import review
from controller.core.review import CatalogueEntry
from controller.kinds.common import OsFamily
from controller.runtime import plans
from controller.testing.fleets import SUNDAY_OPEN, desired, device, observed, scan

CATALOGUE = {
    "USN-1-1": CatalogueEntry("USN-1-1", "OpenSSL vulnerabilities", "important", "linux"),
    "USN-2-1": CatalogueEntry("USN-2-1", "curl vulnerability", "", "linux"),
    "KB1": CatalogueEntry("KB1", "Cumulative Update", "critical", "windows"),
}


def approval(
    patches: str = "USN-1-1",
    *,
    reason: str = "PR 12",
    extra: str = "",
    targets: str = "groups: [linux]",
) -> str:
    return (
        "apiVersion: patchctl/v1\nkind: Approval\nmetadata: {name: hotfix, tenant: acme/retail}\n"
        f"spec: {{patches: [{patches}], targets: {{{targets}}}, reason: {reason}{extra}}}\n"
    )


def baseline(
    rules: str = "{classifications: [security], severities: [critical]}",
    *,
    include: str = "",
    exclude: str = "",
    extra: str = "",
) -> str:
    return (
        "apiVersion: patchctl/v1\nkind: Baseline\nmetadata: {name: extra, tenant: acme}\n"
        f"spec:\n  os: windows\n  targets: {{groups: [windows]}}\n  rules: [{rules}]\n"
        f"  include: [{include}]\n  exclude: [{exclude}]\n{extra}"
    )


def window(
    cron: str = "0 2 * * SUN",
    *,
    timezone: str = "Europe/Berlin",
    approval_mode: str = "manual",
    targets: str = "groups: [windows]",
) -> str:
    return (
        "apiVersion: patchctl/v1\nkind: PatchWindow\nmetadata: {name: nightly, tenant: acme}\n"
        f"spec:\n  targets: {{{targets}}}\n  recurrence: {{cron: '{cron}'}}\n"
        f"  timezone: {timezone}\n  duration: 4h\n  approval: {approval_mode}\n"
    )


def script(content: str = "systemctl stop app\nsleep 5\n", *, timeout: str = "5m") -> str:
    body = "".join(f"    {line}\n" for line in content.splitlines())
    return (
        "apiVersion: patchctl/v1\nkind: Script\nmetadata: {name: drain, tenant: acme}\n"
        f"spec:\n  os: linux\n  shell: bash\n  timeout: {timeout}\n  content: |\n{body}"
    )


def whitelist(patches: str, *, groups: str = "windows") -> str:
    return (
        "apiVersion: patchctl/v1\nkind: Whitelist\nmetadata: {name: extra, tenant: acme}\n"
        f"spec: {{targets: {{groups: [{groups}]}}, patches: [{patches}]}}\n"
    )


def blocks(base: str, head: str, catalogue: review.Catalogue | None = CATALOGUE) -> list[str]:
    """The comment's lines from the first object block to the end of the last one."""
    document = plans.plan_document(
        desired(base), desired(head), now=SUNDAY_OPEN, observed=None, catalogue=catalogue
    )
    lines = plans.render_markdown(document).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("#### "))
    end = max(i for i, line in enumerate(lines) if line.startswith(("- ", "</details>", "#### ")))
    return lines[start : end + 1]


WORDING = [
    pytest.param(
        "",
        approval("USN-1-1, KB9999999", extra=", ticket: CHG-1, expires: 2026-12-31"),
        CATALOGUE,
        [
            "#### `Approval/acme/retail/hotfix`: ApprovalGranted",
            "",
            "- approves **KB9999999** (not in the catalogue)",
            "- approves **USN-1-1** (important): OpenSSL vulnerabilities",
            "- targets added: group linux",
            "- reason: PR 12",
            "- ticket: CHG-1",
            "- expires 2026-12-31 (in 32 days)",
        ],
        id="approval-added",
    ),
    pytest.param(
        approval(extra=", ticket: CHG-1"),
        "",
        CATALOGUE,
        [
            "#### `Approval/acme/retail/hotfix`: ApprovalRevoked",
            "",
            "- revokes **USN-1-1** (important): OpenSSL vulnerabilities",
            "- targets removed: group linux",
            "- reason was: PR 12",
            "- ticket was: CHG-1",
        ],
        id="approval-removed",
    ),
    pytest.param(
        approval(extra=", ticket: CHG-1"),
        approval(
            "USN-2-1",
            reason="PR 13",
            extra=", ticket: CHG-2, expires: 2026-11-29",
            targets="groups: [linux], devices: [web-01]",
        ),
        CATALOGUE,
        [
            "#### `Approval/acme/retail/hotfix`: ApprovalChanged",
            "",
            "- approves **USN-2-1**: curl vulnerability",
            "- revokes **USN-1-1** (important): OpenSSL vulnerabilities",
            "- targets added: device web-01",
            "- reason: 'PR 12' → 'PR 13'",
            "- ticket: 'CHG-1' → 'CHG-2'",
            "- expiry: was none, now expires 2026-11-29 (today is its last day)",
        ],
        id="approval-changed",
    ),
    pytest.param(
        approval(),
        approval(extra=", expires: 2027-01-31", targets="groups: [windows]"),
        CATALOGUE,
        [
            "#### `Approval/acme/retail/hotfix`: ApprovalChanged",
            "",
            "- targets added: group windows",
            "- targets removed: group linux",
            "- reason: PR 12",
            "- expiry: was none, now expires 2027-01-31 (in 63 days)",
            "- still approves USN-1-1",
        ],
        id="approval-same-patches",
    ),
    pytest.param(
        "",
        approval("USN-1-1, KB9999999"),
        None,
        [
            "#### `Approval/acme/retail/hotfix`: ApprovalGranted",
            "",
            "- approves **KB9999999**",
            "- approves **USN-1-1**",
            "- targets added: group linux",
            "- reason: PR 12",
            "- no expiry",
        ],
        id="approval-without-catalogue",
    ),
    pytest.param(
        baseline(),
        baseline("{classifications: [security, critical], severities: [critical]}", include="KB1"),
        CATALOGUE,
        [
            "#### `Baseline/acme/extra`: BaselineChanged (tightened)",
            "",
            "- now always requires KB1 (critical): Cumulative Update",
            "- rule (security, critical patches, of severity critical, as soon as released) requires more: classifications security → critical, security",
        ],
        id="baseline-tightened",
    ),
    pytest.param(
        baseline(),
        baseline(
            "{classifications: [security], severities: [critical], releasedAfterDays: 7}",
            exclude="KB1",
            extra="  staleScanAfter: 14d\n",
        ),
        CATALOGUE,
        [
            "#### `Baseline/acme/extra`: BaselineChanged (loosened)",
            "",
            "- rejects **KB1** (critical): Cumulative Update",
            "- rule (security patches, of severity critical, 7 days after release) requires less: grace period 0 → 7 days",
            "- scans count as stale after 14d (was 7d)",
        ],
        id="baseline-loosened",
    ),
    pytest.param(
        baseline(),
        baseline(
            "{classifications: [security], severities: [critical, important], minRating: 7.0}"
        ),
        CATALOGUE,
        [
            "#### `Baseline/acme/extra`: BaselineChanged (tightened and loosened)",
            "",
            "- rule (security patches, of severity critical, important, rated ≥ 7.0, as soon as released) requires more: severities critical → critical, important",
            "- rule (security patches, of severity critical, important, rated ≥ 7.0, as soon as released) requires less: minimum rating none → 7.0",
        ],
        id="baseline-tightened-and-loosened",
    ),
    pytest.param(
        "",
        baseline(
            "{classifications: [security], severities: [critical], minRating: 7.0, releasedAfterDays: 7}"
        ),
        CATALOGUE,
        [
            "#### `Baseline/acme/extra`: BaselineAdded",
            "",
            "- targets added: group windows",
            "- requires: security patches, of severity critical, rated ≥ 7.0, 7 days after release",
            "- spec.os: windows",
        ],
        id="baseline-added",
    ),
    pytest.param(
        window(),
        window("0 3 * * SAT", timezone="America/New_York"),
        CATALOGUE,
        [
            "#### `PatchWindow/acme/nightly`: WindowChanged",
            "",
            "- next occurrences before: Sun 2026-11-29 02:00-06:00 CET; Sun 2026-12-06 02:00-06:00 CET; Sun 2026-12-13 02:00-06:00 CET (Europe/Berlin)",
            "- next occurrences after: Sat 2026-12-05 03:00-07:00 EST; Sat 2026-12-12 03:00-07:00 EST; Sat 2026-12-19 03:00-07:00 EST (America/New_York)",
            "- spec.recurrence.cron: 0 2 * * SUN → 0 3 * * SAT",
            "- spec.timezone: Europe/Berlin → America/New_York",
        ],
        id="window-moved",
    ),
    pytest.param(
        "",
        window(),
        CATALOGUE,
        [
            "#### `PatchWindow/acme/nightly`: WindowAdded",
            "",
            "- targets added: group windows",
            "- next occurrences after: Sun 2026-11-29 02:00-06:00 CET; Sun 2026-12-06 02:00-06:00 CET; Sun 2026-12-13 02:00-06:00 CET (Europe/Berlin)",
            "- approval: manual",
            # what a new window does, as a reviewer approves it (defaults included)
            "- spec.autoApprove.releasedAfterDays: 0",
            "- spec.catchUpWithin: 1d",
            "- spec.cutoff: 0s",
            "- spec.duration: 4h",
            "- spec.missedWindow: next-window",
            "- spec.reboot: if-required",
            "- spec.rollout.maxConcurrent: 100%",
            "- spec.rollout.maxFailures: 100%",
        ],
        id="window-added",
    ),
    pytest.param(
        "",
        window() + "  reboot: never\n  rollout: {maxConcurrent: 3, maxFailures: 0}\n",
        CATALOGUE,
        [
            "#### `PatchWindow/acme/nightly`: WindowAdded",
            "",
            "- targets added: group windows",
            "- next occurrences after: Sun 2026-11-29 02:00-06:00 CET; Sun 2026-12-06 02:00-06:00 CET; Sun 2026-12-13 02:00-06:00 CET (Europe/Berlin)",
            "- approval: manual",
            "- spec.autoApprove.releasedAfterDays: 0",
            "- spec.catchUpWithin: 1d",
            "- spec.cutoff: 0s",
            "- spec.duration: 4h",
            "- spec.missedWindow: next-window",
            "- spec.reboot: never",
            "- spec.rollout.maxConcurrent: 3",
            "- spec.rollout.maxFailures: 0",  # a value, not "unset": it stops at the first failure
        ],
        id="window-added-with-its-own-limits",
    ),
    pytest.param(
        script(),
        script("systemctl stop app\nsleep 10\necho done\n", timeout="10m"),
        CATALOGUE,
        [
            "#### `Script/acme/drain`: ScriptChanged",
            "",
            "- spec.timeout: 5m → 10m",
            "",
            "<details><summary>script diff</summary>",
            "",
            "```diff",
            "--- a/Script/acme/drain",
            "+++ b/Script/acme/drain",
            "@@ -1,2 +1,3 @@",
            " systemctl stop app",
            "-sleep 5",
            "+sleep 10",
            "+echo done",
            "```",
            "",
            "</details>",
        ],
        id="script-changed",
    ),
    pytest.param(
        whitelist("{id: KB1}"),
        whitelist("{id: KB2}, {classifications: [security], vendors: [microsoft]}"),
        CATALOGUE,
        [
            "#### `Whitelist/acme/extra`: WhitelistChanged",
            "",
            "- approves **KB2** (not in the catalogue)",
            "- revokes **KB1** (critical): Cumulative Update",
            "- filters: none → classifications security and vendors microsoft",
        ],
        id="whitelist-changed",
    ),
]


@pytest.mark.parametrize(("base", "head", "catalogue", "expected"), WORDING)
def test_each_change_reads_as_a_reviewer_checks_it(
    base: str, head: str, catalogue: review.Catalogue | None, expected: list[str] | None
) -> None:
    """The comment block of one changed object says what it changes, in words."""
    assert expected == blocks(base, head, catalogue)


def warnings_of(
    base: str, head: str, *, catalogue: review.Catalogue | None = CATALOGUE, fleet: bool = False
) -> list[tuple[str, str]]:
    devices = (
        observed(
            (device("web-01", os=OsFamily.LINUX), scan("USN-1-1")),
            (device("win-01"), scan("KB1")),
        )
        if fleet
        else None
    )
    found = review.review(
        desired(base), desired(head), now=SUNDAY_OPEN, catalogue=catalogue, observed=devices
    )
    return [(w.code.value, str(w)) for w in found.warnings]


WARNINGS = [
    pytest.param(
        "",
        approval("USN-1-1, KB9999999, DSA-9999-1"),
        {},
        [
            (
                "unknown-patch",
                "Approval/acme/retail/hotfix: DSA-9999-1, KB9999999 are not in the patch catalogue (3 patches): a typo, or a patch no feed has published yet",
            ),
        ],
        id="unknown-ids",
    ),
    pytest.param(
        "",
        approval("KB9999999"),
        {"catalogue": None},
        [],
        id="no-catalogue-no-id-check",
    ),
    pytest.param(
        approval("KB9999999"),
        approval("KB9999999", reason="again"),
        {},
        [],
        id="unknown-id-already-listed",
    ),
    pytest.param(
        "",
        baseline(include="KB7", exclude="KB8"),
        {},
        [
            (
                "unknown-patch",
                "Baseline/acme/extra: KB7, KB8 are not in the patch catalogue (3 patches): a typo, or a patch no feed has published yet",
            ),
        ],
        id="unknown-baseline-ids",
    ),
    pytest.param(
        "",
        approval(extra=", expires: 2026-11-28"),
        {},
        [
            (
                "expired-on-arrival",
                "Approval/acme/retail/hotfix: already expired (last day 2026-11-28) when this change arrives: it approves nothing",
            ),
        ],
        id="expired-on-arrival",
    ),
    pytest.param(
        "",
        approval(extra=", expires: 2026-11-29"),
        {},
        [],
        id="last-day-is-not-expired",
    ),
    pytest.param(
        approval(extra=", expires: 2026-11-01"),
        approval(extra=", expires: 2026-11-01") + "---\n" + script(),
        {},
        [],
        id="expired-before-untouched",
    ),
    pytest.param(
        "",
        approval("KB1"),
        {},
        [
            (
                "approves-nothing",
                "Approval/acme/retail/hotfix: approves windows patches for linux devices only: it approves nothing",
            ),
        ],
        id="windows-patch-for-linux-targets",
    ),
    pytest.param(
        "",
        window(approval_mode="auto", targets="groups: [linux]"),
        {},
        [
            (
                "linux-auto-approval",
                "PatchWindow/acme/nightly: approval: auto approves nothing on Linux devices: Linux patches are approved only by explicit id in an Approval or Whitelist",
            ),
        ],
        id="linux-auto-window",
    ),
    pytest.param(
        "",
        window(approval_mode="auto"),
        {},
        [],
        id="windows-auto-window",
    ),
    pytest.param(
        "",
        whitelist("{classifications: [security]}", groups="linux"),
        {},
        [
            (
                "linux-auto-approval",
                "Whitelist/acme/extra: whitelist filters approve nothing on Linux devices: Linux patches are approved only by explicit id in an Approval or Whitelist",
            ),
        ],
        id="linux-whitelist-filter",
    ),
    pytest.param(
        "",
        approval(targets="devices: [ghost-01]"),
        {},
        [
            (
                "unknown-target",
                "Approval/acme/retail/hotfix: targets device 'ghost-01', which is not declared in inventory/ or listed by any group",
            ),
        ],
        id="unknown-device",
    ),
    pytest.param(
        "",
        approval(targets="devices: [web-01]"),
        {"fleet": True},
        [],
        id="enrolled-device",
    ),
    pytest.param(
        "",
        approval(targets="devices: [ghost-01]"),
        {"fleet": True},
        [
            (
                "unknown-target",
                "Approval/acme/retail/hotfix: targets device 'ghost-01', which is not enrolled, declared in inventory/ or listed by any group",
            ),
            ("approves-nothing", "Approval/acme/retail/hotfix: targets no enrolled device"),
        ],
        id="unknown-device-with-fleet",
    ),
    pytest.param(
        "",
        approval("USN-2-1"),
        {"fleet": True},
        [
            (
                "approves-nothing",
                "Approval/acme/retail/hotfix: approves USN-2-1, which no targeted device is missing (1 device(s) targeted)",
            ),
        ],
        id="nobody-misses-it",
    ),
    pytest.param(
        "",
        window(approval_mode="auto", targets="devices: [web-01]"),
        {"fleet": True},
        [
            (
                "linux-auto-approval",
                "PatchWindow/acme/nightly: approval: auto approves nothing on Linux devices (1 targeted Linux device(s)): Linux patches are approved only by explicit id in an Approval or Whitelist",
            ),
        ],
        id="linux-auto-on-enrolled-device",
    ),
]


@pytest.mark.parametrize(("base", "head", "options", "expected"), WARNINGS)
def test_warnings_name_what_a_reviewer_must_look_at(
    base: str, head: str, options: dict[str, object], expected: list[tuple[str, str]] | None
) -> None:
    """Each risky change warns once, with the object and the reason; safe ones do not."""
    assert expected == warnings_of(base, head, **options)


@pytest.mark.parametrize(
    ("expires", "in_days", "expected"),
    [
        pytest.param(None, None, "no expiry", id="none"),
        pytest.param("2026-12-31", 32, "expires 2026-12-31 (in 32 days)", id="future"),
        pytest.param("2026-11-30", 1, "expires 2026-11-30 (in 1 day)", id="tomorrow"),
        pytest.param("2026-11-29", 0, "expires 2026-11-29 (today is its last day)", id="today"),
        pytest.param(
            "2026-11-28", -1, "expired: last day was 2026-11-28 (1 day ago)", id="yesterday"
        ),
        pytest.param(
            "2026-11-01", -28, "expired: last day was 2026-11-01 (28 days ago)", id="past"
        ),
    ],
)
def test_expiry_is_counted_in_days_from_now(
    expires: str | None, in_days: int | None, expected: str
) -> None:
    """An approval's expiry reads relative to the plan's `now`."""
    from datetime import date  # noqa: PLC0415

    assert expected == review.expiry_words(
        date.fromisoformat(expires) if expires else None, in_days
    )


def test_the_comment_puts_warnings_first_and_quotes_policy_text_safely() -> None:
    """Warnings precede the object blocks; HTML in a reason is escaped and a script holding a
    code fence cannot close the diff's fence."""
    head = (
        approval("KB9999999", reason="'<img src=x onerror=alert(1)>'")
        + "---\n"
        + script("echo '```'\n")
    )
    document = plans.plan_document(
        desired(script()), desired(head), now=SUNDAY_OPEN, observed=None, catalogue=CATALOGUE
    )
    text = plans.render_markdown(document)
    lines = text.splitlines()
    assert lines.index("**Warnings (1)**") < lines.index(
        "#### `Approval/acme/retail/hotfix`: ApprovalGranted"
    )
    assert "- reason: &lt;img src=x onerror=alert(1)&gt;" in lines
    assert ["````diff", "--- a/Script/acme/drain"] == lines[
        lines.index("````diff") : lines.index("````diff") + 2
    ]
    assert (True, False, {"patches": 3}) == (
        document["changed"],
        document["fleetKnown"],
        document["catalogue"],
    )


def test_a_huge_plan_is_cut_under_the_comment_limit() -> None:
    """A long script diff and hundreds of approvals still yield a comment under 60,000 characters."""
    big = "".join(f"echo line {n} {'x' * 40}\n" for n in range(1000))
    many = "".join(
        approval(f"KB{n}").replace("name: hotfix", f"name: hotfix-{n}") + "---\n"
        for n in range(400)
    )
    document = plans.plan_document(
        desired(script()),
        desired(many + script(big)),
        now=SUNDAY_OPEN,
        observed=None,
        catalogue=CATALOGUE,
    )
    text = plans.render_markdown(document)
    assert len(text) < plans.MARKDOWN_LIMIT
    assert text.endswith("run `patchctl plan --format json` for all of it._\n")


NORTHWIND = """\
apiVersion: patchctl/v1
kind: Tenant
metadata: {name: northwind}
spec: {displayName: Northwind Traders, clients: [depot]}
"""


@pytest.mark.parametrize(
    ("scope", "shown"),
    [
        pytest.param(None, True, id="the-controller-host"),
        pytest.param("northwind", True, id="the-partner"),
        pytest.param("northwind/depot", False, id="its-client"),
        pytest.param("acme/retail", False, id="another-partners-client"),
        pytest.param("acme", False, id="another-partner"),
    ],
)
def test_a_tenant_document_is_its_partners_to_see(scope: str | None, shown: bool) -> None:
    """A Tenant document names its partner's clients: a plan shows a change to it only to the
    partner's scope (its `ObjectKey.owner`), not to every tenant like a global object."""
    document = plans.plan_document(
        desired(),
        desired(NORTHWIND),
        now=SUNDAY_OPEN,
        observed=None,
        catalogue=CATALOGUE,
        scope=scope,
    )
    assert (["Tenant/*/northwind"] if shown else []) == [c["object"] for c in document["changes"]]
