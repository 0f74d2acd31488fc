#!/usr/bin/env python3
"""Hostile-load benchmark of Foreman's webhook endpoint, clients without the secret. Loopback only; every
scenario is bounded in time and count and the script stops by itself. Driven by benches/hostile.sh.

Each scenario starts its own `foreman serve` (FOREMAN_BIN) on 127.0.0.1 with a fresh data directory and
the default `[server]` limits, unless it says otherwise, and reports:

1. memory:  peak RSS of the server while 60 clients keep 25 MiB unsigned bodies open (each sends all but the
            last byte, waits for the answer, and starts again at once), for MEMORY_SECONDS (default 20);
            target <= 256 MB.
2. slow:    seconds until the server closes a connection sending its headers one byte every 2 s (target
            <= 30), one that sends nothing, and an idle kept-alive one (bounded at 120 s).
3. cap:     answer time of signed deliveries sent one after another, each on a new connection, while
            FLOOD_CONNECTIONS (default 2000) clients, in a process of their own, hold idle connections and
            reconnect as soon as they are closed (the cap is 512); target <= 10 s. Also the lines the server
            logged about the flood.
4. fds:     the same with the server's open-file limit at 256 (below the cap): accept fails with EMFILE.
"""

import asyncio
import hashlib
import hmac
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

SECRET = "hostile-bench-secret"
HOST = "127.0.0.1"
BODY = 25 * 1024 * 1024
MEMORY_SECONDS = float(os.environ.get("MEMORY_SECONDS", "20"))
MEMORY_CLIENTS = int(os.environ.get("MEMORY_CLIENTS", "60"))
FLOOD_CONNECTIONS = int(os.environ.get("FLOOD_CONNECTIONS", "2000"))
DELIVERIES = int(os.environ.get("DELIVERIES", "10"))
BOUND = 120.0  # no single wait in this script is longer


class Server:
    """A `foreman serve` child on a free loopback port, its stderr collected."""

    def __init__(self, binary, env=None, nofile=None):
        self.data = tempfile.TemporaryDirectory(prefix="foreman-hostile-")
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FOREMAN_LISTEN": f"{HOST}:0",
            "FOREMAN_DATA_DIR": os.path.join(self.data.name, "data"),
            "FOREMAN_LOG_FORMAT": "json",
            "RUST_LOG": "info",
            "GITHUB_WEBHOOK_SECRET": SECRET,
        }
        full_env.update(env or {})

        def limit():
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(
            [binary, "serve"], env=full_env, cwd=self.data.name, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=limit,
        )
        self.lines = []
        listening = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                try:
                    v = json.loads(line)
                except ValueError:
                    continue
                if v.get("message") == "listening":
                    self.port = int(v["address"].rsplit(":", 1)[1])
                    listening.set()

        threading.Thread(target=read, daemon=True).start()
        if not listening.wait(60):
            self.proc.kill()
            sys.exit("foreman did not start:\n" + "\n".join(self.lines))

    def rss_mb(self, field="VmRSS"):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def alive(self):
        return self.proc.poll() is None

    def count(self, text):
        return sum(text in line for line in self.lines)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.data.cleanup()


