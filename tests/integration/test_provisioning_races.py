"""Twenty clusters race for more than there is: no host and no quota is ever overcommitted,
and the losers fail cleanly, saying why."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sahara_es.infra.base import HostInventory
from sahara_es.infra.placement import host_claim_key
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.store import Store
from tests.clouds import running_cloud

CLUSTERS = 20
NODES = 3


def body(name: str) -> dict[str, Any]:
    return {"name": name, "plugin_name": "fake", "plugin_version": "0.1",
            "node_groups": [
                {"name": "manager", "flavor_id": "local.small", "node_processes": ["namenode"],
                 "count": 1},
                {"name": "workers", "flavor_id": "local.small", "node_processes": ["datanode"],
                 "count": NODES - 1}]}


@pytest.fixture
def world(store: Store, tmp_path: Path) -> Iterator[tuple[Flask, dict[str, Any],
                                                         list[HostInventory]]]:
    quota = QuotaLimits(instances=9, cores=100, ram_mb=10**6)
    with running_cloud(store, tmp_path, vcpus=4, ram_mb=8192, quota=quota) as cloud:
        yield cloud.app, cloud.services, cloud.hosts


def race(app: Flask, project: str) -> list[tuple[int, dict[str, Any]]]:
    barrier = threading.Barrier(CLUSTERS)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        answer = client.post("/v2/clusters", headers={"X-Project-Id": project},
                             json=body(f"race-{i}"))
        with lock:
            answers.append((answer.status_code, answer.get_json()))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CLUSTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_the_quota_admits_exactly_what_it_has_room_for(world: Any) -> None:
    app, services, _ = world
    project = f"q{uuid.uuid4().hex[:6]}"
    answers = race(app, project)
    assert Counter(code for code, _ in answers) == {202: 3, 403: CLUSTERS - 3}
    refused = [a for code, a in answers if code == 403]
    assert all(a["error_name"] == "QUOTA_EXCEEDED" for a in refused)
    usage = services.quotas.usage(project)["instances"]
    assert usage.used == 9 <= usage.limit
    settle(app, [(project, a["cluster"]["id"]) for code, a in answers if code == 202])


def settle(app: Flask, clusters: list[tuple[str, str]]) -> None:
    """Let the admitted clusters finish, then delete them: no workflow outlives its test."""
    client = app.test_client()
    deadline = time.monotonic() + 300

    def get(project: str, cluster_id: str) -> Any:
        return client.get(f"/v2/clusters/{cluster_id}", headers={"X-Project-Id": project})

    while any(get(*c).get_json()["cluster"]["status"] not in ("Active", "Error")
              for c in clusters):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    for project, cluster_id in clusters:
        client.delete(f"/v2/clusters/{cluster_id}", headers={"X-Project-Id": project})
    while any(get(*c).status_code != 404 for c in clusters):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_hosts_are_never_overcommitted_and_losers_say_why(world: Any) -> None:
    app, services, hosts = world
    store: Store = services.quotas.store
    projects = [f"h{uuid.uuid4().hex[:6]}-{i}" for i in range(CLUSTERS)]
    admitted: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLUSTERS)

    def create(project: str) -> None:
        client = app.test_client()
        barrier.wait()
        answer = client.post("/v2/clusters", headers={"X-Project-Id": project},
                             json=body("race"))
        assert answer.status_code == 202
        with lock:
            admitted.append((project, answer.get_json()["cluster"]["id"]))

    threads = [threading.Thread(target=create, args=(p,)) for p in projects]
    for thread in threads:
        thread.start()
    peak = {host.name: 0 for host in hosts}
    client = app.test_client()
    deadline = time.monotonic() + 300
    while True:
        for host in hosts:
            claim = store.get_claim(host_claim_key(host.name, "vcpus"))
            assert claim.used <= claim.capacity and sum(claim.holders.values()) == claim.used
            peak[host.name] = max(peak[host.name], claim.used)
        statuses = {cid: client.get(f"/v2/clusters/{cid}", headers={"X-Project-Id": p}
                                    ).get_json()["cluster"] for p, cid in list(admitted)}
        if len(statuses) == CLUSTERS and all(c["status"] in ("Active", "Error")
                                              for c in statuses.values()):
            break
        assert time.monotonic() < deadline, Counter(c["status"] for c in statuses.values())
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    active = [c for c in statuses.values() if c["status"] == "Active"]
    failed = [c for c in statuses.values() if c["status"] == "Error"]
    capacity = sum(h.vcpus for h in hosts) // NODES
    assert 1 <= len(active) <= capacity
    assert len(active) + len(failed) == CLUSTERS
    assert all("no host" in c["status_description"] for c in failed), [
        c["status_description"] for c in failed]
    assert all(not g["instances"] for c in failed for g in c["node_groups"])
    holders = {i for h in hosts
               for i in store.get_claim(host_claim_key(h.name, "vcpus")).holders}
    expected = {i["instance_name"] for c in active for g in c["node_groups"]
                for i in g["instances"]}
    extra = holders - expected
    by_prefix = {f"c{c['id'][:8]}": c for c in statuses.values()}
    assert not extra, [(name, by_prefix[name.split("-")[0]]["status"],
                        by_prefix[name.split("-")[0]]["status_description"][:300],
                        by_prefix[name.split("-")[0]]["node_groups"]) for name in sorted(extra)]
    assert holders == expected
    settle(app, admitted)
