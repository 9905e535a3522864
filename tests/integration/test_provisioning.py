"""Clusters provisioned for real through the API: an engine creates local nodes (their own
sshd on loopback addresses), reaches them over SSH, runs the plugin's steps, scales, and
deletes; on both stores. The ``fake`` plugin's steps are one SSH command per node, so these
tests are about the orchestration; the Spark and Dask plugins have their own."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from sahara_es.infra.base import InfraError, InfraProvider, Instance, InstanceSpec
from sahara_es.infra.local import instance_processes
from sahara_es.infra.placement import host_claim_key
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.store import Store
from tests.clouds import Cloud, ProviderWrapper, running_cloud

TIMEOUT = 120.0


@contextmanager
def running_service(store: Store, root: Path,
                    wrap: Callable[[InfraProvider], InfraProvider] | None = None
                    ) -> Iterator[Cloud]:
    with running_cloud(store, root, wrap=wrap,
                       quota=QuotaLimits(instances=8, cores=16, ram_mb=32768)) as cloud:
        yield cloud


@pytest.fixture
def service(store: Store, tmp_path: Path) -> Iterator[Cloud]:
    with running_service(store, tmp_path) as running:
        yield running


def create(service: Cloud, workers: int, **extra: Any) -> str:
    response = service.client.post("/v2/clusters", headers=service.headers, json={
        "name": f"c{uuid.uuid4().hex[:8]}", "plugin_name": "fake", "plugin_version": "0.1",
        "node_groups": [
            {"name": "manager", "flavor_id": "local.small", "node_processes": ["namenode"],
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": ["datanode"],
             "count": workers}], **extra})
    assert response.status_code == 202, response.get_json()
    cluster_id: str = response.get_json()["cluster"]["id"]
    return cluster_id


def wait_status(service: Cloud, cluster_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        response = service.client.get(f"/v2/clusters/{cluster_id}?show_progress=true",
                                       headers=service.headers)
        if response.status_code == 404 and "gone" in statuses:
            return {}
        cluster: dict[str, Any] = response.get_json()["cluster"]
        if cluster["status"] in statuses:
            return cluster
        assert time.monotonic() < deadline, f"still {cluster['status']}: {cluster}"
        time.sleep(0.2)


def instances(cluster: dict[str, Any]) -> dict[str, list[str]]:
    return {g["name"]: sorted(i["instance_name"] for i in g["instances"])
            for g in cluster["node_groups"]}


def nothing_left(service: Cloud, names: list[str]) -> None:
    provider = service.services.provider
    store = service.services.quotas.store
    for name in names:
        assert provider.get_instance(name) is None
        assert instance_processes(name, provider.folder(name) / "sshd_config") == []
    for host in service.hosts:
        for resource in ("vcpus", "ram_mb"):
            assert store.get_claim(host_claim_key(host.name, resource)).used == 0
    usage = service.services.quotas.usage(service.project)
    assert {name: u.used for name, u in usage.items()} == {
        "instances": 0, "cores": 0, "ram_mb": 0}


def test_a_cluster_is_created_scaled_and_deleted_on_real_nodes(service: Cloud) -> None:
    cluster_id = create(service, workers=2)
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert cluster["status"] == "Active", cluster["status_description"]
    nodes = instances(cluster)
    assert len(nodes["manager"]) == 1 and len(nodes["workers"]) == 2
    addresses = [i["management_ip"] for g in cluster["node_groups"] for i in g["instances"]]
    assert len(set(addresses)) == 3 and all(a.startswith("127.10.") for a in addresses)
    steps = {s["step_name"]: s for s in cluster["provision_progress"]}
    assert {"Spawning instances", "Configuring nodes", "Starting services"} <= set(steps)
    assert all(s["successful"] for s in steps.values())
    assert len(steps["Spawning instances"]["events"]) == 3
    assert cluster["verification"]["status"] == "GREEN"

    path = f"/v2/clusters/{cluster_id}"
    grown = service.client.put(path, headers=service.headers, json={
        "resize_node_groups": [{"name": "workers", "count": 3}]})
    assert grown.status_code == 202
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert len(instances(cluster)["workers"]) == 3, cluster["status_description"]

    keep = instances(cluster)["workers"][1]
    shrunk = service.client.put(path, headers=service.headers, json={
        "resize_node_groups": [{"name": "workers", "count": 1}]})
    assert shrunk.status_code == 202
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert len(instances(cluster)["workers"]) == 1
    assert keep not in instances(cluster)["workers"] or len(instances(cluster)["workers"]) == 1
    names = [n for group in instances(cluster).values() for n in group]
    addresses = [i["management_ip"] for g in cluster["node_groups"] for i in g["instances"]]

    assert service.client.delete(path, headers=service.headers).status_code == 204
    wait_status(service, cluster_id, "gone")
    nothing_left(service, names)
    store = service.services.quotas.store
    assert [store.name_owner("_infra", "loopback", a) for a in addresses] == [None, None]


def test_over_quota_is_refused_with_403_and_nothing_is_created(service: Cloud) -> None:
    response = service.client.post("/v2/clusters", headers=service.headers, json={
        "name": "toobig", "plugin_name": "fake", "plugin_version": "0.1",
        "node_groups": [{"name": "manager", "flavor_id": "local.small",
                         "node_processes": ["namenode"], "count": 1},
                        {"name": "workers", "flavor_id": "local.small",
                         "node_processes": ["datanode"], "count": 8}]})
    assert response.status_code == 403
    assert response.get_json()["error_name"] == "QUOTA_EXCEEDED"
    assert "instances 9 asked" in response.get_json()["error_message"]
    listed = service.client.get("/v2/clusters", headers=service.headers).get_json()
    assert [c for c in listed["clusters"] if c["project_id"] == service.project] == []


def test_anti_affinity_beyond_the_hosts_fails_clearly_and_rolls_back(service: Cloud) -> None:
    cluster_id = create(service, workers=4, anti_affinity=["datanode"])
    cluster = wait_status(service, cluster_id, "Error", "Active")
    assert cluster["status"] == "Error"
    assert "distinct hosts" in cluster["status_description"]
    assert instances(cluster) == {"manager": [], "workers": []}
    nothing_left(service, [])


def test_a_failed_create_rolls_back_and_says_why(service: Cloud) -> None:
    cluster_id = create(service, workers=2,
                        cluster_configs={"Fake": {"fail_configure": "namenode"}})
    cluster = wait_status(service, cluster_id, "Error", "Active")
    assert cluster["status"] == "Error"
    assert "configuring" in cluster["status_description"]
    assert "rolled back" in cluster["status_description"]
    assert instances(cluster) == {"manager": [], "workers": []}
    nothing_left(service, [])


def test_a_cluster_runs_partially_when_only_workers_fail(service: Cloud) -> None:
    cluster_id = create(service, workers=2,
                        cluster_configs={"Fake": {"fail_start": "workers-1"}})
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert cluster["status"] == "Active", cluster["status_description"]
    assert cluster["verification"]["status"] == "YELLOW"
    assert cluster["failed_nodes"] == [f"c{cluster_id[:8]}-workers-1"]
    assert "partially active" in cluster["status_description"]
    starting = next(s for s in cluster["provision_progress"]
                    if s["step_name"] == "Starting services")
    assert starting["successful"] is False
    assert [e["instance_name"] for e in starting["events"] if not e["successful"]] == [
        f"c{cluster_id[:8]}-workers-1"]

    rebuild = service.client.patch(f"/v2/clusters/{cluster_id}", headers=service.headers,
                                   json={"rebuild_failed_nodes": True})
    assert rebuild.status_code == 202
    assert rebuild.get_json()["cluster"]["status"] == "Scaling"
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert cluster["verification"]["status"] == "GREEN", cluster["status_description"]
    assert cluster["failed_nodes"] == []
    assert instances(cluster)["workers"] == sorted(
        [f"c{cluster_id[:8]}-workers-2", f"c{cluster_id[:8]}-workers-3"])


def test_verification_reports_a_node_that_went_down(service: Cloud) -> None:
    cluster_id = create(service, workers=2)
    cluster = wait_status(service, cluster_id, "Active", "Error")
    victim = instances(cluster)["workers"][1]
    pool = service.services.ssh.pool(cluster_id)
    provider = service.services.provider
    from sahara_es.infra.ssh import Node

    pool.run(Node.of(provider.get_instance(victim)), "rm -f fake-service")
    answer = service.client.patch(f"/v2/clusters/{cluster_id}", headers=service.headers,
                                  json={"verification": {"status": "START"}})
    assert answer.status_code == 202
    deadline = time.monotonic() + TIMEOUT
    while True:
        shown = service.client.get(f"/v2/clusters/{cluster_id}", headers=service.headers)
        verification = shown.get_json()["cluster"]["verification"]
        if verification["status"] != "CHECKING":
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert verification["status"] == "YELLOW"
    assert shown.get_json()["cluster"]["failed_nodes"] == [victim]


def test_a_failed_scale_returns_to_the_previous_size(service: Cloud) -> None:
    cluster_id = create(service, workers=2, anti_affinity=["datanode"])
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert cluster["status"] == "Active", cluster["status_description"]
    before = instances(cluster)
    answer = service.client.put(f"/v2/clusters/{cluster_id}", headers=service.headers, json={
        "resize_node_groups": [{"name": "workers", "count": 4}]})  # 4 distinct of 3 hosts
    assert answer.status_code == 202
    cluster = wait_status(service, cluster_id, "Active", "Error")
    assert cluster["status"] == "Active"
    assert "scaling failed and was undone" in cluster["status_description"]
    assert "distinct hosts" in cluster["status_description"]
    assert instances(cluster) == before
    assert {g["name"]: g["count"] for g in cluster["node_groups"]} == {"manager": 1,
                                                                       "workers": 2}
    usage = service.services.quotas.usage(service.project)["instances"]
    assert usage.used == 3


class BrokenHost(ProviderWrapper):
    """The local provider, except that one host fails every instance built on it."""

    name = "broken-host"

    def __init__(self, real: InfraProvider, broken: str) -> None:
        super().__init__(real)
        self.broken = broken

    def create_instance(self, spec: InstanceSpec) -> Instance:
        if spec.host == self.broken:
            raise InfraError(f"hypervisor {self.broken} is out of order")
        return self.real.create_instance(spec)


def test_a_node_whose_host_fails_is_built_on_an_alternate(store: Store,
                                                          tmp_path: Path) -> None:
    def break_first_host(real: InfraProvider) -> InfraProvider:
        return BrokenHost(real, real.hosts()[0].name)

    with running_service(store, tmp_path, wrap=break_first_host) as service:
        broken = service.hosts[0].name
        cluster_id = create(service, workers=3)
        cluster = wait_status(service, cluster_id, "Active", "Error")
        assert cluster["status"] == "Active", cluster["status_description"]
        hosts = [i["host"] for g in cluster["node_groups"] for i in g["instances"]]
        assert len(hosts) == 4 and broken not in hosts
        store_claims = service.services.quotas.store
        assert store_claims.get_claim(host_claim_key(broken, "vcpus")).used == 0