def signed_request(delivery_id, body=b'{"action":"opened"}'):
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    head = (
        "POST /api/github/webhooks HTTP/1.1\r\nhost: foreman\r\ncontent-type: application/json\r\n"
        f"x-github-event: issues\r\nx-github-delivery: {delivery_id}\r\nx-hub-signature-256: {signature}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


async def status_of(reader):
    line = await reader.readline()
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 else None


# 1. memory ---------------------------------------------------------------------------------------------------

async def hold_bodies(port, until, stats):
    head = (
        "POST /api/github/webhooks HTTP/1.1\r\nhost: foreman\r\ncontent-type: application/json\r\n"
        "x-github-event: issues\r\nx-github-delivery: unsigned\r\nx-hub-signature-256: sha256=00\r\n"
        f"content-length: {BODY}\r\n\r\n"
    ).encode()
    chunk = b" " * (256 * 1024)
    while time.monotonic() < until:
        writer = None
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(head)
            answer = asyncio.ensure_future(status_of(reader))
            sent = 0
            while sent < BODY - 1 and not answer.done() and time.monotonic() < until:
                n = min(len(chunk), BODY - 1 - sent)
                writer.write(chunk[:n])
                drain = asyncio.ensure_future(writer.drain())
                await asyncio.wait({drain, answer}, return_when=asyncio.FIRST_COMPLETED)
                if not drain.done():
                    drain.cancel()
                    break
                drain.result()
                sent += n
            if sent >= BODY - 1:
                stats["held"] += 1
            await asyncio.wait({answer}, timeout=max(0.0, until - time.monotonic()))
            if answer.done() and answer.exception() is None:
                status = answer.result()
                stats[status] = stats.get(status, 0) + 1
            else:
                answer.cancel()
        except OSError:
            stats["errors"] += 1
        finally:
            if writer:
                writer.close()


async def memory(binary):
    server = Server(binary)
    stats = {"held": 0, "errors": 0}
    until = time.monotonic() + MEMORY_SECONDS
    samples = []

    async def sample():
        while time.monotonic() < until:
            samples.append(server.rss_mb())
            await asyncio.sleep(0.1)

    await asyncio.gather(sample(), *(hold_bodies(server.port, until, stats) for _ in range(MEMORY_CLIENTS)))
    result = {
        "clients": MEMORY_CLIENTS,
        "seconds": MEMORY_SECONDS,
        "peak_rss_mb": round(max(samples), 1),
        "vm_hwm_mb": round(server.rss_mb("VmHWM"), 1),
        "bodies_sent_whole_but_one_byte": stats.pop("held"),
        "answers": {str(k): v for k, v in stats.items()},
        "alive": server.alive(),
    }
    server.stop()
    return result


# 2. slow -----------------------------------------------------------------------------------------------------

async def closed_after(port, send_first=b"", trickle=None, every=2.0):
    """Seconds from the connection's opening (or, after a complete request, from its answer) to EOF."""
    reader, writer = await asyncio.open_connection(HOST, port)
    start = time.monotonic()
    writer.write(send_first)
    if send_first.startswith(b"GET"):
        await status_of(reader)
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        await reader.readexactly(3)  # "ok\n"
        start = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - start < BOUND:
            try:
                data = await asyncio.wait_for(reader.read(1024), every if trickle else BOUND)
                if not data:
                    return round(time.monotonic() - start, 2)
            except asyncio.TimeoutError:
                writer.write(trickle[sent % len(trickle):][:1])
                sent += 1
                await writer.drain()
    except OSError:
        return round(time.monotonic() - start, 2)
    finally:
        writer.close()
    return None


async def slow(binary):
    server = Server(binary)
    slow_header, silent, kept = await asyncio.gather(
        closed_after(server.port, b"POST /api/github/webhooks HTTP/1.1\r\nhost: x\r\n", b"x-slow: " + b"a" * 200),
        closed_after(server.port),
        closed_after(server.port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"),
    )
    result = {
        "slow_header_closed_after_s": slow_header,
        "silent_closed_after_s": silent,
        "idle_keep_alive_closed_after_s": kept,
    }
    server.stop()
    return result


# 3 and 4. cap and fds -----------------------------------------------------------------------------------------

async def flood(port, stop, stats):
    while not stop.is_set():
        writer = None
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            stats["opened"] += 1
            read = asyncio.ensure_future(reader.read(1))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if read.done():
                stats["closed_by_server"] += 1
            else:
                read.cancel()
            stopped.cancel()
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.01)
        finally:
            if writer:
                writer.close()


async def deliver(port, n):
    """Answer time in seconds of one signed delivery on a new connection, and its status."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), BOUND)
        writer.write(signed_request(f"bench-{n}-{uuid.uuid4()}"))
        status = await asyncio.wait_for(status_of(reader), BOUND)
        writer.close()
    except (OSError, asyncio.TimeoutError) as e:
        return None, type(e).__name__
    return round(time.monotonic() - start, 3), status


async def flood_until_stdin_closes(port, connections):
    """The flood, run in a process of its own (`hostile.py _flood PORT N`) so that the delivery client is
    not delayed by it, as GitHub is not: it starts when the parent says and prints its counts as JSON when
    the parent closes its standard input."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
    stats = {"opened": 0, "closed_by_server": 0, "connect_errors": 0}
    await asyncio.gather(*(flood(port, stop, stats) for _ in range(connections)))
    print(json.dumps(stats), flush=True)


async def cap(binary, nofile=None):
    server = Server(binary, nofile=nofile)
    flooder = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "_flood", str(server.port), str(FLOOD_CONNECTIONS)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    # Let the flood fill the cap and the listen backlog before the first delivery (a benchmark's pause).
    await asyncio.sleep(5)
    times, statuses = [], []
    for n in range(DELIVERIES):
        t, status = await deliver(server.port, n)
        times.append(t)
        statuses.append(status)
    flooder.stdin.close()
    try:
        stats = json.loads(flooder.stdout.readline() or "{}")
        flooder.wait(BOUND)
    except (ValueError, subprocess.TimeoutExpired):
        flooder.kill()
        stats = {}
    # The end of the flood is logged after 10 s without pressure.
    deadline = time.monotonic() + 30
    while server.count("connection flood over") == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    answered = [t for t in times if t is not None]
    result = {
        "flood_connections": FLOOD_CONNECTIONS,
        "server_open_file_limit": nofile or "default",
        "delivery_answer_s_max": max(answered) if answered else None,
        "delivery_answer_s_median": statistics.median(answered) if answered else None,
        "delivery_statuses": statuses,
        "flood": stats,
        "log_lines_flood_started": server.count("connection flood:"),
        "log_lines_flood_over": server.count("connection flood over"),
        "log_lines_total": len(server.lines),
        "peak_rss_mb": round(server.rss_mb("VmHWM"), 1),
        "alive": server.alive(),
    }
    server.stop()
    return result


def run(scenario):
    """Runs one scenario's coroutine; the errors of writes to connections the server closed are expected."""

    async def quietly():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        return await scenario

    return asyncio.run(quietly())


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if sys.argv[1:2] == ["_flood"]:
        run(flood_until_stdin_closes(int(sys.argv[2]), int(sys.argv[3])))
        return
    which = sys.argv[1:] or ["memory", "slow", "cap", "fds"]
    binary = os.path.abspath(os.environ["FOREMAN_BIN"])
    results = {}
    for name in which:
        started = time.monotonic()
        if name == "memory":
            results[name] = run(memory(binary))
        elif name == "slow":
            results[name] = run(slow(binary))
        elif name == "cap":
            results[name] = run(cap(binary))
        elif name == "fds":
            results[name] = run(cap(binary, nofile=256))
        else:
            sys.exit(f"unknown scenario {name}")
        results[name]["scenario_seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps({name: results[name]}), flush=True)


if __name__ == "__main__":
    main()
