"""`patchctl simulate` without --token spreads its devices over the tenants the policy declares
and invents none (issue 16, item 8)."""

from __future__ import annotations

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
