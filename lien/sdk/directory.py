"""Device lists of correspondents, as the server lists them and as the user accepted them (§7.4).

The client asks here which devices a user has (cached, refreshed on demand)
and which identity keys they hold. Every fetch is compared with the accepted
set (:mod:`lien.sdk.trust`); a difference is reported once as an
:class:`~lien.sdk.events.IdentityChanged` event.
"""

from __future__ import annotations

from collections.abc import Callable

from lien.crypto.keys import PublicIdentity
from lien.crypto.safety import SafetyNumber, safety_number
from lien.keystore import Keystore
from lien.sdk import trust
from lien.sdk.events import Event, IdentityChanged
from lien.sdk.http import ApiClient


class Directory:
    def __init__(self, api: ApiClient, keystore: Keystore, report: Callable[[Event], None]) -> None:
        self._api = api
        self._keystore = keystore
        self._report = report
        self._current: dict[str, trust.DeviceIdentities] = {}
        self._announced: dict[str, bytes] = {}
        self.policy: trust.IdentityPolicy = "warn"

    async def devices(self, username: str, *, refresh: bool = False) -> trust.DeviceIdentities:
        """The user's devices and their identity keys (fetched when not cached or ``refresh``)."""
        if refresh or username not in self._current:
            listing = await self._api.devices(username)
            current = {device.device: PublicIdentity.from_device(device) for device in listing.devices}
            self._current[username] = current
            self._compare_with_accepted(username, current)
        return self._current[username]

    async def identity_of(self, username: str, device: int) -> PublicIdentity | None:
        """The identity of one device, refreshing the list once if the device is unknown."""
        known = await self.devices(username)
        if device not in known:
            known = await self.devices(username, refresh=True)
        return known.get(device)

    def _compare_with_accepted(self, username: str, current: trust.DeviceIdentities) -> None:
        encoded = trust.encode_identities(current)
        accepted = self._keystore.trusted(username)
        if accepted is None:
            self._keystore.set_trusted(username, encoded)  # trust on first use
            return
        if accepted == encoded or self._announced.get(username) == encoded:
            return
        change = trust.compare(trust.decode_identities(accepted), current)
        self._announced[username] = encoded
        self._report(IdentityChanged(username, change.added, change.removed, change.replaced))
        if self.policy == "warn" and not change.replaced:
            self._keystore.set_trusted(username, encoded)

    def check_accepted(self, username: str) -> None:
        """Raise IdentityNotAccepted when sending to ``username`` must wait for the user's consent.

        That is when its devices differ from the accepted ones and the policy
        is ``"block"``, or, whatever the policy, when a device's keys were
        replaced under the same device id.
        """
        current = self._current.get(username)
        accepted = self._keystore.trusted(username)
        if current is None or accepted is None or accepted == trust.encode_identities(current):
            return
        if self.policy == "block" or trust.compare(trust.decode_identities(accepted), current).replaced:
            raise trust.IdentityNotAccepted()

    async def accept(self, username: str) -> None:
        """The user compared safety numbers (or otherwise agrees): accept the current devices."""
        current = await self.devices(username, refresh=True)
        self._keystore.set_trusted(username, trust.encode_identities(current))
        self._announced.pop(username, None)

    async def safety_number(self, own_username: str, username: str) -> SafetyNumber:
        own = await self.devices(own_username, refresh=True)
        theirs = await self.devices(username, refresh=True)
        return safety_number(own_username, own.values(), username, theirs.values())
