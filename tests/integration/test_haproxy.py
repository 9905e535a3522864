"""Real ``sahara-es api`` processes behind a real HAProxy run with the configuration
``sahara-es haproxy-config`` generates: health checks on ``/healthz``, a caller's requests kept
on one process, and a client that reads its writes through the balancer.

``ApiProcess`` and ``Balancer`` are what the other HAProxy tests and ``benchmarks/services.py``
run too."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from sahara_es.api.reads import WRITTEN_HEADER
from sahara_es.store import Store
from tests.engines import ROOT, wait_until

HAPROXY = Path("/usr/sbin/haproxy")
pytestmark = pytest.mark.skipif(not HAPROXY.exists(), reason="HAProxy is not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


class ApiProcess:
    """``sahara-es api`` on a free port, noauth (callers named by ``X-Project-Id``), the
    ``fake`` plugin; ``cpus``: run under ``taskset`` on those CPUs."""

    def __init__(self, url: str, log_folder: Path, *, cpus: str = "",
                 extra: Sequence[str] = (), projector: bool = False) -> None:
        self.port = free_port()
        self.log = log_folder / f"api-{self.port}.log"
        self._log_file = self.log.open("wb")
        pin = ["taskset", "-c", cpus] if cpus else []
        self.process = subprocess.Popen(
            [*pin, sys.executable, "-m", "sahara_es.cli", "--store", url, "api",
             "--host", "127.0.0.1", "--port", str(self.port), "--auth", "noauth",
             "--plugins", "fake", *extra],
            cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT),
                 "SAHARA_ES_PROJECTOR": "1" if projector else "0"})

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 90) -> None:
        def healthy() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"sahara-es api exited:\n{self.log.read_text()[-3000:]}")
            return answers(f"{self.base}/healthz")

        wait_until(healthy, timeout=timeout, poll=0.2)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log_file.close()


class Balancer:
    """HAProxy in the foreground with the configuration ``sahara-es haproxy-config``
    generates for ``backends`` (host, port)."""

    def __init__(self, backends: Sequence[tuple[str, int]], folder: Path, *,
                 cpus: str = "", check_interval_ms: int = 500) -> None:
        self.port = free_port()
        self.folder = folder
        self.config = folder / f"haproxy-{self.port}.cfg"
        self.socket = folder / f"haproxy-{self.port}.sock"
        subprocess.run(
            [sys.executable, "-m", "sahara_es.cli", "haproxy-config",
             "--bind", f"127.0.0.1:{self.port}", "--admin-socket", str(self.socket),
             "--check-interval", str(check_interval_ms), "--output", str(self.config),
             *(arg for host, port in backends for arg in ("--backend", f"{host}:{port}"))],
            cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        subprocess.run([str(HAPROXY), "-c", "-q", "-f", str(self.config)], check=True)
        self.log = folder / f"haproxy-{self.port}.log"
        self._log_file = self.log.open("wb")
        pin = ["taskset", "-c", cpus] if cpus else []
        self.process = subprocess.Popen([*pin, str(HAPROXY), "-db", "-f", str(self.config)],
                                        stdout=self._log_file, stderr=subprocess.STDOUT)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, line: str) -> str:
        """A line of HAProxy's runtime API, and its answer."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.socket))
            conn.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers_up(self) -> dict[str, bool]:
        """Each server's name, and whether HAProxy's checks find it up."""
        states: dict[str, bool] = {}
        for line in self.command("show servers state sahara_api").splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[1] == "sahara_api":
                states[fields[3]] = fields[5] == "2"  # srv_op_state 2: running
        return states

    def wait_up(self, count: int, timeout: float = 60) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                return sum(self.servers_up().values()) == count
            return False

        wait_until(up, timeout=timeout, poll=0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log_file.close()


@contextlib.contextmanager
def balanced(url: str, folder: Path, count: int, *,
             extra: Sequence[str] = ()) -> Iterator[tuple[Balancer, list[ApiProcess]]]:
    """``count`` API processes on the store at ``url`` behind HAProxy, all up."""
    processes: list[ApiProcess] = []
    balancer = None
    try:
        # one of them keeps the stored read models, as a deployment's projector does
        processes = [ApiProcess(url, folder, extra=extra, projector=n == 0)
                     for n in range(count)]
        for process in processes:
            process.wait_healthy()
        balancer = Balancer([("127.0.0.1", p.port) for p in processes], folder)
        balancer.wait_up(count)
        yield balancer, processes
    finally:
        if balancer is not None:
            balancer.stop()
        for process in processes:
            process.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def owned(docs: list[dict[str, Any]], project: str) -> list[str]:
    """The ids of the project's own (other tests' public resources are listed too)."""
    return [d["id"] for d in docs if d["project_id"] == project]


def test_haproxy_checks_each_process_and_takes_a_dead_one_out(
        store: Store, url: str, tmp_path: Path) -> None:
    with balanced(url, tmp_path, 2) as (balancer, processes):
        assert balancer.servers_up() == {"api-1": True, "api-2": True}
        processes[0].kill()
        wait_until(lambda: balancer.servers_up() == {"api-1": False, "api-2": True},
                   timeout=30, poll=0.1)
        assert answers(f"{balancer.base}/healthz")


def test_a_caller_reads_its_writes_through_the_balancer(
        store: Store, url: str, tmp_path: Path) -> None:
    with balanced(url, tmp_path, 3) as (balancer, _):
        session = requests.Session()
        for _ in range(3):  # callers land on different processes
            project = session.headers["X-Project-Id"] = unique("p")
            made: list[str] = []
            for _ in range(5):
                answer = session.post(f"{balancer.base}/v2/data-sources", json={
                    "name": unique("ds"), "type": "swift", "url": "swift://c/o"}, timeout=30)
                assert answer.status_code == 202, answer.text
                assert answer.headers[WRITTEN_HEADER]
                made.append(answer.json()["data_source"]["id"])
                shown = session.get(f"{balancer.base}/v2/data-sources/{made[-1]}", timeout=30)
                assert shown.status_code == 200, shown.text
                listed = session.get(f"{balancer.base}/v2/data-sources", timeout=30).json()
                assert sorted(owned(listed["data_sources"], project)) == sorted(made)


def test_a_write_named_back_is_read_on_any_process(
        store: Store, url: str, tmp_path: Path) -> None:
    with balanced(url, tmp_path, 2, extra=("--affinity-window", "600")) as (_, processes):
        project = unique("p")
        headers = {"X-Project-Id": project}
        for process in processes:  # each has answered this caller: no resync on arrival
            assert requests.get(f"{process.base}/v2/data-sources", headers=headers,
                                timeout=30).status_code == 200
        answer = requests.post(f"{processes[0].base}/v2/data-sources", headers=headers, json={
            "name": unique("ds"), "type": "swift", "url": "swift://c/o"}, timeout=30)
        made = answer.json()["data_source"]["id"]
        listed = requests.get(f"{processes[1].base}/v2/data-sources", timeout=30, headers={
            **headers, WRITTEN_HEADER: answer.headers[WRITTEN_HEADER]}).json()
        assert owned(listed["data_sources"], project) == [made]
