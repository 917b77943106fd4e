"""The JavaScript device of the interop tests: ``web_client/test/interop_cli.js`` in a node process.

One JSON request per line on stdin, one answer per line on stdout (bytes as standard
base64, 64-bit integers as decimal strings). Used by ``tests/test_crypto_js_interop.py``
(pairwise sessions) and ``tests/test_crypto_js_group_interop.py`` (sender keys). Without
``node`` or ``web_client/node_modules`` the tests fail (they do not skip), asking to run
``npm ci`` in ``web_client/``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lien.crypto.keys import OneTimePrekeyPair, PublicIdentity, SignedPrekeyPair
from lien.crypto.payload import DeviceAddress
from lien.protocol import api

ROOT = Path(__file__).resolve().parent.parent
WEB_CLIENT = ROOT / "web_client"
CLI = WEB_CLIENT / "test" / "interop_cli.js"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def address_json(address: DeviceAddress) -> dict[str, str]:
    return {"user": address.user, "device": str(address.device)}


def identity_json(identity: PublicIdentity) -> dict[str, str]:
    return {"signing_key": b64(identity.signing_key), "exchange_key": b64(identity.exchange_key)}


def bundle_json(
    address: DeviceAddress,
    identity: PublicIdentity,
    signed_prekey: SignedPrekeyPair,
    prekey: OneTimePrekeyPair,
) -> dict[str, Any]:
    """A device's key bundle as the server hands it out (`KeyBundle`), as JSON for either side."""
    bundle = api.KeyBundle(
        device=address.device,
        identity_signing_key=identity.signing_key,
        identity_exchange_key=identity.exchange_key,
        signed_prekey=signed_prekey.to_body(),
        prekey=prekey.to_body(),
    )
    decoded: dict[str, Any] = json.loads(msgspec.json.encode(bundle))
    return decoded


class NodeCli:
    """``interop_cli.js`` in a child process: one JSON request per line, one answer per line."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            pytest.fail(
                "node is not on PATH: install Node.js 20 or later, then run `npm ci` in web_client/",
                pytrace=False,
            )
        if not (WEB_CLIENT / "node_modules" / "libsodium-wrappers-sumo").is_dir():
            pytest.fail(
                "web_client/node_modules is missing: run `npm ci` in web_client/ (cd web_client && npm ci)",
                pytrace=False,
            )
        env = {name: value for name, value in os.environ.items() if not name.startswith("NODE_TEST")}
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in close(), with the process
        self._process = subprocess.Popen(
            [node, str(CLI)],
            cwd=WEB_CLIENT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """The answer to one request; a CryptoError comes back as ``{"ok": False, "code": ...}``."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            self._stderr.seek(0)
            pytest.fail(f"interop_cli.js stopped: {self._stderr.read().decode('utf-8', 'replace')[-2000:]}")
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer, f"{op}: {answer['error']}"
        return answer

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        assert self._process.stdout is not None
        self._process.stdout.close()
        self._stderr.close()
