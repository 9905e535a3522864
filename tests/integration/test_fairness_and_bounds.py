"""Fairness and bounded steps (issue 12), on real local nodes through the API, on both stores.

- One project's hung clusters do not stall another project's: an engine shares its slots
  between projects, so a cluster of project B becomes Active while eight clusters of project
  A hang in their configure step.
- A cluster whose step hangs is deleted all the same, within a bounded time: the delete
  cancels the create, whose running step is stopped (its remote command killed); no
  instance, process, host claim or quota is left.
- A step that runs past its plugin step's timeout fails the cluster's step saying so, and
  its remote process is killed, not left running.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from flask.testing import FlaskClient

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.engine import Engine, EngineConfig, load_workflow
from sahara_es.infra.base import HostInventory, InfraProvider, Instance, InstanceSpec
from sahara_es.infra.local import instance_processes
from sahara_es.infra.placement import host_claim_key
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.infra.ssh import CommandStopped, Node, RemoteCommandTimeout, command_limits
from sahara_es.provisioning import ids
from sahara_es.provisioning.requests import CLUSTER_REQUESTS
from sahara_es.provisioning.services import (
    ProvisioningServices,
    StepLimits,
    as_engine_services,
    build_services,
    provisioning_services,
)
from sahara_es.store import Store
from tests.clouds import ProviderWrapper, create_fake_cluster, show_cluster
from tests.nodes import node_root, remove_node_root

WAIT = 180.0
HANG = 3600  # seconds a hanging configure step asks to sleep


@dataclass
class Service:
    client: FlaskClient
    engine: Engine
    services: ProvisioningServices
    hosts: list[HostInventory]

    @property
    def provider(self) -> InfraProvider:
        return self.services.provider


@contextmanager
def running_service(store: Store, *, step_limits: StepLimits | None = None,
                    concurrency: int = 8,
                    wrap: Callable[[InfraProvider], InfraProvider] | None = None
                    ) -> Iterator[Service]:
    """The API (fake plugin enabled) and one engine of ``concurrency`` slots, with the
    service's ``step_limits``, on 3 hosts of 8 vCPUs of their own; ``wrap`` gives the engine
    another provider around the real one."""
    tag = uuid.uuid4().hex[:6]
    hosts = [HostInventory(f"h{tag}-{i}", vcpus=8, ram_mb=16384) for i in range(1, 4)]
    nodes = node_root()
    services = provisioning_services(build_services(
        store, root=nodes, hosts=hosts,
        quota_defaults=QuotaLimits(instances=10, cores=20, ram_mb=20480),
        step_limits=step_limits))
    real = services.provider
    engine = Engine(store, EngineConfig(concurrency=concurrency, lease_ttl=10.0,
                                        sweep_interval=0.1),
                    services=as_engine_services(replace(services,
                                                         provider=wrap(real) if wrap else real)),
                    handoff=CLUSTER_REQUESTS).start()
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], engines=True), store=store,
                  quota=services.quota)
    try:
        yield Service(app.test_client(), engine, services, hosts)
    finally:
        stop_app(app)
        engine.stop(5)
        for instance in services.provider.list_instances():
            services.provider.delete_instance(instance.name)
        services.ssh.close()
        remove_node_root(nodes)


def create(service: Service, project: str, *, workers: int = 0, **configs: Any) -> str:
    return create_fake_cluster(service.client, project, workers=workers, configs=configs)


def show(service: Service, project: str, cluster_id: str) -> dict[str, Any] | None:
    return show_cluster(service.client, project, cluster_id)


def wait_status(service: Service, project: str, cluster_id: str, *statuses: str,
                timeout: float = WAIT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        cluster = show(service, project, cluster_id)
        assert cluster is not None, f"cluster {cluster_id} is gone"
        if cluster["status"] in statuses:
            return cluster
        assert time.monotonic() < deadline, f"still {cluster['status']}: {cluster}"
        time.sleep(0.2)


def wait_gone(service: Service, project: str, cluster_ids: list[str],
              timeout: float = WAIT) -> float:
    """Seconds until none of the clusters is shown any more."""
    started = time.monotonic()
    left = list(cluster_ids)
    while left:
        left = [c for c in left if show(service, project, c) is not None]
        assert time.monotonic() - started < timeout, f"not deleted: {left}"
        time.sleep(0.2)
    return time.monotonic() - started


def names(cluster: dict[str, Any]) -> list[str]:
    return [i["instance_name"] for g in cluster.get("node_groups", [])
            for i in g.get("instances", [])]


def sleepers(service: Service, name: str) -> list[int]:
    """The node's processes running the hanging step's ``sleep``."""
    found = []
    for pid in instance_processes(name, service.provider.folder(name) / "sshd_config"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if cmdline.read().split(b"\0")[0].endswith(b"sleep"):
                    found.append(pid)
        except OSError:
            continue
    return found


def wait_until(condition: Any, timeout: float = WAIT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def nothing_left(service: Service, project: str, instance_names: list[str]) -> None:
    for name in instance_names:
        assert service.provider.get_instance(name) is None
        assert instance_processes(name, service.provider.folder(name) / "sshd_config") == []
    store = service.services.quotas.store
    for host in service.hosts:
        for resource in ("vcpus", "ram_mb"):
            assert store.get_claim(host_claim_key(host.name, resource)).used == 0
    usage = service.services.quotas.usage(project)
    assert {name: u.used for name, u in usage.items()} == {
        "instances": 0, "cores": 0, "ram_mb": 0}


def test_one_projects_hung_clusters_do_not_stall_another_projects(store: Store) -> None:
    a, b = f"a{uuid.uuid4().hex[:6]}", f"b{uuid.uuid4().hex[:6]}"
    with running_service(store) as service:
        hung = [create(service, a, configure_seconds=HANG) for _ in range(8)]
        # Every slot A may have is taken by a hanging step before B asks for any.
        limit = service.engine.config.project_slots
        wait_until(lambda: service.engine.slots.held().get(a, 0) >= limit, 120,
                   f"project {a} holding its {limit} slots")
        other = create(service, b)
        cluster = wait_status(service, b, other, "Active", "Error")
        assert cluster["status"] == "Active", cluster["status_description"]
        assert service.engine.slots.held().get(a, 0) <= limit
        statuses = [show(service, a, c) for c in hung]
        assert all(c is not None and c["status"] not in ("Active", "Error") for c in statuses)

        # A's hung clusters are deleted all the same: deletes run beyond A's share.
        instance_names = [n for c in statuses if c for n in names(c)]
        for cluster_id in hung:
            assert service.client.delete(f"/v2/clusters/{cluster_id}",
                                         headers={"X-Project-Id": a}).status_code == 204
        assert service.client.delete(f"/v2/clusters/{other}",
                                     headers={"X-Project-Id": b}).status_code == 204
        wait_gone(service, a, hung)
        wait_gone(service, b, [other])
        nothing_left(service, a, instance_names)
        nothing_left(service, b, names(cluster))


def test_a_cluster_whose_step_hangs_is_deleted_within_a_bounded_time(store: Store) -> None:
    project = f"d{uuid.uuid4().hex[:6]}"
    with running_service(store) as service:
        cluster_id = create(service, project, configure_seconds=HANG)
        wait_status(service, project, cluster_id, "Configuring")
        cluster: dict[str, Any] = {}

        def sleeping() -> bool:
            nonlocal cluster
            cluster = show(service, project, cluster_id) or {}
            return any(sleepers(service, n) for n in names(cluster))

        wait_until(sleeping, 60, "the hanging step's remote sleep")
        instance_names = names(cluster)

        answer = service.client.delete(f"/v2/clusters/{cluster_id}",
                                       headers={"X-Project-Id": project})
        assert answer.status_code == 204
        # Well within the step's timeout (600 s) and the delete's grace (30 s): the
        # cancel stops the step, and its remote command is killed.
        wait_gone(service, project, [cluster_id], timeout=60)
        nothing_left(service, project, instance_names)
        # The name is free again.
        answer = service.client.post("/v2/clusters", headers={"X-Project-Id": project},
                                     json={"name": cluster["name"], "plugin_name": "fake",
                                           "plugin_version": "0.1", "node_groups": [
                                               {"name": "manager", "flavor_id": "local.small",
                                                "node_processes": ["namenode"], "count": 1}]})
        assert answer.status_code == 202, answer.get_json()
        again = answer.get_json()["cluster"]["id"]
        wait_status(service, project, again, "Active", "Error")
        service.client.delete(f"/v2/clusters/{again}", headers={"X-Project-Id": project})
        wait_gone(service, project, [again])


def test_a_step_past_its_timeout_fails_saying_so_and_its_process_is_killed(
        store: Store) -> None:
    project = f"t{uuid.uuid4().hex[:6]}"
    limits = StepLimits(per_step={"fake.configure-node": 3.0})
    with running_service(store, step_limits=limits) as service:
        # Only the datanode hangs: the cluster runs without it (partially active), so its
        # node is still there to show that the sleep was killed, not left running.
        cluster_id = create(service, project, workers=1, configure_seconds=HANG,
                            slow_configure="datanode")
        cluster = wait_status(service, project, cluster_id, "Active", "Error")
        worker = f"c{cluster_id[:8]}-workers-1"
        assert cluster["status"] == "Active", cluster["status_description"]
        assert cluster["failed_nodes"] == [worker]
        configuring = next(s for s in cluster["provision_progress"]
                           if s["step_name"] == "Configuring nodes")
        failed = [e for e in configuring["events"] if not e["successful"]]
        assert [e["instance_name"] for e in failed] == [worker]
        message = f"step Configuring nodes on node {worker} timed out after 3 s"
        assert message in failed[0]["event_info"]
        assert service.provider.get_instance(worker) is not None
        assert sleepers(service, worker) == []

        # A tenant cannot ask for more than the service's maximum either.
        capped = StepLimits(default=600, maximum=5, per_step={"fake.configure-node": 60})
        assert capped.timeout("fake.configure-node") == 5
        assert capped.timeout("other", declared=4000) == 5

        service.client.delete(f"/v2/clusters/{cluster_id}", headers={"X-Project-Id": project})
        wait_gone(service, project, [cluster_id])
        nothing_left(service, project, names(cluster))


@pytest.mark.parametrize("stopped", [False, True])
def test_a_cut_off_command_leaves_no_process_on_the_node(store: Store,
                                                         stopped: bool) -> None:
    """The SSH pool itself: a command past its limits' timeout, or whose stop is set, is
    killed on the node (its whole process group), and the pool says which happened."""
    project = f"s{uuid.uuid4().hex[:6]}"
    with running_service(store) as service:
        cluster_id = create(service, project)
        cluster = wait_status(service, project, cluster_id, "Active", "Error")
        name = names(cluster)[0]
        pool = service.services.ssh.pool(cluster_id)
        node = Node.of(service.provider.get_instance(name))  # type: ignore[arg-type]
        stop = threading.Event()
        if stopped:
            threading.Timer(1.0, stop.set).start()
        started = time.monotonic()
        with (pytest.raises(CommandStopped if stopped else RemoteCommandTimeout),
              command_limits(timeout=None if stopped else 1.0, stop=stop)):
            pool.run(node, f"sleep {HANG} & sleep {HANG}; echo never", timeout=HANG)
        assert time.monotonic() - started < 15
        wait_until(lambda: sleepers(service, name) == [], 10, "the sleeps to end")
        assert pool.run(node, "echo still usable").stdout == "still usable\n"
        service.client.delete(f"/v2/clusters/{cluster_id}", headers={"X-Project-Id": project})
        wait_gone(service, project, [cluster_id])


class SlowCreate(ProviderWrapper):
    """The local provider, except that creating an instance first waits, deaf to any
    cancel, until ``go`` is set: a create still in flight when the deletion goes on."""

    name = "slow-create"

    def __init__(self, real: InfraProvider) -> None:
        super().__init__(real)
        self.waiting = threading.Event()
        self.go = threading.Event()
        self.created: list[str] = []

    def create_instance(self, spec: InstanceSpec) -> Instance:
        self.waiting.set()
        self.go.wait(WAIT)
        instance = self.real.create_instance(spec)
        self.created.append(spec.name)
        return instance


def test_a_late_task_of_the_cancelled_create_brings_nothing_back(store: Store) -> None:
    """The delete waits for the cancelled create only ``cancel_grace``; the create's
    instance task, deaf to the cancel, creates its instance after the cluster is gone: it
    sees the deletion, deletes the instance and gives its host back; the create rolls back
    and leaves the cluster deleted."""
    project = f"l{uuid.uuid4().hex[:6]}"
    slow: list[SlowCreate] = []

    def wrap(real: InfraProvider) -> InfraProvider:
        slow.append(SlowCreate(real))
        return slow[0]

    with running_service(store, step_limits=StepLimits(cancel_grace=1.0), wrap=wrap) as service:
        cluster_id = create(service, project)
        wait_until(slow[0].waiting.is_set, 60, "the instance's creation")
        answer = service.client.delete(f"/v2/clusters/{cluster_id}",
                                       headers={"X-Project-Id": project})
        assert answer.status_code == 204
        wait_gone(service, project, [cluster_id], timeout=60)
        name = f"c{cluster_id[:8]}-manager-1"
        slow[0].go.set()  # the late task creates its instance now
        state = load_workflow(store, ids.create_id(cluster_id))
        deadline = time.monotonic() + WAIT
        while not state.status.finished:
            assert time.monotonic() < deadline, state.summary()
            time.sleep(0.2)
            state = load_workflow(store, ids.create_id(cluster_id))
        assert str(state.status) == "cancelled", state.summary()  # and rolled back
        assert not [t for t in state.tasks.values() if t.status == "revert_failed"]
        assert show(service, project, cluster_id) is None
        assert slow[0].created == [name]  # made after the deletion, and deleted again
        nothing_left(service, project, [name])


def test_a_cancel_stops_a_hung_step_that_another_engine_claimed(store: Store) -> None:
    """Engine one (2 slots: 1 a project) owns two hung creates; the second's tasks, beyond
    the project's slot there, are offered and engine two claims them. Deleting both is quick
    although the delete would wait 120 s for the creates: engine two's sweep sees the
    cancel, and its claimed step's remote command is killed."""
    project = f"m{uuid.uuid4().hex[:6]}"
    with running_service(store, concurrency=2,
                         step_limits=StepLimits(cancel_grace=120.0)) as service:
        first = service.engine.engine_id
        hung = [create(service, project, configure_seconds=HANG) for _ in range(2)]
        wait_until(lambda: all(load_workflow(store, ids.create_id(c)).owner == first
                               for c in hung), 60, "engine one owning both creates")
        other = Engine(store, EngineConfig(concurrency=8, lease_ttl=10.0, sweep_interval=0.1),
                       services=as_engine_services(service.services)).start()
        try:
            def claimed_step_runs() -> bool:
                for cluster_id in hung:
                    for task in load_workflow(store, ids.create_id(cluster_id)).tasks.values():
                        if (task.spec.type == "cluster.node-step" and task.status == "running"
                                and task.engine == other.engine_id):
                            return True
                return False

            wait_until(claimed_step_runs, 60, "engine two running a claimed configure step")
            # The other create may still be making its instance when engine two's step runs,
            # so the clusters are shown afresh until both steps' sleeps are found.
            shown: list[dict[str, Any]] = []

            def both_steps_sleep() -> bool:
                shown[:] = [show(service, project, c) or {} for c in hung]
                return all(any(sleepers(service, n) for n in names(c)) for c in shown)

            wait_until(both_steps_sleep, 120, "both remote sleeps")
            for cluster_id in hung:
                assert service.client.delete(f"/v2/clusters/{cluster_id}",
                                             headers={"X-Project-Id": project}
                                             ).status_code == 204
            wait_gone(service, project, hung, timeout=60)
            nothing_left(service, project, [n for c in shown for n in names(c)])
        finally:
            other.stop(5)
