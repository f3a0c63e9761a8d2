"""`patchctl explain`'s text: the header's install opportunity and the per-patch sentences agree,
rendered from the JSON document the local and the remote command share."""

from __future__ import annotations

import json

from controller.cli.operate import explanation_lines
from controller.core.explain import explain
from controller.kinds.common import OsFamily
from controller.runtime.explaining import explanation_json
from controller.testing.fleets import SUNDAY_OPEN, desired, device, observed, scan

APPROVE_GW = """\
apiVersion: patchctl/v1
kind: Approval
metadata: {name: ok, tenant: acme/retail}
spec: {patches: [USN-1-1], targets: {devices: [gw]}, reason: needed}
"""


def test_a_gateway_says_never_patched_in_the_header_and_per_patch() -> None:
    """A gateway a PatchWindow targets: 'gateway: never patched', never 'no window targets it'."""
    view = device("gw", os=OsFamily.LINUX, role="gateway")
    state = desired(APPROVE_GW)
    result = explain(state, observed((view, scan("USN-1-1"))), view, now=SUNDAY_OPEN)
    lines = explanation_lines(json.loads(json.dumps(explanation_json(result, state.revision))))
    assert (
        "next install opportunity: gateway: never patched",
        True,
        True,
        False,
    ) == (
        lines[2],
        "PatchWindow acme/weekly" in lines[3],
        lines[-1].endswith("approved by Approval acme/retail/ok; gateway: never patched"),
        any("no patch window targets" in line for line in lines),
    )
