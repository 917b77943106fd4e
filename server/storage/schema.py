"""The database schema (SQLAlchemy Core). Migrations in server/migrations mirror it.

Times are integers in milliseconds since the Unix epoch, identical on SQLite
and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("display_name", String(128), nullable=False),
    Column("profession", String(128), nullable=False, server_default=""),
    Column("rpps", String(11), nullable=False, server_default=""),
    Column("organisation", String(128), nullable=False, server_default=""),
    Column("city", String(128), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("name", String(64), nullable=False, server_default=""),
    Column("identity_signing_key", LargeBinary(32), nullable=False),
    Column("identity_exchange_key", LargeBinary(32), nullable=False),
    Column("signed_prekey_id", BigInteger, nullable=False),
    Column("signed_prekey", LargeBinary(32), nullable=False),
    Column("signed_prekey_signature", LargeBinary(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    # Last inbox seq handed out; bumped under the row lock so one device's seqs commit in order.
    Column("next_seq", BigInteger, nullable=False, server_default="0"),
    Column("acked_seq", BigInteger, nullable=False, server_default="0"),
    Column("removed_at", BigInteger, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=False, index=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

invites = Table(
    "invites",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("code_hash", LargeBinary(32), nullable=False, unique=True),
    Column("note", String(128), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_by", Id, ForeignKey("users.id"), nullable=True),
    Column("used_at", BigInteger, nullable=True),
)

one_time_prekeys = Table(
    "one_time_prekeys",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    UniqueConstraint("device_id", "key_id", name="uq_prekey_device_key"),
    Index("ix_prekey_device_order", "device_id", "id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("sender_user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("sender_device_id", Id, ForeignKey("devices.id"), nullable=False),
    Column("recipient_user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("client_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("sender_device_id", "client_id", name="uq_message_client_id"),
)

INBOX_MESSAGE = 1
INBOX_STATUS = 2

inbox = Table(
    "inbox",
    metadata,
    Column("device_id", Id, ForeignKey("devices.id"), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("message_id", String(40), nullable=False),
    # The encoded server frame, pushed as is: ciphertext and routing metadata only.
    Column("frame", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

receipts = Table(
    "receipts",
    metadata,
    Column("message_id", String(40), ForeignKey("messages.id"), primary_key=True),
    Column("device_id", Id, ForeignKey("devices.id"), primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("at", BigInteger, nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("contact_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("since", BigInteger, nullable=False),
)
