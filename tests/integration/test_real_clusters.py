"""Real Spark and Dask clusters through the API: 1 master (scheduler) and 2 workers on local
nodes, Active with both workers alive in the master's (scheduler's) own status; scaled to 3
workers, down to 1 with decommission; deleted with no process left. On both stores."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_es.plugins.dask import dask_version
from sahara_es.plugins.spark import master_status, spark_version, worker_states
from sahara_es.store import Store
from tests.clouds import running_cloud

TIMEOUT = 420.0


@pytest.fixture
def cloud(store: Store, tmp_path: Path) -> Iterator[tuple[Any, dict[str, Any]]]:
    with running_cloud(store, tmp_path, hosts=2) as running:
        yield running.client, running.services


def wait(client: Any, path: str, headers: dict[str, str], *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        answer = client.get(path, headers=headers)
        if answer.status_code == 404 and "gone" in statuses:
            return {}
        cluster: dict[str, Any] = answer.get_json()["cluster"]
        if cluster["status"] in statuses:
            return cluster
        assert time.monotonic() < deadline, f"still {cluster['status']}"
        time.sleep(0.5)


def alive_workers(cluster: dict[str, Any], master: str) -> set[str]:
    """The workers' addresses the cluster's own master (scheduler) reports alive."""
    node = next(i for g in cluster["node_groups"] if master in g["node_processes"]
                for i in g["instances"])
    if master == "master":
        states = worker_states(master_status(node["management_ip"], 8080))
        return {host for host, state in states.items() if state == "ALIVE"}
    url = f"http://{node['management_ip']}:8787/api/v1/get_workers"
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
            url, timeout=10) as answer:
        workers = json.load(answer)["workers"]
    return {w["address"].split("://", 1)[-1].rsplit(":", 1)[0] for w in workers}


PLUGINS = {"spark": ("master", spark_version, "org.apache.spark.deploy"),
           "dask": ("scheduler", dask_version, "distributed.cli")}


INFO = {"spark": lambda at: {"Spark": {"Web UI": f"http://{at}:8080",
                                       "Master URL": f"spark://{at}:7077"}},
        "dask": lambda at: {"Dask": {"Dashboard": f"http://{at}:8787",
                                     "Scheduler": f"tcp://{at}:8786"}}}
"""The cluster's ``info`` as its plugin fills it, given the master's (scheduler's) address."""


def addresses(cluster: dict[str, Any], process: str) -> set[str]:
    return {i["management_ip"] for g in cluster["node_groups"]
            if process in g["node_processes"] for i in g["instances"]}


def processes(marker: bytes) -> set[int]:
    found = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker in command:
                found.add(int(pid))
    return found


@pytest.mark.parametrize("plugin", sorted(PLUGINS))
def test_a_real_cluster_lives_through_the_api(cloud: Any, plugin: str) -> None:
    client, services = cloud
    master, version, marker = PLUGINS[plugin]
    headers = {"X-Project-Id": f"p{uuid.uuid4().hex[:6]}"}
    before = processes(marker.encode())
    answer = client.post("/v2/clusters", headers=headers, json={
        "name": f"{plugin}-{uuid.uuid4().hex[:6]}", "plugin_name": plugin,
        "plugin_version": version(),
        "node_groups": [
            {"name": "master", "flavor_id": "local.medium", "node_processes": [master],
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": ["worker"],
             "count": 2}]})
    assert answer.status_code == 202, answer.get_json()
    path = f"/v2/clusters/{answer.get_json()['cluster']['id']}"

    cluster = wait(client, path, headers, "Active", "Error")
    assert cluster["status"] == "Active", cluster["status_description"]
    assert cluster["verification"]["status"] == "GREEN"
    assert alive_workers(cluster, master) == addresses(cluster, "worker")
    assert len(alive_workers(cluster, master)) == 2
    (head,) = addresses(cluster, master)
    assert cluster["info"] == INFO[plugin](head)

    assert client.put(path, headers=headers, json={
        "resize_node_groups": [{"name": "workers", "count": 3}]}).status_code == 202
    cluster = wait(client, path, headers, "Active", "Error")
    assert len(addresses(cluster, "worker")) == 3, cluster["status_description"]
    assert alive_workers(cluster, master) == addresses(cluster, "worker")

    assert client.put(path, headers=headers, json={
        "resize_node_groups": [{"name": "workers", "count": 1}]}).status_code == 202
    cluster = wait(client, path, headers, "Active", "Error")
    assert len(addresses(cluster, "worker")) == 1, cluster["status_description"]
    assert alive_workers(cluster, master) == addresses(cluster, "worker")
    progress = client.get(f"{path}?show_progress=true", headers=headers).get_json()
    drained = next(s for s in progress["cluster"]["provision_progress"]
                   if s["step_name"] == "Decommissioning nodes")
    assert drained["successful"] and len(drained["events"]) == 2

    assert client.delete(path, headers=headers).status_code == 204
    wait(client, path, headers, "gone")
    assert processes(marker.encode()) - before == set()
    assert services.provider.list_instances() == []
