"""The Dask plugin's flows on real nodes: local instances (an sshd each), a real scheduler and
real workers, driven through the plugin's tasks as provisioning would run them."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from distributed import Client, get_worker

from sahara_es.infra import Instance, InstanceSpec, LocalProvider, SSHPool
from sahara_es.infra.local import instance_processes
from sahara_es.plugins.base import ClusterInfo, Health, NodeInfo
from sahara_es.plugins.dask import DaskFailed, DaskPlugin, scheduler_workers
from tests.flows import plugin_services, run_flow

pytestmark = pytest.mark.xdist_group("local-infra")


def node_of(instance: Instance, processes: list[str]) -> NodeInfo:
    return NodeInfo(name=instance.name, node_group=processes[0], processes=processes,
                    address=instance.address, ssh_port=instance.ssh_port,
                    username=instance.username, host_key=instance.extra["host_key"],
                    home=instance.extra["home"], host=instance.host)


def cluster_of(nodes: list[NodeInfo]) -> ClusterInfo:
    return ClusterInfo("c-dask", "dask-test", DaskPlugin().versions()[0],
                       {"Dask": {"Worker threads": 2}}, nodes)


def dask_processes(provider: LocalProvider, name: str) -> list[int]:
    """The instance's processes that run Dask."""
    found = []
    for pid in instance_processes(name, provider.folder(name) / "sshd_config"):
        try:
            if b"distributed.cli" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_a_dask_cluster_starts_computes_scales_drains_and_terminates(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    started = time.monotonic()
    plugin = DaskPlugin()
    services = plugin_services(pool)
    suffix = uuid.uuid4().hex[:6]

    def create(role: str, i: int) -> NodeInfo:
        instance = provider.create_instance(InstanceSpec(
            name=f"dask-{suffix}-{role}-{i}", flavor="local.small", public_key=keypair[1],
            host="local-host-1", metadata={"cluster": f"dask-{suffix}"}))
        provider.wait_reachable(instance, timeout=10)
        return node_of(instance, [role])

    scheduler = create("scheduler", 0)
    workers = [create("worker", i) for i in (1, 2)]
    cluster = cluster_of([scheduler, *workers])

    # configure, then start: the scheduler first, then workers that it lists
    configured = run_flow(plugin.configure(cluster), services)
    assert len(configured) == 3
    results = run_flow(plugin.start(cluster), services)
    assert results["start-scheduler"]["started"]
    listed = scheduler_workers(cluster)
    assert listed is not None
    assert {name: address.split("//")[1].split(":")[0] for name, address in listed.items()
            } == {w.name: w.address for w in workers}
    assert results["start-scheduler"]["address"] == f"tcp://{scheduler.address}:8786"
    assert plugin.health(cluster, pool).status == "GREEN"

    # starting again finds everything running
    again = run_flow(plugin.start(cluster), services)
    assert not any(result["started"] for result in again.values())

    with Client(results["start-scheduler"]["address"], timeout=10) as client:
        info = client.scheduler_info()["workers"]
        assert {w["nthreads"] for w in info.values()} == {2}  # from the cluster's configs

        def square_on(x: int) -> tuple[int, str]:
            return x * x, str(get_worker().name)

        squares = client.gather(client.map(square_on, range(20)))
        assert sum(s for s, _ in squares) == sum(x * x for x in range(20))
        assert {w for _, w in squares} <= {w.name for w in workers}

        # +1 worker
        added = create("worker", 3)
        bigger = cluster_of([scheduler, *workers, added])
        run_flow(plugin.scale(bigger, [added]), services)
        assert sorted(scheduler_workers(bigger) or {}) == sorted(
            w.name for w in [*workers, added])
        assert plugin.health(bigger, pool).status == "GREEN"

        # data held only by the worker to remove survives its decommissioning
        victim = workers[0]
        held = client.scatter({"held": list(range(1000))},
                              workers=[listed[victim.name]])["held"]
        assert set(client.who_has(held)[held.key]) == {listed[victim.name]}
        drained = run_flow(plugin.decommission(bigger, [victim]), services)
        assert drained["retire-workers"]["drained"]
        smaller = cluster_of([scheduler, workers[1], added])
        assert sorted(scheduler_workers(smaller) or {}) == sorted(
            [workers[1].name, added.name])
        assert dask_processes(provider, victim.name) == []
        assert plugin.health(smaller, pool).status == "GREEN"
        assert sum(held.result()) == sum(range(1000))
        assert listed[victim.name] not in client.who_has(held)[held.key]

    # a worker dies: YELLOW, naming it
    pool.run(added.ssh_node(), "kill -9 $(cat dask/worker.pid)")
    health: Health = eventually(
        lambda: (h := plugin.health(smaller, pool)).status == "YELLOW" and h)
    assert health.failed_nodes == [added.name]
    assert "missing: " + added.name in health.checks[-1].description

    # terminate: no Dask process anywhere, whatever state each node was in
    everyone = [scheduler, *workers, added]
    stopped = run_flow(plugin.on_terminate(cluster_of(everyone)), services)
    assert all(result["stopped"] for result in stopped.values())
    assert all(dask_processes(provider, n.name) == [] for n in everyone)
    assert plugin.health(smaller, pool).status == "RED"
    run_flow(plugin.on_terminate(cluster_of(everyone)), services)  # again: nothing to do

    for node in everyone:
        provider.delete_instance(node.name)
    assert provider.list_instances() == []
    assert all(instance_processes(n.name, provider.folder(n.name) / "sshd_config") == []
               for n in everyone)
    assert time.monotonic() - started < 90


def test_a_scheduler_that_cannot_start_fails_its_task_with_its_log(
    provider: LocalProvider, pool: SSHPool, keypair: tuple[str, str]
) -> None:
    instance = provider.create_instance(InstanceSpec(
        name=f"dask-{uuid.uuid4().hex[:6]}-solo", flavor="local.small", public_key=keypair[1],
        host="local-host-1"))
    provider.wait_reachable(instance, timeout=10)
    solo = node_of(instance, ["scheduler", "worker"])  # one node may run both
    cluster = cluster_of([solo])
    plugin = DaskPlugin()
    services = plugin_services(pool)
    run_flow(plugin.configure(cluster), services)

    with (socket.create_server((solo.address, 8786)),  # someone else has the port
          pytest.raises(DaskFailed, match="the process exited") as raised):
        run_flow(plugin.start(cluster), services)
    assert "scheduler.log ends:" in str(raised.value)
    assert "Address already in use" in str(raised.value)  # the cause, not just the end
    assert dask_processes(provider, solo.name) == []
    assert plugin.health(cluster, pool).status == "RED"
