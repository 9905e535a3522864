"""Engine processes for tests and benchmarks: real ``sahara-es engine`` processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sahara_es.engine.engine import engine_lease_resource
from sahara_es.store import Store

ROOT = Path(__file__).resolve().parent.parent


class EngineProcess:
    def __init__(self, url: str, engine_id: str, log_folder: Path, *, lease_ttl: float = 2.0,
                 concurrency: int = 4, sweep_interval: float = 0.1,
                 extra: tuple[str, ...] = ()) -> None:
        self.engine_id = engine_id
        self.log = log_folder / f"{engine_id}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sahara_es.cli", "--store", url, "engine",
             "--id", engine_id, "--lease-ttl", str(lease_ttl),
             "--concurrency", str(concurrency), "--sweep-interval", str(sweep_interval),
             "--grace", "10", "--load", "tests.workflows", *extra],
            cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def pause(self, url: str) -> None:
        """SIGSTOP, between two of its writes: on SQLite a process stopped inside a write
        transaction would keep the file's one write lock, and every other writer would wait
        for it (SQLite's single writer, not the leases, is then what stops the others). The
        lock is taken here first, so the engine is stopped waiting for it, holding nothing."""
        if not url.startswith("sqlite:"):
            self.signal(signal.SIGSTOP)
            return
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60,
                               isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.signal(signal.SIGSTOP)
            wait_until(self._stopped, timeout=10, poll=0.01)
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    def _stopped(self) -> bool:
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "T"

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, and the exit status once it stopped."""
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.close()

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log_file.close()


def engine_alive(store: Store, engine_id: str, region: str | None = None) -> bool:
    lease = store.get_lease(engine_lease_resource(engine_id, region))
    return lease is not None and not lease.expired(time.time())


def wait_until(condition: Callable[[], bool], timeout: float = 60, poll: float = 0.02) -> float:
    """Seconds it took for ``condition`` to hold; AssertionError after ``timeout``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s")
        time.sleep(poll)
    return time.monotonic() - started
