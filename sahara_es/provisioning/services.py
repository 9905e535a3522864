"""What provisioning tasks use, built once per engine process and handed to the engine as its
services: the infrastructure provider, the scheduler, the quotas, SSH to the nodes, the
plugins and the step limits, as one typed ``ProvisioningServices``.

``build_services`` is called by the composition roots (``sahara-es engine``, ``all-in-one``,
tests); the engine hands tasks a mapping of services (the store under ``"store"``), in which
the typed services are one entry (``plugins.base.SERVICES``); tasks read them with
``services(ctx)``, plugin tasks with ``plugins.base.plugin_services(ctx)``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sahara_es.commands.errors import QuotaExceeded as QuotaRefused
from sahara_es.commands.secrets import SecretBox
from sahara_es.edp.manager import EDP, JobLimits
from sahara_es.edp.storage import StoragePolicy, policy_from_env
from sahara_es.engine import PermanentFailure, TaskContext
from sahara_es.events import registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.infra import open_provider
from sahara_es.infra.base import HostInventory, InfraProvider
from sahara_es.infra.placement import Scheduler
from sahara_es.infra.quotas import QuotaExceeded, QuotaLimits, Quotas
from sahara_es.infra.ssh import SSHPool, generate_keypair
from sahara_es.plugins.base import SERVICES, Plugin
from sahara_es.plugins.catalog import load_plugins
from sahara_es.provisioning.jobs import JobEngines
from sahara_es.store import ConcurrencyConflict, Store

KEY_CATEGORY = "clusterkey"
CLUSTER_KEY_PURPOSE = "cluster management private key"
"""What the sealed private key is for: it opens for nothing else (``commands.secrets``)."""


@dataclass(frozen=True)
class StepLimits:
    """The ``step_limits`` service: how long provisioning work may run, set by the service,
    never by a tenant (a cluster config that makes a step long is cut off all the same).

    A node step may run ``per_step[<task type>]`` seconds, else what its task class declares
    (``Task.timeout``), else ``default``; never more than ``maximum``. A delete waits at
    most ``cancel_grace`` for the create or scale it cancels to roll back, then deletes the
    instances anyway (which ends whatever still ran on them).
    """

    default: float = 600.0
    maximum: float = 3600.0
    per_step: Mapping[str, float] = field(default_factory=dict)
    cancel_grace: float = 30.0

    def timeout(self, task_type: str, declared: float | None = None) -> float:
        return min(self.per_step.get(task_type) or declared or self.default, self.maximum)


def ensure_cluster_key(store: Store, cluster_id: str) -> tuple[str, str]:
    """The cluster's management key pair (private PEM, public line), made on first use; two
    engines racing to make it agree on the first one appended.

    The private key is kept sealed with the cluster's data key (``commands.secrets``), so
    that no reader of the events sees it; ``SecretUnreadable`` once the cluster was deleted
    (``shred_cluster_secrets``)."""
    stream = f"{KEY_CATEGORY}-{cluster_id}"
    box = SecretBox(store)
    for event in store.read(stream, 1, to_version=1):
        fact = registry.decode(event)
        assert isinstance(fact, ev.ClusterKeyGenerated)
        if not fact.key_owner:  # written before keys were sealed: in clear in its event
            return fact.legacy_private_key, fact.public_key
        return box.open(fact.key_owner, fact.sealed_private_key,
                        purpose=CLUSTER_KEY_PURPOSE), fact.public_key
    private, public = generate_keypair(f"sahara-es-{cluster_id}")
    owner = Kind.CLUSTER.stream(cluster_id)
    sealed = box.seal(owner, private, purpose=CLUSTER_KEY_PURPOSE)
    with contextlib.suppress(ConcurrencyConflict):
        store.append(stream, [registry.new_event(
            ev.ClusterKeyGenerated(sealed, public, owner))], 0)
    return ensure_cluster_key(store, cluster_id)


def shred_cluster_secrets(store: Store, cluster_id: str) -> None:
    """Delete the cluster's data key: its private key, sealed in ``clusterkey-<id>``, can no
    longer be read by anyone (idempotent). The last step of a cluster's deletion."""
    SecretBox(store).shred(Kind.CLUSTER.stream(cluster_id))


class NodeAccess:
    """The ``ssh`` service: one pool per cluster, with the cluster's own key."""

    def __init__(self, store: Store, *, max_sessions: int = 32) -> None:
        self.store = store
        self.max_sessions = max_sessions
        self._pools: dict[str, SSHPool] = {}
        self._lock = threading.Lock()

    def pool(self, cluster_id: str) -> SSHPool:
        with self._lock:
            if cluster_id not in self._pools:
                private, _ = ensure_cluster_key(self.store, cluster_id)
                self._pools[cluster_id] = SSHPool(private, max_sessions=self.max_sessions)
            return self._pools[cluster_id]

    def forget(self, cluster_id: str) -> None:
        with self._lock:
            pool = self._pools.pop(cluster_id, None)
        if pool is not None:
            pool.close()

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


