"""Audit exports: who exchanged messages with whom, and when each was accepted, decrypted and read.

For an account or an organisation over a period (default: the last three
months), as CSV or as a printable HTML page (docs/operations.md, "Audits").
Built from metadata only: message ids, accounts, devices and times. The
server has no message text to put in it.
"""

from __future__ import annotations

import csv
import html
import io
from dataclasses import dataclass
from datetime import UTC, datetime

from lien.protocol import errors
from server.storage import audit
from server.storage.database import Database

DEFAULT_PERIOD_MS = 92 * 24 * 3600 * 1000
COLUMNS = (
    "message",
    "accepted_at",
    "direction",
    "sender",
    "sender_device",
    "conversation",
    "recipient",
    "delivered_at",
    "decrypted_at",
    "read_at",
    "decrypt_failed_at",
)


@dataclass(frozen=True)
class Row:
    message: str
    accepted_at: int
    direction: str
    sender: str
    sender_device: int
    conversation: str
    recipient: str
    times: dict[str, int]


@dataclass(frozen=True)
class Export:
    title: str
    start: int
    end: int
    accounts: list[str]
    rows: list[Row]

    @property
    def correspondents(self) -> list[str]:
        own = set(self.accounts)
        found = {row.sender for row in self.rows} | {row.recipient for row in self.rows}
        return sorted(found - own - {""})


def _iso(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def build(
    database: Database,
    now: int,
    *,
    username: str | None = None,
    organisation: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> Export:
    if (username is None) == (organisation is None):
        raise errors.InvalidRequest("Export one account or one organisation.")
    end = end if end is not None else now
    start = start if start is not None else end - DEFAULT_PERIOD_MS
    if start >= end:
        raise errors.InvalidRequest("The period must end after it starts.")
    async with database.read() as connection:
        accounts = await audit.user_ids(connection, username=username, organisation=organisation)
        if not accounts:
            raise errors.UnknownUser()
        found = await audit.messages_of(connection, list(accounts), start, end)
        receipts = await audit.receipts_of(connection, [message.id for message in found])
        names = await audit.usernames(
            connection,
            sorted({m.sender_id for m in found} | {m.recipient_id for m in found if m.recipient_id}
                   | {r.user_id for r in receipts}),
        )  # fmt: skip
    by_message: dict[str, dict[int, dict[str, int]]] = {}
    for receipt in receipts:
        times = by_message.setdefault(receipt.message_id, {}).setdefault(receipt.user_id, {})
        times.setdefault(receipt.kind, receipt.at)
    rows: list[Row] = []
    for message in found:
        direction = "sent" if message.sender_id in accounts else "received"
        conversation = message.group_name or message.group_id or ""
        reached = by_message.get(message.id, {})
        recipients = [message.recipient_id] if message.recipient_id else sorted(reached)
        if not recipients:
            recipients = [0]
        for recipient_id in recipients:
            if direction == "received" and message.group_id and recipient_id not in accounts:
                continue  # a received group message: only the exported accounts' own receipts
            rows.append(
                Row(
                    message=message.id,
                    accepted_at=message.accepted_at,
                    direction=direction,
                    sender=names.get(message.sender_id, ""),
                    sender_device=message.sender_device,
                    conversation=f"group {conversation}" if message.group_id else "one to one",
                    recipient=names.get(recipient_id, ""),
                    times=reached.get(recipient_id, {}),
                )
            )
    title = f"account {username}" if username is not None else f"organisation {organisation}"
    return Export(title=title, start=start, end=end, accounts=sorted(accounts.values()), rows=rows)


def _cells(row: Row) -> list[str]:
    decrypted = row.times.get("decrypted")
    return [
        row.message,
        _iso(row.accepted_at),
        row.direction,
        row.sender,
        str(row.sender_device),
        row.conversation,
        row.recipient,
        _iso(row.times.get("delivered", decrypted)),
        _iso(decrypted),
        _iso(row.times.get("read")),
        _iso(row.times.get("decrypt-failed")),
    ]


def to_csv(export: Export) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in export.rows:
        writer.writerow(_cells(row))
    return out.getvalue()


def to_html(export: Export, generated_at: int) -> str:
    """A self-contained page to print or archive; every value escaped."""
    head = "".join(f"<th scope=col>{html.escape(column.replace('_', ' '))}</th>" for column in COLUMNS)
    body = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _cells(row)) + "</tr>"
        for row in export.rows
    )
    correspondents = ", ".join(html.escape(name) for name in export.correspondents) or "none"
    accounts = html.escape(", ".join(export.accounts))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Lien audit export: {html.escape(export.title)}</title>
<style>
body {{ font: 11pt/1.4 system-ui, sans-serif; margin: 2em; color: #111; }}
table {{ border-collapse: collapse; width: 100%; font-size: 9pt; }}
th, td {{ border: 1px solid #999; padding: .25em .4em; text-align: left; vertical-align: top; }}
th {{ background: #eee; }}
@media print {{ body {{ margin: 0; }} tr {{ break-inside: avoid; }} }}
</style></head><body>
<h1>Lien audit export</h1>
<p><strong>{html.escape(export.title)}</strong>, from {_iso(export.start)} to {_iso(export.end)}
(generated {_iso(generated_at)}). Times are the server's, in UTC. Accounts: {accounts}.</p>
<p>{len({row.message for row in export.rows})} messages. Correspondents: {correspondents}.</p>
<p>Message contents are end-to-end encrypted: the server never had them, and this export holds none.
Each time comes from a receipt signed by the recipient's device (see the proof bundle of a message).</p>
<table><thead><tr>{head}</tr></thead><tbody>
{body}
</tbody></table></body></html>
"""
