"""Hold many idle, authenticated device sockets open (the client side of ``make bench-capacity``).

    python -m loadtests.idle_clients --url http://127.0.0.1:8001 --tokens tokens.txt --part 0/2
                                     [--compression deflate|none]

Takes its share of the tokens file (one session token per line), opens one
WebSocket per token, sends ``auth`` (protocol core: ``ClientProtocol.auth``)
and waits for ``ready``; then prints ``@@ready <authenticated> <failed>
<compressed> <why>`` (``compressed``: sockets on which the server accepted
permessage-deflate; ``why``: JSON, failures counted by exception type or error
code) and
keeps every socket open (answering the server's pings) until stdin closes or
the process is told to stop (SIGTERM), when it drops them all at once.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import sys

from websockets.asyncio.client import ClientConnection, connect

from lien.protocol import codec, frames
from lien.protocol.client import ClientProtocol

CONCURRENT_OPENINGS = 100
OPEN_TIMEOUT_S = 600.0
"""Generous: a node that authenticates slowly is measured as slow, not as refusing."""


async def drain(ws: ClientConnection) -> None:
    """Read whatever the server pushes, so that its pings keep being answered."""
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def hold(
    url: str,
    token: str,
    gate: asyncio.Semaphore,
    readers: list[asyncio.Task[None]],
    compression: str | None,
    compressed: list[bool],
) -> str | None:
    """Open, authenticate and keep one socket; None, or why it failed (an error code or exception type)."""
    async with gate:
        try:
            ws = await connect(
                url, compression=compression, ping_interval=None, open_timeout=OPEN_TIMEOUT_S, max_queue=4
            )
            await ws.send(ClientProtocol().auth(token), text=True)
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                while not isinstance(
                    frame := codec.decode_server_frame(await ws.recv(decode=False)), frames.Ready
                ):
                    if isinstance(frame, frames.Error):
                        return f"error frame {frame.code}"
            compressed.append(bool(ws.protocol.extensions))
        except Exception as exc:
            return type(exc).__name__
    readers.append(asyncio.create_task(drain(ws)))
    return None


async def main_async(arguments: argparse.Namespace) -> None:
    index, _, parts = arguments.part.partition("/")
    tokens = arguments.tokens.read_text().split()
    mine = tokens[int(index) :: int(parts)]
    url = arguments.url.replace("http", "ws", 1) + "/ws"
    gate = asyncio.Semaphore(CONCURRENT_OPENINGS)
    readers: list[asyncio.Task[None]] = []
    compressed: list[bool] = []
    compression = None if arguments.compression == "none" else arguments.compression
    held = [hold(url, token, gate, readers, compression, compressed) for token in mine]
    failures = collections.Counter(why for why in await asyncio.gather(*held) if why)
    failed = sum(failures.values())
    print(f"@@ready {len(mine) - failed} {failed} {sum(compressed)} {json.dumps(dict(failures))}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.readline() else None)
    await stop.wait()
    # No closing handshakes one by one: exiting closes every socket at once.
    os._exit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--tokens", type=__import__("pathlib").Path, required=True)
    parser.add_argument("--part", default="0/1", help="i/n: take every n-th token from the i-th")
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="offer permessage-deflate, as browsers and the SDK do (default), or not",
    )
    arguments = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(main_async(arguments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
