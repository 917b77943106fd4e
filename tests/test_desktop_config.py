"""desktop_client.config and .settings: what is remembered between runs, and the flags."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from desktop_client.config import (
    DEFAULT_SERVER_URL,
    MIN_WIDTH,
    ConfigStore,
    DesktopConfig,
    WindowGeometry,
    remembered_server,
)
from desktop_client.settings import SettingsError, build_settings, normalise_server_url


def test_a_missing_file_gives_the_defaults(tmp_path: Path) -> None:
    config = ConfigStore(tmp_path / "nowhere").load()
    assert config == DesktopConfig()
    assert config.server_url == DEFAULT_SERVER_URL
    assert (config.window.x, config.window.y) == (None, None)


def test_server_and_geometry_survive_a_save_and_a_load(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "lien-desktop")
    saved = DesktopConfig(
        server_url="https://lien.example.org",
        window=WindowGeometry(width=1300, height=900, x=40, y=-20, maximized=True),
    )
    store.save(saved)
    assert ConfigStore(tmp_path / "lien-desktop").load() == saved
    assert [p.name for p in store.path.parent.iterdir()] == ["config.json"]  # no temporary file left


def test_an_unreadable_file_gives_the_defaults_and_the_next_save_repairs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ConfigStore(tmp_path)
    store.path.write_text('{"server_url": 42')
    with caplog.at_level(logging.WARNING):
        assert store.load() == DesktopConfig()
    assert "not a valid config" in caplog.text
    store.save(DesktopConfig(server_url="http://127.0.0.1:9000"))
    assert store.load().server_url == "http://127.0.0.1:9000"


def test_a_window_squeezed_to_nothing_comes_back_at_the_minimum_size(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    store.path.write_text('{"window": {"width": 10, "height": 5, "x": 0, "y": 0}}')
    window = store.load().window
    assert window.width == MIN_WIDTH
    assert window.height >= 480


def test_the_server_given_is_remembered_and_used_when_none_is_given(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path)
    assert remembered_server(store, None)[0] == DEFAULT_SERVER_URL
    assert not store.path.exists()  # nothing to remember yet
    assert remembered_server(store, "https://lien.example.org")[0] == "https://lien.example.org"
    server, config = remembered_server(store, None)
    assert server == "https://lien.example.org"
    assert config.window == WindowGeometry()


@pytest.mark.parametrize(
    ("given", "origin"),
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://Lien.Example.org/", "https://lien.example.org"),
        (" https://lien.example.org:8443 ", "https://lien.example.org:8443"),
    ],
)
def test_server_addresses_are_kept_as_origins(given: str, origin: str) -> None:
    assert normalise_server_url(given) == origin


@pytest.mark.parametrize(
    "given", ["lien.example.org", "ftp://lien.example.org", "https://lien.example.org/app", "http://"]
)
def test_addresses_that_are_not_a_server_origin_are_refused(given: str) -> None:
    with pytest.raises(SettingsError):
        normalise_server_url(given)


def test_settings_follow_the_xdg_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    settings = build_settings(
        ["--server", "https://lien.example.org"], {"LIEN_DESKTOP_EVENT_LOG": str(tmp_path / "e.jsonl")}
    )
    assert settings.server_url == "https://lien.example.org"
    assert settings.config_dir == tmp_path / "config" / "lien-desktop"
    assert settings.data_dir == tmp_path / "data" / "lien-desktop"
    assert settings.runtime_dir == tmp_path / "run" / "lien-desktop"
    assert settings.event_log == tmp_path / "e.jsonl"
    assert build_settings([], {}).server_url is None
    assert build_settings([], {}).event_log is None
