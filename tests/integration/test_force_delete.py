"""Sahara's force delete (``DELETE /v2/clusters/<id>`` with ``{"force": true}``, the
saharaclient's ``clusters.force_delete``): answered 200 with Sahara's body, it deletes a
cluster whatever it is doing, without waiting for the workflow that provisions it nor for
a deletion stuck on nodes that no longer answer; nothing of the cluster is left, and its
history says that it was forced."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_es.engine import load_workflow
from sahara_es.engine.state import WorkflowStatus
from sahara_es.events import registry
from sahara_es.events.resources import Kind
from sahara_es.infra.local import LocalProvider, instance_processes
from sahara_es.provisioning import ids
from sahara_es.provisioning.delete import force_delete_id
from sahara_es.store import Store
from tests.clouds import Cloud, create_fake_cluster, running_cloud, show_cluster

TIMEOUT = 120.0


@pytest.fixture
def cloud(store: Store, tmp_path: Path) -> Iterator[Cloud]:
    with running_cloud(store, tmp_path, hosts=1) as running:
        yield running


def wait_until(what: Callable[[], Any], why: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (found := what()):
        assert time.monotonic() < deadline, why
        time.sleep(0.2)
    return found


def cluster_of(cloud: Cloud, cluster_id: str) -> dict[str, Any]:
    cluster = show_cluster(cloud.client, cloud.project, cluster_id)
    assert cluster is not None
    return cluster


def node_names(cluster: dict[str, Any]) -> list[str]:
    return [i["instance_name"] for g in cluster["node_groups"] for i in g["instances"]]


def force_delete(cloud: Cloud, cluster_id: str) -> Any:
    return cloud.client.delete(f"/v2/clusters/{cluster_id}", headers=cloud.headers,
                               json={"force": True})


def history(store: Store, cluster_id: str) -> list[str]:
    return [e.type for e in store.read(Kind.CLUSTER.stream(cluster_id))]


def assert_nothing_left(cloud: Cloud, names: list[str]) -> None:
    provider = cloud.services.provider
    assert isinstance(provider, LocalProvider)
    for name in names:
        assert provider.get_instance(name) is None
        assert instance_processes(name, provider.folder(name) / "sshd_config") == []
    usage = cloud.services.quotas.usage(cloud.project)
    assert {name: u.used for name, u in usage.items()} == {
        "instances": 0, "cores": 0, "ram_mb": 0}


def test_a_cluster_stuck_configuring_is_force_deleted_with_nothing_left(
        cloud: Cloud, store: Store) -> None:
    cluster_id = create_fake_cluster(cloud.client, cloud.project, workers=1,
                                     configs={"configure_seconds": 600})
    cluster = wait_until(lambda: (c := cluster_of(cloud, cluster_id))["status"]
                         == "Configuring" and c, "never configuring")
    names = node_names(cluster)
    assert len(names) == 2

    forced = force_delete(cloud, cluster_id)

    assert forced.status_code == 200, forced.get_json()
    assert forced.get_json() == {"stack_name": None}
    wait_until(lambda: show_cluster(cloud.client, cloud.project, cluster_id) is None,
               "the cluster is still there")
    assert_nothing_left(cloud, names)
    events = history(store, cluster_id)
    assert "ClusterForceDeletionRequested" in events
    assert "ClusterDeletionRequested" not in events
    assert events[-1] == "ResourceDeleted"
    assert load_workflow(store, force_delete_id(cluster_id)).status is \
        WorkflowStatus.SUCCEEDED
    create = wait_until(lambda: (s := load_workflow(store, ids.create_id(cluster_id)))
                        .status.finished and s, "the create never ended")
    assert create.status is not WorkflowStatus.SUCCEEDED


def test_force_supersedes_a_deletion_stuck_on_nodes_that_no_longer_answer(
        cloud: Cloud, store: Store) -> None:
    cluster_id = create_fake_cluster(cloud.client, cloud.project, workers=1)
    cluster = wait_until(lambda: (c := cluster_of(cloud, cluster_id))["status"]
                         in ("Active", "Error") and c, "never active")
    assert cluster["status"] == "Active", cluster["status_description"]
    names = node_names(cluster)
    provider = cloud.services.provider
    assert isinstance(provider, LocalProvider)
    for name in names:  # the nodes hang: their sshd and sessions stopped, not gone
        for pid in instance_processes(name, provider.folder(name) / "sshd_config"):
            os.kill(pid, signal.SIGSTOP)
    path = f"/v2/clusters/{cluster_id}"
    assert cloud.client.delete(path, headers=cloud.headers).status_code == 204
    wait_until(lambda: any(s["step_name"] == "Stopping services" for s in
                           (show_cluster(cloud.client, cloud.project, cluster_id) or {})
                           .get("provision_progress", [])), "the delete never stopped services")
    assert show_cluster(cloud.client, cloud.project, cluster_id) is not None

    forced = force_delete(cloud, cluster_id)

    assert forced.status_code == 200, forced.get_json()
    wait_until(lambda: show_cluster(cloud.client, cloud.project, cluster_id) is None,
               "the cluster is still there")
    assert_nothing_left(cloud, names)
    events = history(store, cluster_id)
    assert events.index("ClusterDeletionRequested") < events.index(
        "ClusterForceDeletionRequested")
    delete = wait_until(lambda: (s := load_workflow(store, ids.delete_id(cluster_id)))
                        .status.finished and s, "the stuck delete never ended")
    assert delete.status is not WorkflowStatus.SUCCEEDED, delete.failure
    again = force_delete(cloud, cluster_id)
    assert again.status_code == 404


def test_a_protected_cluster_is_not_force_deleted_and_forcing_twice_is_one_deletion(
        cloud: Cloud, store: Store) -> None:
    cluster_id = create_fake_cluster(cloud.client, cloud.project,
                                     configs={"configure_seconds": 600})
    path = f"/v2/clusters/{cluster_id}"
    assert cloud.client.patch(path, headers=cloud.headers,
                              json={"is_protected": True}).status_code == 202
    refused = force_delete(cloud, cluster_id)
    assert refused.status_code == 409, refused.get_json()
    assert cloud.client.patch(path, headers=cloud.headers,
                              json={"is_protected": False}).status_code == 202

    assert force_delete(cloud, cluster_id).status_code == 200
    second = force_delete(cloud, cluster_id)
    assert second.status_code in (200, 404)  # 404 once the first deletion completed
    wait_until(lambda: show_cluster(cloud.client, cloud.project, cluster_id) is None,
               "the cluster is still there")
    events = history(store, cluster_id)
    assert events.count("ClusterForceDeletionRequested") == 1
    assert [registry.decode(e).__class__.__name__ for e in
            store.read(Kind.CLUSTER.stream(cluster_id))][-1] == "ResourceDeleted"
