"""desktop_client.bridge and .page_api on their own: a fake window and notifier, keyring in memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import fail

from desktop_client.bridge import Bridge, BridgeArgumentError, EventLog, window_title
from desktop_client.notifier import Notification, OnClick
from desktop_client.page_api import PAGE_CALLS, make_page_api
from desktop_client.passphrases import PassphraseStore
from tests.desktop_keyring import MemoryKeyring

SERVER = "https://lien.example.org"


class FakeWindow:
    def __init__(self) -> None:
        self.titles: list[str] = []
        self.forwards = 0
        self.scripts: list[str] = []

    def set_title(self, title: str) -> None:
        self.titles.append(title)

    def bring_forward(self) -> None:
        self.forwards += 1

    def run_script(self, script: str) -> None:
        self.scripts.append(script)


class FakeNotifier:
    name = "fake"

    def __init__(self) -> None:
        self.shown: list[tuple[Notification, OnClick]] = []

    def show(self, notification: Notification, on_click: OnClick) -> None:
        self.shown.append((notification, on_click))

    def close(self) -> None:
        pass


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        self.window = FakeWindow()
        self.notifier = FakeNotifier()
        self.log = tmp_path / "events.jsonl"
        self.retries = 0
        self.bridge = Bridge(
            window=self.window,
            notifier=self.notifier,
            passphrases=PassphraseStore(SERVER),
            event_log=EventLog(self.log),
            on_retry=self.retry,
        )

    def retry(self) -> None:
        self.retries += 1

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        return [event for event in map(json.loads, lines) if event["event"] == kind]


@pytest.fixture
def desk(tmp_path: Path, memory_keyring: MemoryKeyring) -> Desk:
    return Desk(tmp_path)


def test_a_notification_is_shown_and_recorded_and_its_click_opens_the_conversation(desk: Desk) -> None:
    assert desk.bridge.notify("Lien", "Nouveau message de Dr Martin", "lien-Dr Martin", "7")
    [(notification, on_click)] = desk.notifier.shown
    assert notification == Notification("Lien", "Nouveau message de Dr Martin", "lien-Dr Martin")
    [event] = desk.events("notification")
    assert (event["body"], event["notifier"]) == ("Nouveau message de Dr Martin", "fake")

    on_click()  # the user clicks it
    assert desk.window.forwards == 1
    assert desk.window.scripts == ['window.lienDesktop && window.lienDesktop.activate("7")']
    assert desk.events("forward") == [{**desk.events("forward")[0], "reason": "notification", "key": "7"}]


@pytest.mark.parametrize(
    "arguments",
    [(1, "body", "tag", "1"), ("Lien", "x" * 201, "tag", "1"), ("Lien", "body", "tag", None)],
)
def test_notification_arguments_are_checked(desk: Desk, arguments: tuple[object, ...]) -> None:
    with pytest.raises(BridgeArgumentError):
        desk.bridge.notify(*arguments)
    assert desk.notifier.shown == []


def test_the_title_shows_the_unread_count_and_stays_offline_while_retrying(desk: Desk) -> None:
    assert desk.bridge.set_unread(3) == "(3) Lien"
    assert desk.bridge.connection_state("offline") == "(3) Lien — hors ligne"
    assert desk.bridge.connection_state("connecting") == "(3) Lien — hors ligne"
    assert desk.bridge.connection_state("ready") == "(3) Lien"
    assert desk.bridge.set_unread(0) == "Lien"
    assert desk.bridge.set_unread(0) == "Lien"
    assert desk.window.titles == ["(3) Lien", "(3) Lien — hors ligne", "(3) Lien", "Lien"]
    assert [event["title"] for event in desk.events("title")] == desk.window.titles
    assert window_title(12, offline=False) == "(12) Lien"


@pytest.mark.parametrize("count", [-1, True, 1.5, "3", 10**9])
def test_an_unread_count_must_be_a_whole_number(desk: Desk, count: object) -> None:
    with pytest.raises(BridgeArgumentError):
        desk.bridge.set_unread(count)


def test_unknown_connection_states_are_refused(desk: Desk) -> None:
    with pytest.raises(BridgeArgumentError):
        desk.bridge.connection_state("hacked")


def test_the_password_is_kept_in_the_keyring_only_when_asked_and_forgotten_on_request(
    desk: Desk, memory_keyring: MemoryKeyring
) -> None:
    assert desk.bridge.keyring_status() == {
        "available": True,
        "backend": "desktop keyring MemoryKeyring",
    }
    assert desk.bridge.stored_passphrase("dr.martin") is None
    assert memory_keyring.entries == {}

    assert desk.bridge.remember_passphrase("dr.martin", "un mot de passe assez long")
    assert memory_keyring.entries == {("lien-desktop " + SERVER, "dr.martin"): "un mot de passe assez long"}
    assert desk.bridge.stored_passphrase("dr.martin") == "un mot de passe assez long"
    [event] = desk.events("passphrase")
    assert "un mot de passe assez long" not in json.dumps(event)

    assert desk.bridge.forget_passphrase("dr.martin")
    assert desk.bridge.stored_passphrase("dr.martin") is None
    assert desk.bridge.forget_passphrase("dr.martin")  # forgetting twice is fine
    assert memory_keyring.entries == {}


def test_a_page_from_another_server_does_not_read_the_password(desk: Desk, tmp_path: Path) -> None:
    desk.bridge.remember_passphrase("dr.martin", "un mot de passe assez long")
    other = Bridge(
        window=FakeWindow(),
        notifier=FakeNotifier(),
        passphrases=PassphraseStore("http://evil.example"),
        event_log=EventLog(None),
    )
    assert other.stored_passphrase("dr.martin") is None


@pytest.mark.parametrize("username", ["Dr.Martin", "a", "../etc", 42, "x" * 40])
def test_keyring_calls_take_lien_usernames_only(desk: Desk, username: object) -> None:
    with pytest.raises(BridgeArgumentError):
        desk.bridge.stored_passphrase(username)
    with pytest.raises(BridgeArgumentError):
        desk.bridge.remember_passphrase(username, "secret")


def test_an_empty_password_is_not_stored(desk: Desk) -> None:
    with pytest.raises(BridgeArgumentError):
        desk.bridge.remember_passphrase("dr.martin", "")


def test_without_a_keyring_nothing_is_offered_or_stored(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        desk = Desk(tmp_path)
        assert desk.bridge.keyring_status() == {"available": False, "backend": None}
        assert not desk.bridge.remember_passphrase("dr.martin", "un mot de passe assez long")
        assert desk.bridge.stored_passphrase("dr.martin") is None
        assert desk.bridge.forget_passphrase("dr.martin")
    finally:
        keyring.set_keyring(previous)


def test_the_offline_page_button_retries(desk: Desk) -> None:
    desk.bridge.retry_now()
    assert desk.retries == 1
    assert len(desk.events("retry")) == 1


def test_a_second_launch_brings_the_window_forward(desk: Desk) -> None:
    desk.bridge.bring_forward("second-instance")
    assert desk.window.forwards == 1
    assert desk.events("forward")[0]["reason"] == "second-instance"


def _resolve(api: object, dotted: str) -> object | None:
    """How pywebview finds the Python function a page names (webview.util.js_bridge_call)."""
    target: object | None = api
    for name in dotted.split("."):
        target = getattr(target, name, None)
        if target is None:
            return None
    return target


def test_the_page_reaches_the_bridge_calls_and_nothing_behind_them(desk: Desk) -> None:
    api = make_page_api(desk.bridge)
    assert dir(api) == sorted(PAGE_CALLS)
    set_unread = _resolve(api, "set_unread")
    assert callable(set_unread)
    assert set_unread(2) == "(2) Lien"
    for path in [
        "_passphrases",
        "_bridge",
        "__class__",
        "__dict__",
        "notify.__self__._passphrases",
        "notify.__self__.__class__",
        "keyring_status.__func__.__closure__.0",
        "remember_passphrase.__self__.__getattribute__",
    ]:
        assert _resolve(api, path) is None, path


def test_the_page_api_forwards_every_call(desk: Desk) -> None:
    api: Any = make_page_api(desk.bridge)
    assert api.notify("Lien", "Nouveau message de X", "lien-X", "1") is True
    assert api.connection_state("offline") == "Lien — hors ligne"
    assert api.keyring_status()["available"] is True
    assert api.remember_passphrase("dr.martin", "un mot de passe assez long") is True
    assert api.stored_passphrase("dr.martin") == "un mot de passe assez long"
    assert api.forget_passphrase("dr.martin") is True
    api.retry_now()
    assert desk.retries == 1
