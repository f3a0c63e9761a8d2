"""The configuration file: read once by the `patchctl` group, every key meaningful, unknown
keys refused with their path, server tables handed to their owners (issue 12, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from controller.testing import run_cli

EXAMPLE = str(Path(__file__).resolve().parent.parent)  # the example policy repository (acme)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            'stat-dir = "x"\n',
            "patchctl.toml: stat-dir: not a known option of any command; did you mean 'state-dir'?",
            id="top-level-typo",
        ),
        pytest.param(
            '[serve]\nlistn = "0.0.0.0:1"\n',
            "patchctl.toml: serve.listn: not a known option of `patchctl serve`; did you mean 'listen'?",
            id="command-option-typo",
        ),
        pytest.param(
            '[serv]\nlisten = "0.0.0.0:1"\n',
            "patchctl.toml: serv: not a known command or table; did you mean 'serve'?",
            id="unknown-command",
        ),
        pytest.param(
            "[token.creat]\nkind = 'read'\n",
            "patchctl.toml: token.creat: not a known sub-command table; did you mean 'create'?",
            id="unknown-sub-command",
        ),
        pytest.param(
            "[jobs]\nstat = 'failed'\n",
            "patchctl.toml: jobs.stat: not a known option of `patchctl jobs`; did you mean 'state'?",
            id="listing-group-option-typo",
        ),
        pytest.param(
            "[token]\nkind = 'read'\n",
            "patchctl.toml: token.kind: not a known sub-command table",
            id="option-of-a-group-without-options",
        ),
        pytest.param(
            'access = "open"\n', "patchctl.toml: access: expected a table", id="table-as-value"
        ),
        pytest.param("[serve\n", "patchctl.toml: ", id="not-toml"),
        pytest.param(
            "[jobs]\njob-state = 'failed'\n",
            "patchctl.toml: jobs.job-state: not a known option of `patchctl jobs`; did you mean 'state'?",
            id="code-name-behind-a-flag",
        ),
        pytest.param(
            "as-json = true\n",
            "patchctl.toml: as-json: not a known option of any command",
            id="code-name-at-top-level",
        ),
    ],
)
def test_a_key_that_would_do_nothing_is_an_error(here: Path, text: str, message: str) -> None:
    """Unknown commands, options and tables exit 2 naming the key path, before any work."""
    (here / "patchctl.toml").write_text(text, encoding="utf-8")
    code, _, err = run_cli("token", "list", "--db", f"sqlite:///{here / 'p.db'}")
    assert 2 == code
    assert message in err
    assert not (here / "p.db").exists()


def test_top_level_and_command_options_are_used(here: Path) -> None:
    """A top-level `db` reaches every command that has the option; a `[token.create]` table
    sets that sub-command's defaults; the command line still wins (and a read command on a
    database that does not exist says so rather than creating it)."""
    db = here / "from-config.db"
    (here / "patchctl.toml").write_text(
        f'db = "sqlite:///{db}"\n\n[token.create]\nkind = "read"\n', encoding="utf-8"
    )
    code, created, err = run_cli("token", "create", "--tenant", "acme", "--json", "--repo", EXAMPLE)
    listed = json.loads(run_cli("token", "list", "--json")[1])
    other = here / "other.db"
    elsewhere = run_cli("token", "list", "--json", "--db", f"sqlite:///{other}")
    assert 0 == code, err
    assert "read" == json.loads(created)["kind"]
    assert [json.loads(created)["id"]] == [t["id"] for t in listed]
    assert 2 == elsewhere[0]  # the command line won: that database does not exist
    assert f"no state database at {other}" in elsewhere[2]


def test_an_explicit_config_file_must_exist(here: Path) -> None:
    """`--config` naming a missing file exits 2 and says so."""
    code, _, err = run_cli("--config", str(here / "nope.toml"), "token", "list")
    assert 2 == code
    assert "nope.toml: no such configuration file" in err


def test_the_access_table_comes_from_the_config_file(here: Path) -> None:
    """`reconcile` reads `[access]` from `--config FILE`, and a mistake there names the field."""
    config = here / "elsewhere.toml"
    config.write_text('[access]\n[access.tenants."*"]\napprovers = 7\n', encoding="utf-8")
    code, _, err = run_cli(
        "--config",
        str(config),
        "reconcile",
        "--repo",
        str(here),
        "--db",
        f"sqlite:///{here / 'p.db'}",
    )
    assert 2 == code
    assert f'{config}: access.tenants."*".approvers' in err


def test_the_documentation_lists_every_key() -> None:
    """docs/configuration.md's generated section equals what the commands accept."""
    from controller import config  # noqa: PLC0415

    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    generated = text.split("<!-- generated: begin -->\n", 1)[1].split("\n<!-- generated: end -->")[
        0
    ]
    assert config.reference(main) == generated


def test_the_keys_accepted_are_the_keys_documented() -> None:
    """Each option has exactly the key docs/configuration.md names, its long flag without
    dashes: never the parameter name behind it (`json`, not `as-json`; `state`, not
    `job-state`), so one setting has one spelling."""
    from controller import config  # noqa: PLC0415

    documented: set[tuple[str, str]] = set()
    table = ""
    for line in config.reference(main).splitlines():
        if line.startswith("### "):
            table = line.split("`[")[1].split("]`")[0]
        elif line.startswith("| `"):
            documented.add((table, line.split("`")[1]))
    accepted = {
        (".".join(path), key)
        for path, command in config._leaves(main)
        for key in config._option_names(command)
    }
    assert ("jobs", "state") in accepted
    assert documented == accepted


def test_a_listing_group_reads_its_own_table(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[jobs] server = ...` is used by `patchctl jobs` as `--server` would be (the group lists)."""
    monkeypatch.setenv("PATCHCTL_TOKEN", "pcr_x")
    (here / "patchctl.toml").write_text("[jobs]\nserver = 'ftp://example'\n", encoding="utf-8")
    code, _, err = run_cli("jobs")
    assert 2 == code
    assert "Invalid value for '--server'" in err
    assert "'ftp://example' is not an http:// or https:// URL" in err


@pytest.mark.parametrize("command", [["status"], ["token", "list"], ["serve"], ["feed", "import"]])
def test_a_command_help_answers_while_the_file_is_broken(here: Path, command: list[str]) -> None:
    """`patchctl <command> --help` answers (exit 0) with a file that does not load, so that the
    file can be fixed with the help at hand; the command itself still stops (exit 2)."""
    (here / "patchctl.toml").write_text("stat-dir = 'x'\n", encoding="utf-8")
    code, out, err = run_cli(*command, "--help")
    assert 0 == code, err
    assert f" {' '.join(command)} [OPTIONS]" in out.splitlines()[0]
    assert "" == err
    code, _, err = run_cli("status")
    assert 2 == code
    assert "patchctl.toml: stat-dir: not a known option" in err


def test_a_broken_file_is_named_before_a_missing_option_it_would_have_given(here: Path) -> None:
    """A file that sets a required option and does not load: the command names the file's
    error (as before help was let through), not the option the file would have given."""
    (here / "patchctl.toml").write_text(
        '[token.create]\ntenant = "acme"\n\n[serve]\nlistn = "x"\n', encoding="utf-8"
    )
    code, _, err = run_cli("token", "create")
    assert 2 == code
    assert "patchctl.toml: serve.listn: not a known option of `patchctl serve`" in err
    assert "Missing option" not in err
