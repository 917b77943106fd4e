"""The keystore password in the operating system's keyring, only when the user agreed.

The web client encrypts its keystore (keys, sessions, history) under the account
password, and asks for it at every start. The desktop application can keep that
password in the keyring of the user's session (Secret Service / GNOME Keyring or
KWallet on Linux, the Keychain on macOS, the Credential Locker on Windows, through
``keyring``), so the window opens unlocked. It does so only after the user ticked
the box that says so; unticking it, signing out, or a password that no longer
unlocks removes the entry.

The trade-off, also in the README: whoever can use the session, or run a program
in it, can then read the password from the keyring, open Lien as the user, and
sign in a new device. A keyring locked with the session protects it while the
user is logged out, not while the session is open.

Entries are named per server origin (``lien-desktop <origin>``, user = the Lien
username), so a page from one server never reads the password saved for another.
"""

from __future__ import annotations

import logging

import keyring
import keyring.backend
import keyring.errors
from keyring.backends import chainer, fail, null

from desktop_client import APP_NAME

logger = logging.getLogger(__name__)


class PassphraseStore:
    """The saved passwords of one server's accounts."""

    def __init__(self, server_origin: str, backend: keyring.backend.KeyringBackend | None = None) -> None:
        self.service = f"{APP_NAME} {server_origin}"
        self._backend = backend

    def _keyring(self) -> keyring.backend.KeyringBackend:
        return self._backend if self._backend is not None else keyring.get_keyring()

    def backend_name(self) -> str:
        backend = self._keyring()
        return getattr(backend, "name", type(backend).__name__)

    def available(self) -> bool:
        """Whether a real keyring is there (not keyring's "fail" or "null" stand-ins)."""
        backend = self._keyring()
        if isinstance(backend, fail.Keyring | null.Keyring):
            return False
        return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)

    def get(self, username: str) -> str | None:
        if not self.available():
            return None
        try:
            return self._keyring().get_password(self.service, username)
        except keyring.errors.KeyringError as error:
            logger.warning("the keyring did not answer: %s", type(error).__name__)
            return None

    def set(self, username: str, passphrase: str) -> bool:
        if not self.available():
            return False
        try:
            self._keyring().set_password(self.service, username, passphrase)
        except keyring.errors.KeyringError as error:
            logger.warning("the keyring refused the password: %s", type(error).__name__)
            return False
        return True

    def delete(self, username: str) -> bool:
        """Forget it; True when nothing is stored for ``username`` afterwards."""
        if not self.available():
            return True
        try:
            self._keyring().delete_password(self.service, username)
        except keyring.errors.PasswordDeleteError:
            return True  # there was none
        except keyring.errors.KeyringError as error:
            logger.warning("the keyring did not forget the password: %s", type(error).__name__)
            return False
        return True
