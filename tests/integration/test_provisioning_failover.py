"""A cluster's provisioning survives its engine: kill -9 the engine while a 5-node cluster is
Configuring, and another engine process finishes it, Active, with exactly five nodes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.engine import wait_for
from sahara_es.events import registry
from sahara_es.events import workflow as ev
from sahara_es.provisioning import ids
from sahara_es.provisioning.services import build_services, provisioning_services
from sahara_es.store import Store
from tests.engines import EngineProcess, wait_until

TTL = 3.0


def test_a_killed_engine_s_cluster_is_finished_by_another(store: Store, url: str,
                                                          tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    hosts = f"f{tag}-1=16:65536,f{tag}-2=16:65536"
    extra = ("--data-dir", str(tmp_path), "--hosts", hosts)
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], engines=True), store=store,
                  quota=STORE_QUOTAS)
    client = app.test_client()
    headers = {"X-Project-Id": f"p{tag}"}
    try:
        with EngineProcess(url, f"doomed-{tag}", tmp_path, lease_ttl=TTL, extra=extra) as doomed:
            answer = client.post("/v2/clusters", headers=headers, json={
                "name": f"c{tag}", "plugin_name": "fake", "plugin_version": "0.1",
                "cluster_configs": {"Fake": {"configure_seconds": 4}},
                "node_groups": [
                    {"name": "manager", "flavor_id": "local.small",
                     "node_processes": ["namenode"], "count": 1},
                    {"name": "workers", "flavor_id": "local.small",
                     "node_processes": ["datanode"], "count": 4}]})
            assert answer.status_code == 202
            cluster_id = answer.get_json()["cluster"]["id"]

            def status() -> str:
                shown = client.get(f"/v2/clusters/{cluster_id}", headers=headers)
                found: str = shown.get_json()["cluster"]["status"]
                return found

            wait_until(lambda: status() == "Configuring", timeout=120, poll=0.1)
            time.sleep(1.0)  # the nodes' configuration is under way
            doomed.kill()
            with EngineProcess(url, f"heir-{tag}", tmp_path, lease_ttl=TTL, extra=extra):
                wait_until(lambda: status() in ("Active", "Error"), timeout=180, poll=0.2)
                cluster = client.get(f"/v2/clusters/{cluster_id}",
                                     headers=headers).get_json()["cluster"]
                assert cluster["status"] == "Active", cluster["status_description"]
                names = [i["instance_name"] for g in cluster["node_groups"]
                         for i in g["instances"]]
                assert len(names) == 5 == len(set(names))
                owners = {o.engine for o in _owners(store, ids.create_id(cluster_id))}
                assert owners == {f"doomed-{tag}", f"heir-{tag}"}
                client.delete(f"/v2/clusters/{cluster_id}", headers=headers)
                wait_until(lambda: client.get(f"/v2/clusters/{cluster_id}",
                                              headers=headers).status_code == 404,
                           timeout=120, poll=0.2)
    finally:
        stop_app(app)
        provider = provisioning_services(build_services(store, root=tmp_path)).provider
        for instance in provider.list_instances():
            provider.delete_instance(instance.name)


def _owners(store: Store, workflow_id: str) -> list[ev.WorkflowOwned]:
    # The cluster turns Active in the workflow's last step, a moment before the workflow
    # records that it finished.
    state = wait_for(store, workflow_id, timeout=60)
    assert state.status.finished
    return [fact for fact in (registry.decode(e) for e in store.read(f"workflow-{workflow_id}"))
            if isinstance(fact, ev.WorkflowOwned)]
