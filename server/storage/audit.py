"""What audits read: messages of some accounts over a period, and their receipts (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from server.storage.schema import group_members, groups, messages, receipts, users


@dataclass(frozen=True)
class AuditedMessage:
    id: str
    accepted_at: int
    sender_id: int
    sender_device: int
    recipient_id: int | None
    group_id: str | None
    group_name: str | None


@dataclass(frozen=True)
class AuditedReceipt:
    message_id: str
    user_id: int
    device_id: int
    kind: str
    at: int


async def user_ids(
    connection: AsyncConnection, *, username: str | None, organisation: str | None
) -> dict[int, str]:
    """The accounts an export covers: one username, or everyone of an organisation (exact name)."""
    query = select(users.c.id, users.c.username)
    if username is not None:
        query = query.where(users.c.username == username)
    if organisation is not None:
        query = query.where(users.c.organisation == organisation)
    return {row.id: row.username for row in await connection.execute(query)}


async def messages_of(
    connection: AsyncConnection, account_ids: list[int], start: int, end: int
) -> list[AuditedMessage]:
    """Messages sent by, or addressed to, these accounts (directly or through a group they are in)."""
    member_groups = select(group_members.c.group_id).where(group_members.c.user_id.in_(account_ids))
    # A group left since still counts for the messages the account acknowledged by a receipt.
    receipted = select(receipts.c.message_id).where(receipts.c.user_id.in_(account_ids))
    rows = await connection.execute(
        select(
            messages.c.id,
            messages.c.created_at,
            messages.c.sender_user_id,
            messages.c.sender_device_id,
            messages.c.recipient_user_id,
            messages.c.group_id,
            groups.c.name.label("group_name"),
        )
        .select_from(messages.outerjoin(groups, groups.c.id == messages.c.group_id))
        .where(
            messages.c.created_at >= start,
            messages.c.created_at < end,
            or_(
                messages.c.sender_user_id.in_(account_ids),
                messages.c.recipient_user_id.in_(account_ids),
                messages.c.group_id.in_(member_groups),
                messages.c.id.in_(receipted),
            ),
        )
        .order_by(messages.c.created_at, messages.c.id)
    )
    return [
        AuditedMessage(
            id=row.id,
            accepted_at=row.created_at,
            sender_id=row.sender_user_id,
            sender_device=row.sender_device_id,
            recipient_id=row.recipient_user_id,
            group_id=row.group_id,
            group_name=row.group_name,
        )
        for row in rows
    ]


async def receipts_of(connection: AsyncConnection, message_ids: list[str]) -> list[AuditedReceipt]:
    found: list[AuditedReceipt] = []
    for start in range(0, len(message_ids), 500):
        chunk = message_ids[start : start + 500]
        rows = await connection.execute(
            select(
                receipts.c.message_id,
                receipts.c.user_id,
                receipts.c.device_id,
                receipts.c.kind,
                receipts.c.at,
            )
            .where(receipts.c.message_id.in_(chunk))
            .order_by(receipts.c.at)
        )
        found.extend(AuditedReceipt(r.message_id, r.user_id, r.device_id, r.kind, r.at) for r in rows)
    return found


async def usernames(connection: AsyncConnection, ids: list[int]) -> dict[int, str]:
    rows = await connection.execute(select(users.c.id, users.c.username).where(users.c.id.in_(ids)))
    return {row.id: row.username for row in rows}
