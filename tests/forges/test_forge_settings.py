"""The forge settings: the [forge] table and `serve --forge*` options, validated before serving."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.forges import settings
from controller.forges.settings import ForgeKind, ForgeSettings, ForgeSettingsError
from controller.redaction import redact_text

TOKEN = "forge-token-for-settings-tests"  # noqa: S105 - a test fixture
ENV = {"PATCHCTL_FORGE_TOKEN": TOKEN, "OTHER_TOKEN": "other-token-value-123"}


def test_the_table_gives_the_forge_and_options_win_key_by_key() -> None:
    """Options override the table; the token comes from the variable the table names."""
    table = {"kind": "gitlab", "repository": "acme/policies", "token-env": "OTHER_TOKEN"}
    found = settings.resolve(
        table, source="patchctl.toml", repository="acme/ops/policies", environ=ENV
    )
    expected = ForgeSettings(
        kind=ForgeKind.GITLAB,
        url="https://gitlab.com/api/v4",
        repository="acme/ops/policies",
        token_env="OTHER_TOKEN",  # noqa: S106 - a variable name
        token="other-token-value-123",  # noqa: S106 - a test fixture
    )
    assert expected == found
    assert "other-token-value-123" not in repr(found)


def test_no_kind_and_no_table_is_no_forge() -> None:
    """Without a kind anywhere, no forge is configured."""
    assert None is settings.resolve(None, source="patchctl.toml", environ=ENV)


def test_the_token_is_masked_once_read() -> None:
    """A token read from the environment is masked in every redacted text afterwards."""
    settings.resolve(
        None, source="patchctl.toml", kind="github", repository="acme/policies", environ=ENV
    )
    assert TOKEN not in redact_text(f"GET failed with {TOKEN}")


@pytest.mark.parametrize(
    ("table", "options", "message"),
    [
        pytest.param(
            {"kind": "github", "repo": "a/b"},
            {},
            "patchctl.toml: [forge]: unknown key(s) repo; known: kind, url, repository, token-env",
            id="unknown-key",
        ),
        pytest.param(
            {"kind": "bitbucket", "repository": "a/b"},
            {},
            "forge kind 'bitbucket' is not one of github, gitlab, gitea (Forgejo: gitea)",
            id="unknown-kind",
        ),
        pytest.param(
            {"repository": "a/b"},
            {},
            "patchctl.toml: [forge]: kind is required (github, gitlab or gitea), or --forge KIND",
            id="no-kind",
        ),
        pytest.param(
            {"kind": "gitea", "repository": "a/b"},
            {},
            "forge url is required for gitea (its API root, e.g. https://codeberg.org/api/v1)",
            id="gitea-without-url",
        ),
        pytest.param(
            {"kind": "github", "repository": "a/b", "url": "https://me:pw@ghe.example/api/v3"},
            {},
            "forge url must not carry credentials or a query: the token comes from token-env",
            id="credentials-in-url",
        ),
        pytest.param(
            {"kind": "github"},
            {},
            "forge repository is required (--forge-repository OWNER/NAME, or repository in "
            "[forge])",
            id="no-repository",
        ),
        pytest.param(
            {"kind": "github", "repository": "a b"},
            {},
            "forge repository 'a b' is not owner/name (GitLab: group/project or its id)",
            id="bad-repository",
        ),
        pytest.param(
            {"kind": "github", "repository": "a/b"},
            {"token_env": "UNSET_FORGE_TOKEN"},
            "the forge token is not set: put it in the environment variable UNSET_FORGE_TOKEN",
            id="token-unset",
        ),
        pytest.param(
            {"kind": "github", "repository": "a/b", "url": 3},
            {},
            "patchctl.toml: [forge]: url must be a string",
            id="not-a-string",
        ),
    ],
)
def test_settings_that_cannot_work_are_refused(
    table: dict[str, object], options: dict[str, str], message: str
) -> None:
    """Each mistake is refused with a message naming the key and what was expected."""
    with pytest.raises(ForgeSettingsError) as raised:
        settings.resolve(table, source="patchctl.toml", environ=ENV, **options)
    assert message == str(raised.value)


def test_serve_exits_2_before_serving_when_the_forge_token_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve` with a [forge] table but no token exits 2 naming the variable, and creates no
    database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PATCHCTL_FORGE_TOKEN", raising=False)
    (tmp_path / "patchctl.toml").write_text(
        '[forge]\nkind = "github"\nrepository = "acme/policies"\n', encoding="utf-8"
    )
    result = CliRunner().invoke(
        main, ["serve", "--db", f"sqlite:///{tmp_path / 'p.db'}", "--listen", "127.0.0.1:0"]
    )
    assert 2 == result.exit_code
    assert "put it in the environment variable PATCHCTL_FORGE_TOKEN" in result.stderr
    assert not (tmp_path / "p.db").exists()