class QuotaGate:
    """``commands.catalog.Quota`` over the store's quota claims."""

    def __init__(self, quotas: Quotas) -> None:
        self.quotas = quotas

    def claim(self, project: str, holder: str, *, instances: int, cores: int,
              ram_mb: int) -> None:
        try:
            self.quotas.claim(project, holder, instances=instances, cores=cores, ram_mb=ram_mb)
        except QuotaExceeded as exceeded:
            raise QuotaRefused(str(exceeded)) from None

    def release(self, project: str, holder: str) -> None:
        self.quotas.release(project, holder)


@dataclass(frozen=True)
class ProvisioningServices:
    """What provisioning tasks use, for one engine process (``build_services``)."""

    provider: InfraProvider
    scheduler: Scheduler
    quotas: Quotas
    quota: QuotaGate
    """The quotas as the commands claim them (``QuotaGate``): what tasks release."""
    ssh: NodeAccess
    plugins: Mapping[str, Plugin]
    step_limits: StepLimits = field(default_factory=StepLimits)
    storage_policy: StoragePolicy = field(default_factory=StoragePolicy)
    """Where job binaries and data sources may be read from (``edp.storage``)."""
    job_limits: JobLimits = field(default_factory=JobLimits)


def services(ctx: TaskContext) -> ProvisioningServices:
    """The provisioning services of the engine running ``ctx``'s task; ``PermanentFailure``
    on an engine started without them."""
    found = ctx.service(SERVICES)
    if not isinstance(found, ProvisioningServices):
        raise PermanentFailure(f"this engine's {SERVICES!r} service is not the provisioning"
                               f" services: {type(found).__name__}")
    return found


def optional_services(ctx: TaskContext) -> ProvisioningServices | None:
    """The provisioning services, or None on an engine started without them."""
    found = ctx.services.get(SERVICES)
    return found if isinstance(found, ProvisioningServices) else None


def engine_store(ctx: TaskContext) -> Store:
    """The store of the engine running ``ctx``'s task (the engine's own ``"store"``)."""
    store: Store = ctx.service("store")
    return store


def as_engine_services(provisioning: ProvisioningServices) -> dict[str, Any]:
    """The typed services as an engine's services mapping, under one key: everything reads
    them through ``provisioning_services`` (a caller giving the engine another provider
    replaces it in the typed object, ``dataclasses.replace``)."""
    return {SERVICES: provisioning, EDP: JobEngines(
        provisioning.ssh.store, provisioning.provider, provisioning.ssh, provisioning.plugins,
        provisioning.storage_policy, provisioning.job_limits)}


def provisioning_services(engine_services: Mapping[str, Any]) -> ProvisioningServices:
    """The typed services in an engine's services mapping (``build_services``'s result)."""
    found = engine_services[SERVICES]
    assert isinstance(found, ProvisioningServices)
    return found


def build_services(store: Store, *, root: Path | str, provider: str = "local",
                   hosts: list[HostInventory] | None = None,
                   quota_defaults: QuotaLimits | None = None,
                   provider_options: dict[str, Any] | None = None,
                   step_limits: StepLimits | None = None,
                   storage_policy: StoragePolicy | None = None,
                   job_limits: JobLimits | None = None,
                   region: str | None = None) -> dict[str, Any]:
    """The services provisioning tasks use, for one process, as the engine's services
    mapping (``as_engine_services``; ``provisioning_services`` reads the typed object).
    ``region``: the engine's, whose hosts' claims are then region-local."""
    options = dict(provider_options or {})
    if provider == "local":
        options.setdefault("root", Path(root) / "instances")
        if hosts is not None:
            options["hosts"] = hosts
        options.setdefault("region", region)
    infra: InfraProvider = open_provider(provider, store=store, **options)
    quotas = Quotas(store, quota_defaults)
    return as_engine_services(ProvisioningServices(
        provider=infra,
        scheduler=Scheduler(store, infra.hosts(), region=region),
        quotas=quotas,
        quota=QuotaGate(quotas),
        ssh=NodeAccess(store),
        plugins=load_plugins(all_installed=True),
        step_limits=step_limits or StepLimits(),
        storage_policy=storage_policy or policy_from_env(),
        job_limits=job_limits or JobLimits(),
    ))
