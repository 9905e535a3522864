"""RabbitMQ for the bus tests and benchmarks: the project's node (``tools/rabbitmq``), started
once per session if it is not running; a private node of a test's own, which the test may stop
and start; ``sahara-es`` service processes configured for the bus; a real oslo.messaging
notification listener; and wake-ups that lose or repeat casts on purpose."""

from __future__ import annotations

import functools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oslo_config import cfg

from sahara_es.engine.wakeups import Listener, Wakeups
from sahara_es.rpc.settings import register_messaging_options

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "rabbitmq"


def _credentials(cache: Path) -> str:
    text = (cache / "rabbitmq-credentials").read_text()
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return values["transport_url"]


@functools.cache
def broker_url() -> str:
    """The transport URL of the project's RabbitMQ, started if it is not running (and left
    running: tools/test stops what it started)."""
    if subprocess.run([str(TOOL), "status"], capture_output=True).returncode != 0:
        subprocess.run([str(TOOL), "start"], check=True, capture_output=True)
    return _credentials(Path(os.environ.get("SAHARA_ES_CACHE", ROOT / ".cache")))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class PrivateBroker:
    """A RabbitMQ node of one test's own (its own folder, ports and epmd), to stop and start
    without disturbing anyone else's."""

    folder: Path
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)

    def _run(self, command: str) -> None:
        env = {**os.environ, "SAHARA_ES_CACHE": str(self.folder),
               "RABBITMQ_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
               "RABBITMQ_EPMD_PORT": str(self.epmd_port)}
        subprocess.run([str(TOOL), command], check=True, capture_output=True, env=env)

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")

    @property
    def url(self) -> str:
        return _credentials(self.folder)


@contextmanager
def private_broker(folder: Path) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(folder)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def bus_config(folder: Path, tag: str, *, notifications: bool = False,
               sweep_interval: float = 1.0) -> Path:
    """A configuration file for one test's services: its own engine topic and notification
    topic (``notifications-<tag>``), so that tests never hear each other."""
    path = folder / f"bus-{tag}.conf"
    path.write_text(
        "[DEFAULT]\n"
        f"enable_notifications = {'true' if notifications else 'false'}\n"
        "[bus]\n"
        f"engine_topic = sahara-es-engine-{tag}\n"
        f"sweep_interval = {sweep_interval}\n"
        "[oslo_messaging_notifications]\n"
        f"topics = notifications-{tag}\n")
    return path


class ServiceProcess:
    """``sahara-es --config-file CONF --store URL <command> <args>``, the transport URL in its
    environment (never on its command line), its output in ``<log_folder>/<name>.log``."""

    def __init__(self, name: str, config: Path, store_url: str, transport_url: str,
                 log_folder: Path, *args: str) -> None:
        self.name = name
        self.log = log_folder / f"{name}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sahara_es.cli", "--config-file", str(config),
             "--store", store_url, *args],
            cwd=ROOT, stdout=self._log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT),
                 "SAHARA_ES_TRANSPORT_URL": transport_url})

    def said(self, text: str) -> bool:
        """Whether its output so far holds ``text``."""
        return text in self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.close()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.kill()
        self._log_file.close()


ENGINE_RUNNING = "running (concurrency"
"""What ``sahara-es engine`` prints once it works and listens on the bus."""


def engine_process(name: str, config: Path, store_url: str, transport_url: str,
                   log_folder: Path, *args: str, lease_ttl: float = 3.0) -> ServiceProcess:
    return ServiceProcess(name, config, store_url, transport_url, log_folder, "engine",
                          "--id", name, "--lease-ttl", str(lease_ttl), "--grace", "10",
                          "--load", "tests.workflows", *args)


def messaging_conf(transport_url: str, **groups: dict[str, Any]) -> cfg.ConfigOpts:
    """A configuration with oslo.messaging's options and ``transport_url``."""
    conf = cfg.ConfigOpts()
    conf([])
    register_messaging_options(conf)
    conf.set_override("transport_url", transport_url)
    for group, values in groups.items():
        for name, value in values.items():
            conf.set_override(name, value, group)
    return conf


@dataclass(frozen=True)
class Notification:
    publisher_id: str
    event_type: str
    payload: dict[str, Any]
    priority: str


class NotificationCollector:
    """A real oslo.messaging notification listener on ``notifications-<tag>``."""

    def __init__(self, transport_url: str, tag: str) -> None:
        import oslo_messaging  # type: ignore[import-untyped]

        self.received: list[Notification] = []
        self._lock = threading.Lock()
        conf = messaging_conf(transport_url)
        self._transport = oslo_messaging.get_notification_transport(conf)
        collector = self

        class Endpoint:
            def info(self, ctxt: dict[str, Any], publisher_id: str, event_type: str,
                     payload: dict[str, Any], metadata: dict[str, Any]) -> None:
                with collector._lock:
                    collector.received.append(
                        Notification(publisher_id, event_type, payload, "INFO"))

        self._listener = oslo_messaging.get_notification_listener(
            self._transport, [oslo_messaging.Target(topic=f"notifications-{tag}")],
            [Endpoint()])
        self._listener.start()

    def about(self, cluster_id: str) -> list[Notification]:
        with self._lock:
            return [n for n in self.received if n.payload.get("cluster_id") == cluster_id]

    def close(self) -> None:
        self._listener.stop()
        self._listener.wait()
        self._transport.cleanup()


class UnreliableWakeups:
    """Wakeups that lose a part of the casts and send another part twice, on purpose (each
    decision on the caster's side, as a broker losing or redelivering them would)."""

    def __init__(self, inner: Wakeups, *, drop: float, duplicate: float,
                 seed: int = 7) -> None:
        self.inner = inner
        self.drop = drop
        self.duplicate = duplicate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.dropped = 0
        self.duplicated = 0

    @property
    def remote(self) -> bool:
        return self.inner.remote

    @property
    def carries_offers(self) -> bool:
        return self.inner.carries_offers

    def subscribe(self, listener: Listener) -> None:
        self.inner.subscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        self.inner.unsubscribe(listener)

    def _times(self) -> int:
        with self._lock:
            roll = self._random.random()
            if roll < self.drop:
                self.dropped += 1
                return 0
            if roll < self.drop + self.duplicate:
                self.duplicated += 1
                return 2
            return 1

    def workflow_ready(self, workflow_id: str) -> None:
        for _ in range(self._times()):
            self.inner.workflow_ready(workflow_id)

    def wake_all(self) -> None:
        for _ in range(self._times()):
            self.inner.wake_all()

    def tasks_offered(self, workflow_id: str, owner: str, engine_id: str | None = None,
                      task_ids: Sequence[str] = ()) -> None:
        for _ in range(self._times()):
            self.inner.tasks_offered(workflow_id, owner, engine_id, task_ids)

    def claim_moved(self, owner: str, workflow_id: str, stream_id: str) -> None:
        for _ in range(self._times()):
            self.inner.claim_moved(owner, workflow_id, stream_id)

    def cancel_requested(self, workflow_id: str) -> None:
        for _ in range(self._times()):
            self.inner.cancel_requested(workflow_id)

    def requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                          to_version: int = 0) -> None:
        for _ in range(self._times()):
            self.inner.requests_recorded(stream_id, from_version, to_version)

    def capacity(self, engine_id: str, free: int) -> None:
        for _ in range(self._times()):
            self.inner.capacity(engine_id, free)
