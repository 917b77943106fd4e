"""server.settings: flags over LIEN_* variables over defaults; secrets from files; no secret in repr."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from server.settings import OPTIONS, Settings, add_arguments, build_settings, env_name

DATABASE_URL = "postgresql+asyncpg://lien:s3cr3t-pw@db.internal:5432/lien"
REDIS_URL = "redis://:r3dis-pw@cache.internal:6379/0"


def parse(*argv: str) -> dict[str, object]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(list(argv)))


def test_defaults() -> None:
    assert build_settings({}, {}) == Settings()
    assert build_settings(parse(), {}) == Settings()
    settings = Settings()
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{Path('data').resolve() / 'lien.db'}"
    assert settings.effective_node_name == "127.0.0.1:8000"


def test_environment_overrides_defaults() -> None:
    settings = build_settings(
        {},
        {
            "LIEN_HOST": "0.0.0.0",
            "LIEN_PORT": "9000",
            "LIEN_DATA_DIR": "/var/lib/lien",
            "LIEN_DATABASE_URL": DATABASE_URL,
            "LIEN_REDIS_URL": REDIS_URL,
            "LIEN_OPEN_REGISTRATION": "no",
            "LIEN_SESSION_TTL": "3600",
            "LIEN_LOG_LEVEL": "debug",
            "LIEN_MIGRATE_ON_START": "off",
            "LIEN_NODE_NAME": "node-a",
            "UNRELATED": "ignored",
        },
    )
    assert settings == Settings(
        host="0.0.0.0",
        port=9000,
        data_dir=Path("/var/lib/lien"),
        database_url=DATABASE_URL,
        redis_url=REDIS_URL,
        open_registration=False,
        session_ttl_seconds=3600,
        log_level="debug",
        migrate_on_start=False,
        node_name="node-a",
    )
    assert settings.effective_database_url == DATABASE_URL
    assert settings.effective_node_name == "node-a"


def test_flags_override_environment() -> None:
    environ = {"LIEN_PORT": "9000", "LIEN_OPEN_REGISTRATION": "false", "LIEN_HOST": "10.0.0.1"}
    settings = build_settings(parse("--port", "9100", "--open-registration"), environ)
    assert settings.port == 9100
    assert settings.open_registration is True
    assert settings.host == "10.0.0.1"  # no flag: the variable holds
    settings = build_settings(
        parse("--no-migrate-on-start", "--data-dir", "here"), {"LIEN_MIGRATE_ON_START": "1"}
    )
    assert settings.migrate_on_start is False
    assert settings.data_dir == Path("here")
    # Flags given as Python values (not strings) are taken as they are.
    assert build_settings({"port": 7000, "open_registration": False}, {"LIEN_PORT": "1"}).port == 7000


def test_every_option_has_a_flag_and_a_variable() -> None:
    fields = {field.name for field in dataclasses.fields(Settings)}
    assert {option.name for option in OPTIONS} == fields
    assert {env_name(option) for option in OPTIONS} == {
        "LIEN_HOST",
        "LIEN_PORT",
        "LIEN_DATA_DIR",
        "LIEN_DATABASE_URL",
        "LIEN_REDIS_URL",
        "LIEN_OPEN_REGISTRATION",
        "LIEN_SESSION_TTL",
        "LIEN_LOG_LEVEL",
        "LIEN_MIGRATE_ON_START",
        "LIEN_MAX_GROUP_MEMBERS",
        "LIEN_MESSAGE_MAX_AGE_DAYS",
        "LIEN_LEDGER_RETENTION_DAYS",
        "LIEN_RETENTION_INTERVAL",
        "LIEN_MESSAGE_RATE",
        "LIEN_MESSAGE_BURST",
        "LIEN_MAX_CONNECTIONS_PER_ACCOUNT",
        "LIEN_LEDGER_KEY_FILE",
        "LIEN_LEDGER_SIGN_INTERVAL",
        "LIEN_NODE_NAME",
        "LIEN_WEB_DIR",
    }
    assert {option.name for option in OPTIONS if option.secret} == {"database_url", "redis_url"}


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIEN_PORT", "8123")
    assert build_settings().port == 8123
    assert build_settings({}, {}).port == 8000  # an explicit mapping replaces it


@pytest.mark.parametrize("name", ["DATABASE_URL", "REDIS_URL"])
def test_secrets_from_files(tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    url = DATABASE_URL if name == "DATABASE_URL" else REDIS_URL
    secret.write_text(f"  {url}\n")
    field = name.lower()
    from_file = build_settings({}, {f"LIEN_{name}_FILE": str(secret)})
    assert getattr(from_file, field) == url
    # The variable itself wins over the file, and a flag over both.
    assert getattr(
        build_settings({}, {f"LIEN_{name}": "x://direct", f"LIEN_{name}_FILE": str(secret)}), field
    ) == ("x://direct")
    flag = f"--{name.lower().replace('_', '-')}"
    assert (
        getattr(build_settings(parse(flag, "x://flag"), {f"LIEN_{name}_FILE": str(secret)}), field)
        == "x://flag"
    )


def test_only_secrets_come_from_files(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    port_file.write_text("9999")
    assert build_settings({}, {"LIEN_PORT_FILE": str(port_file)}).port == 8000


def test_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_settings({}, {"LIEN_DATABASE_URL_FILE": str(tmp_path / "absent")})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" on ", True),
        ("0", False),
        ("False", False),
        ("no", False),
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert build_settings({}, {"LIEN_OPEN_REGISTRATION": raw}).open_registration is expected


@pytest.mark.parametrize("raw", ["", "maybe", "2", "y", "enabled"])
def test_bad_boolean(raw: str) -> None:
    with pytest.raises(ValueError, match="boolean"):
        build_settings({}, {"LIEN_MIGRATE_ON_START": raw})


@pytest.mark.parametrize("raw", ["", "eighty", "80.5"])
def test_bad_integer(raw: str) -> None:
    with pytest.raises(ValueError):
        build_settings({}, {"LIEN_PORT": raw})


def test_repr_hides_url_credentials() -> None:
    settings = build_settings({}, {"LIEN_DATABASE_URL": DATABASE_URL, "LIEN_REDIS_URL": REDIS_URL})
    for shown in (repr(settings), str(settings), f"{settings!r}"):
        assert "s3cr3t-pw" not in shown and "r3dis-pw" not in shown
        assert "db.internal" not in shown and "cache.internal" not in shown
        assert "postgresql+asyncpg:…" in shown and "redis:…" in shown
        assert "'port': 8000" in shown
    assert "None" in repr(Settings())  # unset URLs are shown as such


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
