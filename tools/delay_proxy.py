#!/usr/bin/env python3
"""A TCP proxy that holds every byte back by a delay read at run time: inter-datacenter latency
on one machine, whose kernel has no netem (tools/cassandra-regions puts one in front of each
node's storage port).

    delay_proxy.py --delay-file FILE LISTEN_HOST:PORT=TARGET_HOST:PORT [...]

Each direction of each connection is a queue of chunks stamped with their arrival time; a chunk
leaves once ``arrival + delay`` has passed, so the order of bytes is kept and throughput is
not cut, only latency added. ``FILE`` holds the one-way delay in milliseconds (missing or empty:
0); it is read again whenever it changes (checked every 100 ms), so a test or a benchmark sets
0, 20 or 50 ms while connections stay open. Standard library only: it is a tool of the test
rig, not part of the service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import time
from pathlib import Path

CHUNK = 64 * 1024
CHECK_EVERY = 0.1


class Delay:
    """The current one-way delay in seconds, from a file re-read when its mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seconds = 0.0
        self._stamp: float | None = None
        self._checked = 0.0

    def current(self) -> float:
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY:
            self._checked = now
            try:
                stamp = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                self._stamp, self.seconds = None, 0.0
                return self.seconds
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    text = self.path.read_text().strip()
                    self.seconds = max(0.0, float(text or 0) / 1000.0)
                except (OSError, ValueError):
                    pass  # half-written: keep the last value, read it again next time
        return self.seconds


def _no_delay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: Delay) -> None:
    """Copy one direction, each chunk leaving ``delay`` after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def receive() -> None:
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((loop.time(), data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)

    receiving = asyncio.create_task(receive())
    try:
        while (item := await queue.get()) is not None:
            arrived, data = item
            wait = arrived + delay.current() - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        receiving.cancel()


async def _serve_one(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter,
                     target: tuple[str, int], delay: Delay) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError:
        client_writer.close()  # the node is down: the caller sees a refused connection
        return
    for writer in (client_writer, server_writer):
        _no_delay(writer)
    try:
        await asyncio.gather(_pump(client_reader, server_writer, delay),
                             _pump(server_reader, client_writer, delay))
    finally:
        for writer in (client_writer, server_writer):
            writer.close()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(routes: list[tuple[tuple[str, int], tuple[str, int]]], delay: Delay) -> None:
    servers = []
    for listen, target in routes:
        def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter,
                    target: tuple[str, int] = target) -> asyncio.Future[None]:
            return asyncio.ensure_future(_serve_one(r, w, target, delay))

        servers.append(await asyncio.start_server(handler, *listen, reuse_address=True))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"delay proxy {os.getpid()}: " + ", ".join(
        f"{a[0]}:{a[1]} -> {b[0]}:{b[1]}" for a, b in routes), flush=True)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-file", type=Path, required=True)
    parser.add_argument("routes", nargs="+", metavar="LISTEN=TARGET")
    args = parser.parse_args()
    parsed = [(_address(a), _address(b)) for a, b in (r.split("=", 1) for r in args.routes)]
    asyncio.run(main(parsed, Delay(args.delay_file)))
