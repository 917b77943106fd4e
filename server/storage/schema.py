"""The database schema (SQLAlchemy Core). Migrations in server/migrations mirror it.

Times are integers in milliseconds since the Unix epoch, identical on SQLite
and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    false,
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
    # The directory ("liste rouge" users are left out of searches) and its accent- and case-free copies.
    Column("unlisted", Boolean, nullable=False, server_default=false()),
    Column("norm_name", String(300), nullable=False, server_default=""),
    Column("norm_profession", String(128), nullable=False, server_default=""),
    Column("norm_organisation", String(128), nullable=False, server_default=""),
    Column("norm_city", String(128), nullable=False, server_default=""),
    Index("ix_users_directory", "norm_name", "id"),
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

groups = Table(
    "groups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("created_by", Id, ForeignKey("users.id"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # Bumped by every membership event (and member device change): sends name the epoch they saw.
    Column("epoch", BigInteger, nullable=False),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", String(32), ForeignKey("groups.id"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("joined_at", BigInteger, nullable=False),
    Index("ix_group_members_user", "user_id"),
)

group_events = Table(
    "group_events",
    metadata,
    Column("group_id", String(32), ForeignKey("groups.id"), primary_key=True),
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("actor_id", Id, ForeignKey("users.id"), nullable=False),
    Column("subject_id", Id, ForeignKey("users.id"), nullable=True),
    Column("detail", String(128), nullable=False, server_default=""),
    Column("at", BigInteger, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),
    # No foreign keys on the columns of the tables every delivery writes (migration 0006): the
    # committer writes them for users and devices it has just read; neither is ever deleted.
    Column("sender_user_id", Id, nullable=False),
    Column("sender_device_id", Id, nullable=False),
    # Exactly one of the two: a user (one to one, a copy per device in the inbox) or a group.
    Column("recipient_user_id", Id, nullable=True),
    Column("group_id", String(32), ForeignKey("groups.id"), nullable=True),
    Column("client_id", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    # A group message's single ciphertext, stored once for every member device, and its hash.
    Column("body", LargeBinary, nullable=True),
    Column("body_sha256", LargeBinary(32), nullable=True),
    UniqueConstraint("sender_device_id", "client_id", name="uq_message_client_id"),
)

INBOX_MESSAGE = 1
INBOX_STATUS = 2
INBOX_GROUP_MESSAGE = 3
"""No ``frame``: built from ``messages.body`` and the entry's ``key`` when pushed."""
INBOX_GROUP_EVENT = 4

inbox = Table(
    "inbox",
    metadata,
    Column("device_id", Id, primary_key=True),  # no foreign key: see messages
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("message_id", String(40), nullable=False),
    # The encoded server frame, pushed as is: ciphertext and routing metadata only.
    Column("frame", LargeBinary, nullable=True),
    # For a group message: this device's copy of the sender key distribution, if any.
    Column("key", LargeBinary, nullable=True),
    Index("ix_inbox_message", "message_id"),
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
    # Signed by the receiving device over the hash of the ciphertext it received (docs/protocol.md §10.4).
    Column("sha256", LargeBinary(32), nullable=True),
    Column("device_time", BigInteger, nullable=True),
    Column("signature", LargeBinary(64), nullable=True),
)

message_copies = Table(
    "message_copies",
    metadata,
    # The SHA-256 of each ciphertext stored for a device (one to one copies, resent copies):
    # what a signed receipt's hash is checked against. A group message's one body has body_sha256.
    Column("message_id", String(40), primary_key=True),  # no foreign keys: see messages
    Column("device_id", Id, primary_key=True),
    Column("sha256", LargeBinary(32), primary_key=True),
)

ledger = Table(
    "ledger",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("entry", LargeBinary, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    # What the entry is about: a message id, or "d<device id>" for device entries.
    Column("ref", String(48), nullable=True, index=True),
    Column("created_at", BigInteger, nullable=False),
)

ledger_head = Table(
    "ledger_head",
    metadata,
    # One row (id 1): the last entry's seq and hash; locked by every append, so there is one chain.
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

ledger_signed_heads = Table(
    "ledger_signed_heads",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
    Column("signed_at", BigInteger, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

contacts = Table(
    "contacts",
    metadata,
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("contact_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("since", BigInteger, nullable=False),
)
