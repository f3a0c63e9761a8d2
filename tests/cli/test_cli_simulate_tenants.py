"""`patchctl simulate` without --token spreads its devices over the tenants the policy declares
and invents none (issue 16, item 8)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from click.testing import CliRunner

from controller.cli import main
from controller.cli.simulate import declared_tenants
from controller.testing import PolicyRepo

BASELINE = """\
apiVersion: patchctl/v1
kind: Baseline
metadata: {name: linux-security}
spec:
  os: linux
  targets: {selector: {os: linux}}
  rules: [{classifications: [security]}]
"""


def test_the_example_declares_the_simulated_tenants(
    example_repo: PolicyRepo, tmp_path: Path
) -> None:
    """The example's tenants, in the order the simulator has always used (same seed, same fleet)."""
    found = declared_tenants(str(example_repo.path), branch="main", state_dir=tmp_path / "state")
    assert ("acme/retail", "acme/logistics", "acme") == found


def test_a_policy_without_tenants_is_refused(tmp_path: Path) -> None:
    """Exit 2 naming the tenants it would have invented; no database is created."""
    policy_repo = PolicyRepo(tmp_path / "repo")
    policy_repo.write("policies/baselines/linux.yaml", BASELINE)
    policy_repo.commit("a baseline, no tenant")
    state = tmp_path / "state"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--devices",
            "1",
            "--repo",
            str(policy_repo.path),
            "--branch",
            "main",
            "--state-dir",
            str(state),
            "--server",
            "http://127.0.0.1:9",
            "--once",
            "--duration",
            "5s",
        ],
    )
    assert 2 == result.exit_code, result.output
    assert (
        "declares no tenant (kind: Tenant); simulate will not invent acme/retail, " in result.stderr
    )
    assert "pass --token TENANT=TOKEN" in result.stderr
    assert not (state / "patchctl.db").exists()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_summary_is_text_without_json(tmp_path: Path) -> None:
    """Without --json the summary is lines of text, one count per line; --json is one object."""
    server = f"http://127.0.0.1:{closed_port()}"
    args = ["simulate", "--devices", "2", "--once", "--ramp-up", "0s", "--token", "acme=x"]
    args += ["--server", server, "--state-dir", str(tmp_path / "state")]
    text = CliRunner().invoke(main, args)
    as_json = CliRunner().invoke(main, [*args, "--json"])
    lines = text.stdout.splitlines()
    assert (1, f"simulated 2 devices against {server} (seed 1)", "  enrolled             0") == (
        text.exit_code,
        lines[0],
        lines[1],
    )
    assert "  patches failed       0" in lines
    assert lines[-1].startswith("  errors               ")
    assert (1, 2, 0) == (
        as_json.exit_code,
        json.loads(as_json.stdout)["devices"],
        json.loads(as_json.stdout)["enrolled"],
    )


def test_a_server_that_is_not_a_url_is_a_usage_error(tmp_path: Path) -> None:
    """Exit 2 naming --server before any agent runs or any token is created in the store."""
    state = tmp_path / "state"
    result = CliRunner().invoke(
        main, ["simulate", "--devices", "1", "--server", "notaurl", "--state-dir", str(state)]
    )
    assert (2, True, False) == (
        result.exit_code,
        "Invalid value for '--server'" in result.stderr
        and "'notaurl' is not an http:// or https:// URL" in result.stderr,
        state.exists(),
    )
