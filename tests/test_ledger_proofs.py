"""The ledger and proofs: a real exchange proven offline, and every kind of tampering caught."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest

import lien
from lien import ledger
from lien.keystore import Keystore
from lien.proofs import verify_proof
from server.handlers import exports
from server.settings import Settings
from server.storage.database import Database
from tests.inprocess import PASSWORD, serving

CANARY = "CANARY Kaliémie 6,9 mmol/L — Mme Lefèvre 7f3a"


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[tuple[str, lien.Client, lien.Client, lien.Message, str]]:
    """A running node; the lab sends the doctor a message that is decrypted and read."""
    database = tmp_path / "lien.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{database}", data_dir=tmp_path, ledger_sign_interval=0.2
    )
    async with serving(settings) as url:
        lab = await lien.Client.register(
            url, "labo.durand", PASSWORD, keystore=tmp_path / "lab", organisation="Labo"
        )
        doctor = await lien.Client.register(url, "dr.martin", PASSWORD, keystore=tmp_path / "doctor")
        await lab.connect()
        await doctor.connect()
        message_id = await lab.send_text("dr.martin", CANARY)
        received = await doctor.receive(timeout=20)
        await doctor.mark_read(received)
        kinds = set()
        async with asyncio.timeout(20):
            while kinds != {"decrypted", "read"}:
                event = await lab.next_event()
                if isinstance(event, lien.Receipt):
                    assert event.verified, event
                    kinds.add(event.kind)
        yield url, lab, doctor, received, message_id
        await lab.close()
        await doctor.close()


async def test_a_real_exchange_is_proven_offline_by_the_cli(
    exchange: tuple[str, lien.Client, lien.Client, lien.Message, str], tmp_path: Path
) -> None:
    _, lab, doctor, received, message_id = exchange
    assert [r.kind for r in lab.kept_receipts(message_id)] == ["decrypted", "read"]
    bundle = tmp_path / "proof.json"
    bundle.write_bytes(await doctor.message_proof(received))
    result = subprocess.run(
        [sys.executable, "-m", "server", "verify-proof", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "PROVEN" in out and "NOT PROVEN" not in out
    assert "from labo.durand (device 1) for dr.martin" in out
    assert "Decrypted by dr.martin (device 2)" in out and "Read by dr.martin (device 2)" in out
    assert "labo.durand signed this text for dr.martin" in out and CANARY in out
    # The sender can ask for the bundle too (without the text, which it does not need to prove).
    assert verify_proof(ledger.proof_decoder.decode(await lab.message_proof(message_id))).proven

    # Tampering with the file is caught, and the CLI says so.
    tampered = bundle.read_text().replace('"kind":"read"', '"kind":"decrypted"', 1)
    bundle.write_text(tampered)
    refused = subprocess.run(
        [sys.executable, "-m", "server", "verify-proof", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "NOT PROVEN" in refused.stdout


async def test_every_kind_of_tampering_is_detected(
    exchange: tuple[str, lien.Client, lien.Client, lien.Message, str],
) -> None:
    _, _, doctor, received, _ = exchange
    proof = ledger.proof_decoder.decode(await doctor.message_proof(received))
    assert verify_proof(proof).proven
    where = next(
        i
        for i, s in enumerate(proof.segments)
        if any(isinstance(e.entry, ledger.MessageAccepted) for e in s.entries)
    )
    segment = proof.segments[where]

    def with_segment(**changes: object) -> ledger.Proof:
        segments = list(proof.segments)
        segments[where] = msgspec.structs.replace(segment, **changes)
        return msgspec.structs.replace(proof, segments=segments)

    accepted_index = next(
        i for i, e in enumerate(segment.entries) if isinstance(e.entry, ledger.MessageAccepted)
    )
    accepted = segment.entries[accepted_index]
    later = msgspec.structs.replace(accepted.entry, at=accepted.entry.at + 3_600_000)  # type: ignore[arg-type]
    changed = list(segment.entries)
    changed[accepted_index] = msgspec.structs.replace(accepted, entry=later)
    cases = {
        "an entry changed": with_segment(entries=changed),
        "an entry removed": with_segment(
            entries=[e for i, e in enumerate(segment.entries) if i != accepted_index]
        ),
        "two entries swapped": with_segment(
            entries=[
                msgspec.structs.replace(e, seq=segment.entries[-1 - i].seq)
                for i, e in enumerate(segment.entries)
            ]
        ),
        "a link dropped": with_segment(chain=segment.chain[1:])
        if segment.chain
        else with_segment(chain=[ledger.ChainLink(seq=10**6, digest=bytes(32))]),
        "another start": with_segment(
            start_hash=bytes(32) if segment.start_hash != bytes(32) else b"\x01" * 32
        ),
        "a forged head": with_segment(head=msgspec.structs.replace(segment.head, seq=segment.head.seq + 1)),
        "a head signed by someone else": with_segment(
            head=msgspec.structs.replace(segment.head, signature=bytes(64))
        ),
    }
    assert proof.evidence is not None
    wrong_text = proof.evidence.payload.replace(b"6,9", b"3,9")
    cases["a wrong plaintext"] = msgspec.structs.replace(
        proof, evidence=msgspec.structs.replace(proof.evidence, payload=wrong_text)
    )
    for what, altered in cases.items():
        assert not verify_proof(altered).proven, what


async def test_neither_the_ledger_nor_the_exports_hold_message_text(
    exchange: tuple[str, lien.Client, lien.Client, lien.Message, str], tmp_path: Path
) -> None:
    url, lab, _, _, message_id = exchange
    with sqlite3.connect(tmp_path / "lien.db") as connection:
        rows = connection.execute("SELECT entry FROM ledger").fetchall()
    assert rows and not [row for row in rows if CANARY.encode() in row[0] or b"Lef" in row[0]]
    assert any(message_id.encode() in row[0] for row in rows)

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}")
    try:
        export = await exports.build(database, 2**41, organisation="Labo", start=0)
    finally:
        await database.close()
    csv_text, page = exports.to_csv(export), exports.to_html(export, 0)
    assert message_id in csv_text and message_id in page and "dr.martin" in csv_text
    assert CANARY not in csv_text and CANARY not in page and "Lef" not in csv_text + page
    (row,) = [line for line in csv_text.splitlines() if message_id in line]
    cells = row.split(",")
    assert cells[2:4] == ["sent", "labo.durand"] and cells[6] == "dr.martin" and cells[8] and cells[9]

    token = lab.keystore.token
    async with httpx.AsyncClient(base_url=url) as http:
        own = await http.get(
            "/v1/me/export", params={"format": "html"}, headers={"authorization": f"Bearer {token}"}
        )
    assert own.status_code == 200 and message_id in own.text and CANARY not in own.text
    assert own.headers["content-type"].startswith("text/html")


async def test_a_bundle_checked_against_the_published_keys(
    exchange: tuple[str, lien.Client, lien.Client, lien.Message, str], tmp_path: Path
) -> None:
    url, _, doctor, received, _ = exchange
    bundle = tmp_path / "proof.json"
    bundle.write_bytes(await doctor.message_proof(received))
    keys = tmp_path / "keys.json"
    async with httpx.AsyncClient(base_url=url) as http:
        keys.write_bytes((await http.get("/v1/ledger/keys")).content)

    def verify(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server", "verify-proof", str(bundle), *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    trusted = verify("--keys", str(keys))
    assert trusted.returncode == 0 and "PROVEN\n" in trusted.stdout and "provided" not in trusted.stdout
    assert "one the server published as its own" in trusted.stdout
    untrusted = verify("--key-id", "00" * 8)  # a bundle re-signed by someone else would look like this
    assert untrusted.returncode == 1 and "NOT PROVEN" in untrusted.stdout


async def test_a_repaired_message_is_proven_with_its_new_copy(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'lien.db'}",
        data_dir=tmp_path,
        ledger_sign_interval=0.2,
    )
    async with serving(settings) as url:
        alice = await lien.Client.register(url, "alice", PASSWORD, keystore=tmp_path / "alice")
        bob = await lien.Client.register(url, "bob", PASSWORD, keystore=tmp_path / "bob")
        await alice.connect()
        await bob.connect()
        await alice.send_text("bob", "premier")
        await bob.receive(timeout=20)
        await bob.close()
        store = Keystore.open(tmp_path / "bob", PASSWORD)
        store.set_session(f"alice/{alice.device_id}", None)
        store.save()
        lost = await alice.send_text("bob", "réparé")
        bob = await lien.Client.login(url, "bob", PASSWORD, keystore=tmp_path / "bob")
        await bob.connect()
        repaired = await bob.receive(timeout=30)
        assert repaired.id == lost
        async with asyncio.timeout(20):
            while not any(r.kind == "decrypted" for r in alice.kept_receipts(lost)):
                await alice.next_event()
        proof = ledger.proof_decoder.decode(await bob.message_proof(repaired))
        verdict = verify_proof(proof)
        assert verdict.proven, [f.statement for f in verdict.findings if not f.ok]
        assert any(isinstance(e.entry, ledger.MessageResent) for e in proof.entries)
        await alice.close()
        await bob.close()
