"""``make bench-capacity``: idle authenticated devices one Lien node holds, and memory per connection.

    python -m loadtests.capacity [--devices 19000] [--clients 2] [--compression deflate|none]
                                 [--out-dir loadtests/results]

Starts Redis, a fresh PostgreSQL database and ONE ``lien serve`` node; writes
the devices (real identity keys and signed prekeys) and a session token for
each straight into the database through ``server.storage`` (registering them
through the API would hash 19,000 passwords with argon2id, most of an hour
on two cores); then ``--clients`` processes (``loadtests/idle_clients.py``)
each open their share of the sockets, authenticate, and stay idle; they
offer permessage-deflate as browsers and the SDK do (``--compression none``:
not), so what a node keeps per socket is what real clients cost it. The node's
RSS is read from /proc before the first connection and once every device is
connected and has been idle for a while. Writes ``<date>-capacity.md`` and
``.json``. Everything binds to 127.0.0.1; processes are stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from lien.crypto.keys import IdentityKeyPair, SignedPrekeyPair, device_registration
from lien.protocol.api import Profile
from loadtests import procstat, report, services
from loadtests.bench import RESULTS, cpu_model, git_commit

SEED_BATCH = 500


async def seed(database_url: str, count: int, prefix: str) -> list[str]:
    """``count`` users of one device each, with a live session; returns their tokens."""
    from server.handlers.tokens import new_token, token_hash
    from server.storage import accounts, devices
    from server.storage.database import Database

    password_hash = PasswordHasher().hash("bench passphrase, not a secret")
    database = Database(database_url)
    tokens = []
    now = time.time_ns() // 1_000_000
    try:
        for start in range(0, count, SEED_BATCH):
            async with database.write() as connection:
                for index in range(start, min(count, start + SEED_BATCH)):
                    identity = IdentityKeyPair.generate()
                    registration = device_registration(identity, SignedPrekeyPair.generate(1, identity))
                    username = f"idle{prefix}{index:06d}"
                    user_id = await accounts.create_user(
                        connection,
                        username=username,
                        password_hash=password_hash,
                        profile=Profile(display_name=username),
                        now=now,
                    )
                    device_id = await devices.add_device(
                        connection, user_id=user_id, registration=registration, now=now
                    )
                    token = new_token()
                    await accounts.create_session(
                        connection,
                        user_id=user_id,
                        device_id=device_id,
                        token_hash=token_hash(token),
                        now=now,
                        expires_at=now + 86_400_000,
                    )
                    tokens.append(token)
    finally:
        await database.close()
    return tokens


def measure(arguments: argparse.Namespace, workdir: Path, kind: str) -> dict[str, Any]:
    """Lien (``kind="lien"``) or the baseline relay, which takes any token (``user:device:``)."""
    redis, redis_url = services.start_redis(workdir)
    database: services.PostgresDatabase | None = None
    clients: list[subprocess.Popen[bytes]] = []
    node: services.Process | None = None
    try:  # from here on, whatever fails stops what was started (Redis first of all)
        if kind == "lien":
            database = services.PostgresDatabase().create()
            node, url = services.start_lien_node(
                "lien-1", workdir, database_url=database.url, redis_url=redis_url
            )
            print(f"capacity: seeding {arguments.devices} devices", flush=True)
            tokens = asyncio.run(seed(database.url, arguments.devices, secrets.token_hex(2)))
        else:
            node, url = services.start_baseline_node("baseline-1", workdir, redis_url=redis_url)
            tokens = [f"idle{index:06d}:{index + 1}:" for index in range(arguments.devices)]
        token_file = workdir / f"tokens-{kind}.txt"
        token_file.write_text("\n".join(tokens))
        time.sleep(arguments.settle)
        before = procstat.sample(node.pid)
        assert before is not None
        print(
            f"capacity: {kind} RSS before connections {before.rss_kib / 1024:.1f} MiB; connecting", flush=True
        )
        started = time.monotonic()
        for part in range(arguments.clients):
            argv = [
                sys.executable, "-m", "loadtests.idle_clients", "--url", url, "--tokens", str(token_file),
                "--part", f"{part}/{arguments.clients}", "--compression", arguments.compression,
            ]  # fmt: skip
            clients.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE))
        authenticated = failed = compressed = 0
        failure_reasons: collections.Counter[str] = collections.Counter()
        for client in clients:
            assert client.stdout is not None
            for raw in client.stdout:
                line = raw.decode().strip()
                if line.startswith("@@ready "):
                    ok, ko, deflated, why = line.split(maxsplit=4)[1:]
                    authenticated += int(ok)
                    failed += int(ko)
                    compressed += int(deflated)
                    failure_reasons.update(json.loads(why))
                    break
        connect_s = time.monotonic() - started
        connected = procstat.sample(node.pid)
        assert connected is not None
        print(
            f"capacity: {authenticated} authenticated, {failed} failed in {connect_s:.0f} s; idling",
            flush=True,
        )
        time.sleep(arguments.settle)
        idle_start = procstat.sample(node.pid)
        time.sleep(arguments.idle)
        after = procstat.sample(node.pid)
        assert idle_start is not None and after is not None
        held = after.sockets - before.sockets
        return {
            "devices": arguments.devices,
            "client_processes": arguments.clients,
            "authenticated": authenticated,
            "failures": failed,
            "failure_reasons": dict(failure_reasons),
            "compression_offered": arguments.compression,
            "compressed_sockets": compressed,
            "node_sockets": after.sockets,
            "connections_held": held,
            "rss_before_mib": before.rss_kib / 1024,
            "rss_after_mib": after.rss_kib / 1024,
            "peak_rss_mib": after.peak_rss_kib / 1024,
            "kib_per_connection": (after.rss_kib - before.rss_kib) / max(1, held),
            "connect_s": connect_s,
            "connect_cpu_s": connected.cpu_s - before.cpu_s,
            "idle_s": arguments.idle,
            "idle_cpu_share": (after.cpu_s - idle_start.cpu_s) / arguments.idle,
        }
    finally:
        for client in clients:
            if client.poll() is None:
                client.terminate()
                client.wait(30)
        if node is not None:
            node.stop(30)
        redis.stop()
        if database is not None:
            database.drop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=19000)
    parser.add_argument("--clients", type=int, default=2, help="client processes (each under the fd limit)")
    parser.add_argument(
        "--compression",
        choices=["deflate", "none"],
        default="deflate",
        help="whether the idle clients offer permessage-deflate (browsers and the SDK do)",
    )
    parser.add_argument("--settle", type=float, default=10.0, help="seconds of quiet before each RSS reading")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measured at the end")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    parser.add_argument("--name", help="report file name without extension (default: <date>-capacity)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline relay's measurement")
    arguments = parser.parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    context: dict[str, Any] = {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "load_before": procstat.load_average(),
        "command": "make bench-capacity"
        if argv is None and len(sys.argv) == 1
        else "python -m loadtests.capacity " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    with tempfile.TemporaryDirectory(prefix="lien-capacity-") as directory:
        result = measure(arguments, Path(directory), "lien")
        if not arguments.no_baseline:
            result["baseline"] = measure(arguments, Path(directory), "baseline")
    context["elapsed_s"] = round((datetime.datetime.now(datetime.UTC) - started).total_seconds())
    name = arguments.name or started.strftime("%Y-%m-%d-%H%M") + "-capacity"
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    (arguments.out_dir / f"{name}.json").write_text(
        json.dumps({"context": context, "result": result}, indent=2)
    )
    (arguments.out_dir / f"{name}.md").write_text(report.capacity_markdown(context, result))
    print(f"capacity: wrote {arguments.out_dir / name}.md and .json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
