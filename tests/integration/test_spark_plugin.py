"""The Spark plugin's flows on real nodes: local instances (an sshd each) running a real Spark
standalone master and workers from the pyspark package.

One test walks a cluster's life, because starting JVMs is what costs: configure and start
(twice: the second start finds everything running), scale out, decommission, a worker lost,
terminate, delete. Every instance is deleted at the end, even when the test fails, and with
it every process it started.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sahara_es.engine import PermanentFailure, TaskContext
from sahara_es.engine.flow import build_task
from sahara_es.infra import InstanceSpec, LocalProvider, Node, SSHPool
from sahara_es.infra.local import instance_processes
from sahara_es.plugins.base import ClusterInfo, NodeInfo
from sahara_es.plugins.spark import (
    MASTER_CLASS,
    SPARK_HOMES_VARIABLE,
    WORKER_CLASS,
    DaemonDied,
    SparkPlugin,
    master_status,
    worker_states,
)
from tests.flows import plugin_services, run_flow

pytestmark = pytest.mark.xdist_group("local-infra")

CONFIGS: dict[str, Any] = {"Spark": {"Worker memory": "512m", "Daemon memory": "256m",
                                     "Decommission timeout": 40}}


CLUSTER = f"spark-test-{uuid.uuid4().hex[:6]}"
"""The nodes' cluster, as provisioning names it: one node user, whose nodes reach each other."""


def make_node(provider: LocalProvider, public_key: str, name: str, group: str,
              processes: list[str]) -> NodeInfo:
    instance = provider.create_instance(
        InstanceSpec(name=name, flavor="local.small", public_key=public_key,
                     host="local-host-1", metadata={"cluster": CLUSTER}))
    provider.wait_reachable(instance, timeout=10)
    return NodeInfo(name=instance.name, node_group=group, processes=processes,
                    address=instance.address, ssh_port=instance.ssh_port,
                    username=instance.username, host_key=instance.extra["host_key"],
                    home=instance.extra["home"], host=instance.host)


def cluster_of(nodes: list[NodeInfo], configs: dict[str, Any] | None = None) -> ClusterInfo:
    return ClusterInfo("c-spark", "spark-test", SparkPlugin().versions()[0],
                       configs or CONFIGS, nodes)


def alive(master: NodeInfo) -> set[str]:
    states = worker_states(master_status(master.address, 8080))
    return {host for host, state in states.items() if state == "ALIVE"}


