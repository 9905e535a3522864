"""A whole service for provisioning tests: the API and an in-process engine on one store,
building clusters on real local nodes (their own sshd on loopback addresses)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.edp.manager import JobLimits
from sahara_es.edp.storage import StoragePolicy
from sahara_es.engine import Engine, EngineConfig
from sahara_es.infra.base import (
    Flavor,
    HostInventory,
    Image,
    InfraProvider,
    Instance,
    InstanceSpec,
)
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.provisioning.requests import CLUSTER_REQUESTS
from sahara_es.provisioning.services import (
    ProvisioningServices,
    as_engine_services,
    build_services,
    provisioning_services,
)
from sahara_es.store import Store
from tests.nodes import node_root, remove_node_root


class ProviderWrapper(InfraProvider):
    """A provider that hands every call to the ``real`` one (``tenant_view`` excepted: the
    base class's): a test's wrapper (``running_cloud(wrap=...)``) overrides what it breaks."""

    def __init__(self, real: InfraProvider) -> None:
        self.real = real

    def flavors(self) -> dict[str, Flavor]:
        return self.real.flavors()

    def images(self) -> dict[str, Image]:
        return self.real.images()

    def hosts(self) -> list[HostInventory]:
        return self.real.hosts()

    def create_instance(self, spec: InstanceSpec) -> Instance:
        return self.real.create_instance(spec)

    def wait_reachable(self, instance: Instance, timeout: float) -> None:
        self.real.wait_reachable(instance, timeout)

    def get_instance(self, name: str) -> Instance | None:
        return self.real.get_instance(name)

    def delete_instance(self, name: str) -> None:
        self.real.delete_instance(name)


@dataclass
class Cloud:
    app: Flask
    client: FlaskClient
    services: ProvisioningServices
    """The engine's services (the real provider, even when the engine's is wrapped)."""
    hosts: list[HostInventory]
    project: str
    """A project of its own, for tests that need one."""

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Project-Id": self.project}


@contextmanager
def running_cloud(store: Store, root: Path, *, hosts: int = 3, vcpus: int = 8,
                  ram_mb: int = 16384, quota: QuotaLimits | None = None,
                  concurrency: int = 8,
                  wrap: Callable[[InfraProvider], InfraProvider] | None = None,
                  storage_policy: StoragePolicy | None = None,
                  job_limits: JobLimits | None = None,
                  ) -> Iterator[Cloud]:
    """The API and an engine on ``store``, with local nodes under ``root`` placed on
    ``hosts`` hosts of their own (unique names: the store outlives the test). ``wrap`` gives
    the engine another provider around the real one (to break a host, say);
    ``storage_policy``: where its jobs' binaries and data may be read from."""
    tag = uuid.uuid4().hex[:6]
    inventory = [HostInventory(f"h{tag}-{i}", vcpus=vcpus, ram_mb=ram_mb)
                 for i in range(1, hosts + 1)]
    # Nodes reach their folders only through folders other users can traverse, which
    # pytest's tmp_path (0700) is not: they get a root of their own.
    nodes = node_root()
    services = provisioning_services(build_services(
        store, root=nodes, hosts=inventory, quota_defaults=quota,
        storage_policy=storage_policy, job_limits=job_limits))
    real = services.provider
    engine_services = as_engine_services(replace(services, provider=wrap(real) if wrap
                                                 else real))
    engine = Engine(store, EngineConfig(concurrency=concurrency, lease_ttl=10.0,
                                        sweep_interval=0.1), services=engine_services,
                    handoff=CLUSTER_REQUESTS).start()
    app = app_for(ApiConfig(auth="noauth", plugins=["spark", "dask", "fake"], engines=True),
                  store=store, quota=services.quota)
    try:
        yield Cloud(app, app.test_client(), services, inventory, f"p{tag}")
    finally:
        stop_app(app)
        engine.stop(5)
        for instance in real.list_instances():
            real.delete_instance(instance.name)
        services.ssh.close()
        remove_node_root(nodes)


def create_fake_cluster(client: FlaskClient, project: str, *, workers: int = 0,
                        configs: dict[str, Any] | None = None) -> str:
    """POST a ``fake`` cluster for ``project``: a ``local.small`` namenode (group
    ``manager``) and ``workers`` datanodes (group ``workers``), ``configs`` its ``Fake``
    cluster configs; its id (the answer must be a 202)."""
    groups = [{"name": "manager", "flavor_id": "local.small", "node_processes": ["namenode"],
               "count": 1}]
    if workers:
        groups.append({"name": "workers", "flavor_id": "local.small",
                       "node_processes": ["datanode"], "count": workers})
    answer = client.post("/v2/clusters", headers={"X-Project-Id": project}, json={
        "name": f"c{uuid.uuid4().hex[:8]}", "plugin_name": "fake", "plugin_version": "0.1",
        "node_groups": groups, "cluster_configs": {"Fake": configs} if configs else {}})
    assert answer.status_code == 202, answer.get_json()
    cluster_id: str = answer.get_json()["cluster"]["id"]
    return cluster_id


def show_cluster(client: FlaskClient, project: str, cluster_id: str) -> dict[str, Any] | None:
    """The cluster as ``project`` sees it, with its progress; None once it is gone (404)."""
    answer = client.get(f"/v2/clusters/{cluster_id}?show_progress=true",
                        headers={"X-Project-Id": project})
    if answer.status_code == 404:
        return None
    cluster: dict[str, Any] = answer.get_json()["cluster"]
    return cluster
