"""The directory of professionals: search by name, profession, organisation and city (docs/protocol.md §4.7).

Signed-in users only. A professional who chose to be unlisted ("liste rouge")
never appears in results, yet stays reachable by username. Comparisons ignore
case and accents; results are ordered by name and paginated with an opaque
cursor.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from lien.protocol import errors
from lien.protocol.api import DirectoryPage, PublicProfile
from server.services import Services
from server.storage import accounts
from server.storage.normalise import normalise

DEFAULT_PAGE = 20
MAX_PAGE = 50
MAX_QUERY_CHARS = 128


def _encode_cursor(name: str, user_id: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([name, user_id])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, user_id = msgspec.json.decode(raw, type=tuple[str, int])
    except (binascii.Error, ValueError, msgspec.MsgspecError):
        raise errors.InvalidRequest("The cursor is not one this server gave.") from None
    return name, user_id


async def search(
    services: Services,
    *,
    q: str = "",
    profession: str = "",
    organisation: str = "",
    city: str = "",
    limit: int = DEFAULT_PAGE,
    cursor: str | None = None,
) -> DirectoryPage:
    for value in (q, profession, organisation, city):
        if len(value) > MAX_QUERY_CHARS:
            raise errors.InvalidRequest(f"Search terms are at most {MAX_QUERY_CHARS} characters.")
    if not 1 <= limit <= MAX_PAGE:
        raise errors.InvalidRequest(f"limit is from 1 to {MAX_PAGE}.")
    query = accounts.DirectoryQuery(
        words=normalise(q).split(),
        profession=normalise(profession),
        organisation=normalise(organisation),
        city=normalise(city),
        after=None if cursor is None else _decode_cursor(cursor),
    )
    async with services.database.read() as connection:
        found = await accounts.search_directory(connection, query, limit + 1)
    page = found[:limit]
    following = None
    if len(found) > limit:
        last, last_name = page[-1]
        following = _encode_cursor(last_name, last.id)
    return DirectoryPage(
        results=[PublicProfile(user=user.username, profile=user.profile) for user, _ in page], next=following
    )
