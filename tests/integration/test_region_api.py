"""What the API shows of regions (doc/regions.rst, "What the API shows"), end to end: real
``sahara-es api`` processes in dc1 and in dc2, each connected with its own datacenter as the
local one and reading locally, and real ``sahara-es engine`` processes, on the real
three-datacenter Cassandra (``tools/cassandra-regions``), in the session's keyspace emptied
for the test.

- A cluster made through dc1's API is dc1's (``region``) on both API processes; while its
  workflow runs, both show its owner (``workflow_owner``: the workflow, the engine, the
  engine's region); once it is Active, no owner.
- dc1's engine killed mid-way, dc2's takes the workflow over (after the lease TTL and a small
  takeover grace), and both API processes show the owner's region change to dc2; the cluster
  stays dc1's.

Kept cheap for CI: one fake-plugin cluster of two nodes, one long step.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sahara_es.engine.engine import events_of
from sahara_es.events import workflow as ev
from sahara_es.infra import LocalProvider
from sahara_es.store import Store
from tests import regions
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.integration.test_haproxy import ApiProcess

pytestmark = [pytest.mark.cassandra, pytest.mark.slow]

CONFIGURE_SECONDS = 10
"""How long the namenode's configuration takes: the engines act meanwhile."""

POLL = 1.2
"""Between two reads of one API process: more than its affinity window (1 s), so that each
show reads the cluster from the store (doc/api-processes.rst), not a feed that may lag while
its relay, lost with dc1's engine, is replaced."""


CLUSTER: dict[str, Any] = {
    "name": f"c{uuid.uuid4().hex[:6]}", "plugin_name": "fake", "plugin_version": "0.1",
    "cluster_configs": {"Fake": {"configure_seconds": CONFIGURE_SECONDS,
                                 "slow_configure": "namenode"}},
    "node_groups": [{"name": "manager", "flavor_id": "local.small",
                     "node_processes": ["namenode"], "count": 1},
                    {"name": "workers", "flavor_id": "local.small",
                     "node_processes": ["datanode"], "count": 1}]}
"""Two nodes: the namenode's configuration is the long step."""


def region_engine(keyspace: str, region: str, folder: Path, nodes: Path, *,
                  concurrency: int) -> EngineProcess:
    """``sahara-es engine`` of ``region`` running clusters' workflows on local nodes under
    ``nodes`` (one machine: every region's engine reaches every node)."""
    return EngineProcess(
        regions.regions_url(keyspace, region), f"e-{region}", folder, lease_ttl=3.0,
        concurrency=concurrency, sweep_interval=0.2,
        extra=("--region", region, "--region-takeover-grace", "1",
               "--nodes-dir", str(nodes), "--no-node-network-isolation",
               "--hosts", f"h-{region}-{uuid.uuid4().hex[:6]}=8:16384"))


@contextlib.contextmanager
def apis_of(keyspace: str, folder: Path, *names: str) -> Iterator[dict[str, ApiProcess]]:
    """An API process of each region, started together, each connected to its own."""
    started = {region: ApiProcess(regions.regions_url(keyspace, region), folder)
               for region in names}
    try:
        for api in started.values():
            api.wait_healthy()
        yield started
    finally:
        for api in started.values():
            api.stop()


def shown(api: ApiProcess, project: str, cluster_id: str) -> dict[str, Any]:
    cluster = shown_if_known(api, project, cluster_id)
    assert cluster is not None
    return cluster


def shown_if_known(api: ApiProcess, project: str, cluster_id: str) -> dict[str, Any] | None:
    """The cluster as the process shows it; None while it does not know it yet (a 404):
    another region's write reaches this one's datacenter, and then its feed, a moment later."""
    answer = requests.get(f"{api.base}/v2/clusters/{cluster_id}",
                          headers={"X-Project-Id": project}, timeout=30)
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    cluster: dict[str, Any] = answer.json()["cluster"]
    return cluster


def configuring(store: Store, workflow_id: str, group: str) -> bool:
    """Whether the configuration of the group's node (``c<id>-<group>-1``) has started (its
    task spawned by the configure phase, ``plan.configure.configure-configure-<node>``)."""
    return any(isinstance(e, ev.TaskStarted)
               and e.task_id.rsplit(".", 1)[-1].startswith("configure-")
               and e.task_id.endswith(f"-{group}-1")
               for e in events_of(store, f"workflow-{workflow_id}"))


def test_both_regions_apis_show_a_clusters_region_and_its_workflows_owner_moving_to_dc2(
        stores: dict[str, Store], keyspace: str, tmp_path: Path, nodes_root: Path) -> None:
    project = f"p{uuid.uuid4().hex[:8]}"
    nodes = nodes_root / "nodes"
    # One slot in dc1: the namenode's (slow) configuration starts before the datanode's.
    dc1_engine = region_engine(keyspace, "dc1", tmp_path, nodes, concurrency=1)
    try:
        with apis_of(keyspace, tmp_path, "dc1", "dc2") as apis:
            made = requests.post(f"{apis['dc1'].base}/v2/clusters", timeout=30,
                                 headers={"X-Project-Id": project}, json=CLUSTER)
            assert made.status_code == 202, made.text
            cluster_id = made.json()["cluster"]["id"]

            seen: dict[str, dict[str, Any] | None] = {}

            def owned_in(region: str) -> bool:
                """Whether both API processes show the workflow's owner in ``region``
                (what they show kept in ``seen``)."""
                shows = {name: shown_if_known(api, project, cluster_id)
                         for name, api in apis.items()}
                seen.update({name: cluster and cluster["workflow_owner"]
                             for name, cluster in shows.items()})
                return all(o is not None and o["region"] == region for o in seen.values())

            wait_until(lambda: owned_in("dc1"), timeout=120, poll=POLL)
            assert {o["engine"] for o in seen.values() if o} == {"e-dc1"}
            workflow = next(o["workflow_id"] for o in seen.values() if o)
            assert all(shown(api, project, cluster_id)["region"] == "dc1"
                       for api in apis.values())

            wait_until(lambda: configuring(stores["dc1"], workflow, "manager"),
                       timeout=120, poll=0.2)
            dc1_engine.kill()  # mid-configuration; no engine of dc1 is left
            with region_engine(keyspace, "dc2", tmp_path, nodes, concurrency=4):
                wait_until(lambda: owned_in("dc2"), timeout=120, poll=POLL)
                assert {(o["engine"], o["workflow_id"]) for o in seen.values() if o} == {
                    ("e-dc2", workflow)}
                wait_until(lambda: all(shown(api, project, cluster_id)["status"]
                                       in ("Active", "Error") for api in apis.values()),
                           timeout=120, poll=POLL)
                for api in apis.values():
                    cluster = shown(api, project, cluster_id)
                    assert (cluster["status"], cluster["region"], cluster["workflow_owner"]) \
                        == ("Active", "dc1", None)
                assert engine_alive(stores["dc2"], "e-dc2", "dc2")
            handovers = [e for e in events_of(stores["dc1"], f"workflow-{workflow}")
                         if isinstance(e, ev.WorkflowTakenOver)]
            assert [(h.from_region, h.to_region, h.home_region) for h in handovers] == [
                ("dc1", "dc2", "dc1")]
    finally:
        with dc1_engine:
            pass  # killed if it still runs
        cleaner = LocalProvider(stores["dc1"], root=nodes / "instances", stop_grace=1.0,
                                network_isolation=False)
        for instance in cleaner.list_instances():
            cleaner.delete_instance(instance.name)
