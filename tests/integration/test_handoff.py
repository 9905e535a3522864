"""The handoff from commands to workflows (``engine/handoff.py``): engines start what the
commands' events ask for, so nothing is orphaned by a process dying between two writes.

In-process first (the rules, idempotence, adoption, record-only clusters), then with real
processes killed at crash points: the API right after a cluster's append, and an engine
between a workflow's ``WorkflowStarted`` and its lease. The cluster still ends Active, and
once deleted nothing is held: no workflow lease, no quota.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from sahara_es import provisioning
from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.commands import clusters, resources
from sahara_es.commands.caller import SYSTEM, Caller
from sahara_es.engine import Handoff, load_workflow, start_workflow
from sahara_es.engine.crashpoints import CLUSTER_RECORDED, ENV, WORKFLOW_RECORDED
from sahara_es.events import registry
from sahara_es.events import resources as ev
from sahara_es.events import workflow as wev
from sahara_es.events.resources import META, Kind
from sahara_es.infra.quotas import Quotas
from sahara_es.provisioning import ids
from sahara_es.provisioning.requests import CLUSTER_REQUESTS, left_alone
from sahara_es.store import LeaseLost, Store
from tests.engines import ROOT, EngineProcess, wait_until
from tests.integration.test_service_processes import _answers, free_port
from tests.workflows import lines  # noqa: F401 - registers the test.* workflow types

TTL = 3.0
GROUPS = [{"name": "manager", "flavor_id": "local.small", "node_processes": ["namenode"],
           "count": 1},
          {"name": "workers", "flavor_id": "local.small", "node_processes": ["datanode"],
           "count": 1}]


def fake_cluster(name: str) -> dict[str, Any]:
    return {"name": name, "plugin_name": "fake", "plugin_version": "0.1",
            "node_groups": GROUPS}


def handoff_until_idle(store: Store, name: str) -> Handoff:
    """A handoff of its own name (the store is shared by other tests), run in this thread
    until it has read the whole feed."""
    handoff = Handoff(store, CLUSTER_REQUESTS, owner=f"test-{uuid.uuid4().hex[:6]}",
                      name=name)
    assert handoff._hold_lease()
    while not handoff.run_once():
        pass
    return handoff


def started(store: Store, workflow_id: str) -> list[Any]:
    return [registry.decode(e) for e in store.read(f"workflow-{workflow_id}")]


# -- in one process ----------------------------------------------------------------------

def test_each_cluster_request_starts_its_workflow_once(sqlite_store: Store) -> None:
    store = sqlite_store
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], run_projector=False,
                            engines=True), store=store)
    client = app.test_client()
    project = f"p{uuid.uuid4().hex[:6]}"
    headers = {"X-Project-Id": project}
    made = client.post("/v2/clusters", headers=headers, json=fake_cluster("c1"))
    assert made.status_code == 202
    cluster_id = made.get_json()["cluster"]["id"]
    assert store.stream_version(f"workflow-{ids.create_id(cluster_id)}") == 0  # the API starts none

    handoff = handoff_until_idle(store, "handoff-a")
    create = started(store, ids.create_id(cluster_id))[0]
    assert isinstance(create, wev.WorkflowStarted)
    assert create.workflow_type == provisioning.CREATE
    assert create.params == {"cluster_id": cluster_id}
    first = next(iter(store.read(f"workflow-{ids.create_id(cluster_id)}")))
    assert first.metadata.project_id == project
    lease = store.get_lease(f"workflow-{ids.create_id(cluster_id)}")
    assert lease is not None and lease.expired(time.time())  # offered to every engine

    # The cluster made Active (as its create would have), then scaled, verified, deleted.
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    resources.append(store, aggregate, [ev.ClusterStatusChanged("Active")], SYSTEM)
    scaled = client.put(f"/v2/clusters/{cluster_id}", headers=headers, json={
        "resize_node_groups": [{"name": "workers", "count": 2}]})
    assert scaled.status_code == 202
    version = store.stream_version(f"cluster-{cluster_id}")
    assert client.patch(f"/v2/clusters/{cluster_id}", headers=headers, json={
        "verification": {"status": "START"}}).status_code == 409  # Scaling: refused
    assert client.delete(f"/v2/clusters/{cluster_id}", headers=headers).status_code == 204
    handoff.run_once()
    scale = started(store, ids.scale_id(version, cluster_id))[0]
    assert (scale.workflow_type, scale.params) == (
        provisioning.SCALE, {"cluster_id": cluster_id, "version": version})
    delete = started(store, ids.delete_id(cluster_id))[0]
    assert (delete.workflow_type, delete.params) == (
        provisioning.DELETE, {"cluster_id": cluster_id})
    assert handoff.started == 3

    # Idempotent by workflow id: the whole feed handled again (a handoff with no checkpoint)
    # starts nothing twice.
    assert handoff_until_idle(store, "handoff-a2").started == 0
    assert len(started(store, ids.create_id(cluster_id))) == 1
    stop_app(app)


def test_a_verification_and_a_rebuild_start_theirs(sqlite_store: Store) -> None:
    store = sqlite_store
    caller = Caller(project_id=f"p{uuid.uuid4().hex[:6]}")
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], run_projector=False,
                            engines=True), store=store)
    client = app.test_client()
    made = client.post("/v2/clusters", headers={"X-Project-Id": caller.project_id},
                       json=fake_cluster("c2")).get_json()["cluster"]
    cluster_id = made["id"]
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    resources.append(store, aggregate, [
        ev.ClusterStatusChanged("Active"),
        ev.ClusterHealthChecked("v0", "YELLOW", [], ["node-7"])], SYSTEM)
    verified = clusters.update_cluster(store, caller, cluster_id,
                                       {"verification": {"status": "START"}})
    verification = verified["verification"]["id"]
    rebuilt = clusters.update_cluster(store, caller, cluster_id,
                                      {"rebuild_failed_nodes": True})
    version = rebuilt[META]["version"]
    handoff_until_idle(store, "handoff-b")
    verify = started(store, ids.verify_id(verification))[0]
    assert (verify.workflow_type, verify.params) == (
        provisioning.VERIFY, {"cluster_id": cluster_id, "verification_id": verification})
    rebuild = started(store, ids.rebuild_id(version, cluster_id))[0]
    assert (rebuild.workflow_type, rebuild.params) == (
        provisioning.REBUILD, {"cluster_id": cluster_id, "version": version,
                               "nodes": ["node-7"]})
    stop_app(app)


def test_a_record_only_api_s_clusters_are_left_alone(sqlite_store: Store) -> None:
    store = sqlite_store
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], run_projector=False),
                  store=store)
    client = app.test_client()
    headers = {"X-Project-Id": f"p{uuid.uuid4().hex[:6]}"}
    cluster_id = client.post("/v2/clusters", headers=headers,
                             json=fake_cluster("c3")).get_json()["cluster"]["id"]
    assert left_alone(store, cluster_id)
    assert client.delete(f"/v2/clusters/{cluster_id}", headers=headers).status_code == 204
    assert resources.load(store, Kind.CLUSTER, cluster_id).doc[META]["deleted"]
    handoff = handoff_until_idle(store, "handoff-c")
    assert handoff.started == 0
    assert store.stream_version(f"workflow-{ids.create_id(cluster_id)}") == 0
    assert store.stream_version(f"workflow-{ids.delete_id(cluster_id)}") == 0
    stop_app(app)


def test_a_workflow_recorded_without_its_lease_is_adopted(sqlite_store: Store,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    store = sqlite_store
    workflow_id = f"orphan-{uuid.uuid4().hex[:6]}"

    def killed(pid: int, signum: int) -> None:
        raise SystemExit(-signum)

    monkeypatch.setenv(ENV, f"{WORKFLOW_RECORDED}:{workflow_id}")
    monkeypatch.setattr(os, "kill", killed)
    with pytest.raises(SystemExit):
        start_workflow(store, "test.noops", {"tasks": 1, "shape": "linear"},
                       workflow_id=workflow_id)
    monkeypatch.undo()
    assert store.stream_version(f"workflow-{workflow_id}") == 1
    assert store.get_lease(f"workflow-{workflow_id}") is None
    handoff_until_idle(store, "handoff-d")
    lease = store.get_lease(f"workflow-{workflow_id}")
    assert lease is not None and lease.expired(time.time())
    assert load_workflow(store, workflow_id).started


def test_a_handoff_paused_past_its_lease_cannot_move_the_checkpoint(
        sqlite_store: Store) -> None:
    store = sqlite_store
    start_workflow(store, "test.noops", {"tasks": 1, "shape": "linear"})
    old = Handoff(store, CLUSTER_REQUESTS, owner="old", ttl=0.2, name="handoff-e")
    assert old._hold_lease()
    old.run_once()  # a checkpoint saved
    time.sleep(0.3)  # paused past its lease...
    new = Handoff(store, CLUSTER_REQUESTS, owner="new", ttl=10, name="handoff-e")
    assert new._hold_lease()  # ...which another took, fencing the checkpoint
    start_workflow(store, "test.noops", {"tasks": 1, "shape": "linear"})
    old._lease_until = time.monotonic() + 10  # it wakes up still trusting its lease
    with pytest.raises(LeaseLost):
        old.run_once()
    assert new.run_once()


# -- real processes, killed at crash points -----------------------------------------------

def api_process(url: str, port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "sahara_es.cli", "--store", url, "api", "--port", str(port),
         "--plugins", "fake", "--auth", "noauth"], cwd=ROOT, stdout=log.open("wb"),
        stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def cluster_doc(store: Store, cluster_id: str) -> dict[str, Any]:
    doc = resources.load(store, Kind.CLUSTER, cluster_id).doc
    assert doc is not None
    return doc


def wait_active_then_delete(store: Store, project: str, cluster_id: str) -> None:
    """Active, then deleted (as the API's DELETE would), and nothing held afterwards."""
    wait_until(lambda: cluster_doc(store, cluster_id)["status"] in ("Active", "Error"),
               timeout=120, poll=0.2)
    doc = cluster_doc(store, cluster_id)
    assert doc["status"] == "Active", doc["status_description"]
    quotas = Quotas(store)
    assert quotas.usage(project)["instances"].used == 2
    clusters.delete_cluster(store, Caller(project_id=project), cluster_id)
    wait_until(lambda: bool(cluster_doc(store, cluster_id)[META]["deleted"]), timeout=120,
               poll=0.2)
    for workflow_id in (ids.create_id(cluster_id), ids.delete_id(cluster_id)):
        wait_until(lambda w=workflow_id: load_workflow(store, w).status.finished,
                   timeout=30, poll=0.1)
        assert load_workflow(store, workflow_id).status.value == "succeeded"
        wait_until(lambda w=workflow_id: store.get_lease(f"workflow-{w}") is None,
                   timeout=10, poll=0.1)
    assert {u.resource: u.used for u in quotas.usage(project).values()} == {
        "instances": 0, "cores": 0, "ram_mb": 0}


def handoff_latency(store: Store, cluster_id: str) -> float:
    created = next(iter(store.read(f"cluster-{cluster_id}", 1, to_version=1)))
    workflow = next(iter(store.read(f"workflow-{ids.create_id(cluster_id)}", 1, to_version=1)))
    return (workflow.metadata.occurred_at - created.metadata.occurred_at).total_seconds()


def test_an_api_killed_right_after_the_append_orphans_nothing(store: Store, url: str,
                                                              tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    project, name, port = f"p{tag}", f"c{tag}", free_port()
    extra = ("--data-dir", str(tmp_path), "--hosts", f"k{tag}-1=8:16384")
    api = api_process(url, port, tmp_path / "api.log", **{ENV: CLUSTER_RECORDED})
    try:
        with EngineProcess(url, f"engine-{tag}", tmp_path, lease_ttl=TTL, extra=extra):
            wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60,
                       poll=0.2)
            with pytest.raises(requests.ConnectionError):
                requests.post(f"http://127.0.0.1:{port}/v2/clusters", json=fake_cluster(name),
                              headers={"X-Project-Id": project}, timeout=30)
            assert api.wait(10) == -signal.SIGKILL
            cluster_id = store.name_owner(project, Kind.CLUSTER.value, name)
            assert cluster_id is not None  # recorded, and nothing else was done
            wait_active_then_delete(store, project, cluster_id)
            print(f"handoff latency: {handoff_latency(store, cluster_id):.3f} s")
    finally:
        if api.poll() is None:
            api.kill()
            api.wait(10)


def test_an_engine_killed_between_the_record_and_the_lease_orphans_nothing(
        store: Store, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tag = uuid.uuid4().hex[:6]
    project = f"p{tag}"
    extra = ("--data-dir", str(tmp_path), "--hosts", f"k{tag}-1=8:16384")
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], engines=True), store=store,
                  quota=STORE_QUOTAS)
    try:
        made = app.test_client().post("/v2/clusters", headers={"X-Project-Id": project},
                                      json=fake_cluster(f"c{tag}"))
        assert made.status_code == 202
        cluster_id = made.get_json()["cluster"]["id"]
        monkeypatch.setenv(ENV, f"{WORKFLOW_RECORDED}:{ids.create_id(cluster_id)}")
        with EngineProcess(url, f"doomed-{tag}", tmp_path, lease_ttl=TTL,
                           extra=extra) as doomed:
            monkeypatch.delenv(ENV)
            assert doomed.process.wait(120) == -signal.SIGKILL
        stream = f"workflow-{ids.create_id(cluster_id)}"
        assert store.stream_version(stream) >= 1  # recorded...
        assert store.get_lease(stream) is None  # ...and no lease: found by no sweep
        with EngineProcess(url, f"heir-{tag}", tmp_path, lease_ttl=TTL, extra=extra):
            wait_active_then_delete(store, project, cluster_id)
    finally:
        stop_app(app)