def spark_processes(provider: LocalProvider, name: str) -> list[int]:
    """The instance's processes running a Spark daemon (or spark-class launching one)."""
    found = []
    for pid in instance_processes(name, provider.folder(name) / "sshd_config"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if MASTER_CLASS.encode() in cmdline or WORKER_CLASS.encode() in cmdline:
            found.append(pid)
    return found


def reconciled(flow: Any, task_id: str, services: dict[str, Any]) -> Any:
    """What a start task's ``reconcile`` says about an attempt of it, as a new engine asks."""
    spec = next(s for s in flow.specs if s.id == task_id)
    context = TaskContext(workflow_id="test", task_id=task_id, attempt=2, engine_id="other",
                          params={}, results={}, lease_valid=lambda: True, services=services)
    return build_task(spec).reconcile(context, {})


def wait_for(condition: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_a_spark_cluster_starts_scales_drains_degrades_and_stops(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    plugin = SparkPlugin()
    services = plugin_services(pool)
    suffix = uuid.uuid4().hex[:8]
    master = make_node(provider, keypair[1], f"sp-master-{suffix}", "master", ["master"])
    w1, w2 = (make_node(provider, keypair[1], f"sp-worker{i}-{suffix}", "workers", ["worker"])
              for i in (1, 2))
    cluster = cluster_of([master, w1, w2])

    # configure: one task per node, none waiting for another
    configure = plugin.configure(cluster)
    assert len(configure.specs) == 3 and all(not s.requires for s in configure.specs)
    run_flow(configure, services)
    env = pool.run(w1.ssh_node(), "cat spark/conf/spark-env.sh").stdout
    assert f"SPARK_LOCAL_IP={w1.address}" in env and f"SPARK_MASTER_HOST={master.address}" in env
    assert "spark.decommission.enabled=true" in env

    # start: the master, then every worker once it answers
    start = plugin.start(cluster)
    assert {s.id: s.requires for s in start.specs} == {
        "start-master": (), f"start-worker-{w1.name}": ("start-master",),
        f"start-worker-{w2.name}": ("start-master",)}
    results = run_flow(start, services)
    assert results["start-master"]["status"] == "ALIVE"
    assert alive(master) == {w1.address, w2.address}
    assert plugin.health(cluster, pool).status == "GREEN"
    daemons = {n.name: spark_processes(provider, n.name) for n in cluster.nodes}
    assert all(len(pids) == 1 for pids in daemons.values()), daemons

    # starting again starts nothing: every daemon is found running
    again = run_flow(plugin.start(cluster), services)
    assert all(result["already_running"] for result in again.values())
    assert {n.name: spark_processes(provider, n.name) for n in cluster.nodes} == daemons
    assert reconciled(start, f"start-worker-{w2.name}", services)["state"] == "ALIVE"

    # scale out: the new worker is configured and joins the running master
    w3 = make_node(provider, keypair[1], f"sp-worker3-{suffix}", "workers", ["worker"])
    scaled = cluster_of([master, w1, w2, w3])
    run_flow(plugin.scale(scaled, [w3]), services)
    assert alive(master) == {w1.address, w2.address, w3.address}

    # decommission: drained (the master lists it DECOMMISSIONED), then stopped
    drained = run_flow(plugin.decommission(scaled, [w1]), services)
    result = drained[f"decommission-{w1.name}"]
    assert result["drained"], result
    assert alive(master) == {w2.address, w3.address}
    assert spark_processes(provider, w1.name) == []
    remaining = cluster_of([master, w2, w3])
    assert plugin.health(remaining, pool).status == "GREEN"

    # a worker lost: the cluster is degraded, and says which node failed
    pool.run(w2.ssh_node(), "kill -9 $(cat spark/run/worker.pid)")
    health = wait_for(lambda: (h := plugin.health(remaining, pool)).status == "YELLOW" and h,
                      timeout=30)
    assert health, plugin.health(remaining, pool)
    assert health.failed_nodes == [w2.name]

    # terminate: no Spark daemon is left on any node (the decommissioned one included)
    stopped = run_flow(plugin.on_terminate(scaled), services)
    assert all(r["stopped"] for r in stopped.values()), stopped
    for node in scaled.nodes:
        assert spark_processes(provider, node.name) == [], node.name
    assert plugin.health(remaining, pool).status == "RED"
    run_flow(plugin.on_terminate(scaled), services)  # stopping again is a no-op
    assert reconciled(start, "start-master", services) is None

    for node in scaled.nodes:
        pool.forget(Node(node.address, node.ssh_port, node.username, node.host_key))
        provider.delete_instance(node.name)
        assert instance_processes(node.name, provider.folder(node.name) / "sshd_config") == []


def test_missing_spark_and_a_daemon_that_dies_fail_for_good_and_say_why(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str], tmp_path: Path,
    nodes_root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    plugin = SparkPlugin()
    services = plugin_services(pool)
    suffix = uuid.uuid4().hex[:8]
    master = make_node(provider, keypair[1], f"sp-broken-{suffix}", "master", ["master"])
    broken = nodes_root / "broken-spark"  # where the node's user can reach it

    nowhere = cluster_of([master], {"Spark": {"Spark home": str(tmp_path / "no-spark")}})
    # A Spark home the operator does not offer is refused before any node is touched.
    with pytest.raises(PermanentFailure, match=r"not a Spark distribution this service"):
        plugin.configure(nowhere)
    monkeypatch.setenv(SPARK_HOMES_VARIABLE, f"{tmp_path / 'no-spark'}:{broken}")
    with pytest.raises(PermanentFailure, match=r"no Spark on .*no-spark/bin/spark-class"):
        run_flow(plugin.configure(nowhere), services)

    # A distribution whose spark-class fails at once, as a daemon whose port is taken does.
    (broken / "bin").mkdir(parents=True)
    (broken / "bin" / "spark-class").write_text(
        "#!/bin/sh\necho \"starting $1\"; echo 'BindException: Address already in use' >&2\n"
        "exit 1\n")
    (broken / "bin" / "spark-class").chmod(0o755)
    failing = cluster_of([master], {"Spark": {"Spark home": str(broken)}})
    run_flow(plugin.configure(failing), services)
    started = time.monotonic()
    with pytest.raises(DaemonDied) as died:
        run_flow(plugin.start(failing), services)
    assert time.monotonic() - started < 30  # not the start timeout
    assert f"starting {MASTER_CLASS}" in str(died.value)
    assert "Address already in use" in str(died.value)
