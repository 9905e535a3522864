"""``sahara-es api`` and two ``sahara-es engine`` processes with RabbitMQ between them: a fake
cluster provisioned end to end on local nodes, Sahara's notifications of it consumed by a real
oslo.messaging listener, and an engine killed in the middle of provisioning."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from sahara_es.commands import tokens
from sahara_es.engine import load_workflow
from sahara_es.provisioning import ids
from sahara_es.store import Store, open_store
from tests.engines import engine_alive, wait_until
from tests.factories import drop_cassandra_keyspace, sqlite_url
from tests.rabbitmq import (
    NotificationCollector,
    ServiceProcess,
    broker_url,
    bus_config,
    engine_process,
    free_port,
)

CLUSTER: dict[str, Any] = {
    "plugin_name": "fake", "plugin_version": "0.1",
    "node_groups": [{"name": "manager", "flavor_id": "local.small",
                     "node_processes": ["namenode"], "count": 1},
                    {"name": "workers", "flavor_id": "local.small",
                     "node_processes": ["datanode"], "count": 1}]}
SAHARA_PAYLOAD = {"cluster_id", "cluster_name", "cluster_status", "project_id", "user_id"}


@dataclass
class Services:
    base: str
    session: requests.Session
    engines: dict[str, ServiceProcess]

    def status(self, path: str) -> str:
        found: str = self.session.get(path, timeout=30).json()["cluster"]["status"]
        return found

    def wait_for_status(self, path: str, wanted: tuple[str, ...] = ("Active", "Error")
                        ) -> None:
        def reached() -> bool:
            for engine in self.engines.values():
                assert engine.process.poll() is None, f"{engine.name} exited: see {engine.log}"
            return self.status(path) in wanted

        wait_until(reached, timeout=180, poll=0.2)


@contextmanager
def services(store: Store, url: str, tmp_path: Path, tag: str, *,
             notifications: bool = False) -> Iterator[Services]:
    """The API and two engines, on the project's RabbitMQ, with a token for project
    ``p<tag>`` and user ``u<tag>``."""
    transport = broker_url()
    config = bus_config(tmp_path, tag, notifications=notifications, sweep_interval=1.0)
    port = free_port()
    nodes = ("--data-dir", str(tmp_path), "--hosts", f"x{tag}-1=8:16384")
    with ExitStack() as stack:
        stack.enter_context(ServiceProcess("api", config, url, transport, tmp_path, "api",
                                           "--port", str(port), "--plugins", "fake"))
        engines = {name: stack.enter_context(engine_process(name, config, url, transport,
                                                            tmp_path, *nodes))
                   for name in (f"a-{tag}", f"b-{tag}")}
        session = requests.Session()
        session.headers["X-Auth-Token"] = tokens.issue(store, f"p{tag}", user=f"u{tag}").token
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60, poll=0.2)
        wait_until(lambda: all(engine_alive(store, name) for name in engines), timeout=60)
        yield Services(f"http://127.0.0.1:{port}/v2", session, engines)
        for engine in engines.values():
            assert engine.stop() == 0


def _answers(health: str) -> bool:
    try:
        return requests.get(health, timeout=2).status_code == 200
    except requests.RequestException:
        time.sleep(0.1)
        return False


@pytest.fixture
def own_store(url: str, tmp_path: Path) -> Iterator[tuple[Store, str]]:
    """A store of the test's own: the notifications follower keeps one checkpoint per store,
    and the session's store holds every other test's clusters, which it would notify first."""
    if url.startswith("cassandra://"):
        parts = urlsplit(url)
        keyspace = f"{parts.path.strip('/')}_bus_{uuid.uuid4().hex[:8]}"
        own_url = urlunsplit(parts._replace(path=f"/{keyspace}"))
    else:
        keyspace, own_url = "", sqlite_url(tmp_path / "own")
        (tmp_path / "own").mkdir()
    store = open_store(own_url, upgrade=True)
    try:
        yield store, own_url
    finally:
        store.close()
        if keyspace:
            drop_cassandra_keyspace(keyspace)


def test_a_cluster_is_provisioned_through_the_bus_and_its_notifications_are_sahara_s(
        own_store: tuple[Store, str], tmp_path: Path) -> None:
    store, url = own_store
    tag = uuid.uuid4().hex[:8]
    collector = NotificationCollector(broker_url(), tag)
    try:
        with services(store, url, tmp_path, tag, notifications=True) as running:
            answer = running.session.post(f"{running.base}/clusters",
                                          json={"name": f"c{tag}", **CLUSTER}, timeout=30)
            assert answer.status_code == 202, answer.text
            cluster_id = answer.json()["cluster"]["id"]
            path = f"{running.base}/clusters/{cluster_id}"
            running.wait_for_status(path)
            assert running.status(path) == "Active"
            assert running.session.delete(path, timeout=30).status_code == 204
            wait_until(lambda: running.session.get(path, timeout=30).status_code == 404,
                       timeout=120, poll=0.2)
            wait_until(lambda: any(n.event_type == "sahara.cluster.delete"
                                   for n in collector.about(cluster_id)), timeout=60)
    finally:
        collector.close()

    notes = collector.about(cluster_id)
    assert notes[0].event_type == "sahara.cluster.create"
    assert notes[0].payload["cluster_status"] == "Validating"
    assert notes[-1].event_type == "sahara.cluster.delete"
    assert {n.event_type for n in notes[1:-1]} == {"sahara.cluster.update"}
    statuses = [n.payload["cluster_status"] for n in notes]
    assert "Active" in statuses and "Deleting" in statuses
    # one notification per status change: none repeated
    changes = [(n.event_type, n.payload["cluster_status"]) for n in notes]
    assert len(changes) == len(set(changes))
    for note in notes:
        assert set(note.payload) == SAHARA_PAYLOAD
        assert note.payload["cluster_name"] == f"c{tag}"
        assert note.payload["project_id"] == f"p{tag}"
        assert note.payload["user_id"] == f"u{tag}"
        assert note.publisher_id.startswith("sahara.")
        assert note.priority == "INFO"


def test_one_of_two_engines_killed_mid_provisioning_leaves_the_other_to_finish(
        store: Store, url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    with services(store, url, tmp_path, tag) as running:
        answer = running.session.post(f"{running.base}/clusters",
                                      json={"name": f"c{tag}", **CLUSTER}, timeout=30)
        assert answer.status_code == 202, answer.text
        cluster_id = answer.json()["cluster"]["id"]
        path = f"{running.base}/clusters/{cluster_id}"
        workflow = ids.create_id(cluster_id)
        wait_until(lambda: load_workflow(store, workflow).owner is not None
                   and running.status(path) not in ("Validating",), timeout=120, poll=0.05)
        owner = load_workflow(store, workflow).owner
        assert owner in running.engines
        assert running.status(path) != "Active"  # still provisioning
        running.engines.pop(owner).kill()
        running.wait_for_status(path)
        assert running.status(path) == "Active"
        (survivor,) = running.engines
        assert load_workflow(store, workflow).owner == survivor
