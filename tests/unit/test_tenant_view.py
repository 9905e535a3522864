"""What a cluster's owner reads of a failure names no folder of the service's machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from sahara_es.engine import TaskContext
from sahara_es.events import resources as ev
from sahara_es.infra.local import LocalProvider
from sahara_es.infra.placement import Scheduler
from sahara_es.infra.quotas import Quotas
from sahara_es.plugins.base import SERVICES
from sahara_es.provisioning.cluster import tenant_view
from sahara_es.provisioning.services import NodeAccess, ProvisioningServices, QuotaGate
from sahara_es.store import Store, open_store


def provider(tmp_path: Path) -> LocalProvider:
    return LocalProvider(store(tmp_path), root=tmp_path / "nodes", network_isolation=False)


def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path}/store.db", upgrade=True)


def test_an_instance_home_reads_as_tilde_and_the_rest_of_the_nodes_folder_is_hidden(
        tmp_path: Path) -> None:
    local = provider(tmp_path)
    root = local.root
    text = (f"tail: {root}/instances/c1-master-1/home/spark/logs/master.out: no such file;"
            f" sshd of c1-master-1 did not start: {root}/instances/c1-master-1/sshd_config")
    shown = local.tenant_view(text)
    assert str(root) not in shown and str(tmp_path) not in shown
    assert shown == ("tail: ~/spark/logs/master.out: no such file; sshd of c1-master-1 did"
                     " not start: <nodes>/instances/c1-master-1/sshd_config")


def test_cluster_events_recorded_by_provisioning_pass_through_the_providers_view(
        tmp_path: Path) -> None:
    local = provider(tmp_path)
    db = store(tmp_path)
    services = ProvisioningServices(
        provider=local, scheduler=Scheduler(db, local.hosts()),
        quotas=(quotas := Quotas(db)), quota=QuotaGate(quotas), ssh=NodeAccess(db),
        plugins={})
    ctx = cast(TaskContext, type("Ctx", (), {"services": {SERVICES: services}})())
    failed = ev.ProvisioningStepProgressed(
        "step-1", "c1-worker-1", False, f"cannot read {local.root}/instances/c1-worker-1/home/x")
    shown: Any = tenant_view(ctx, failed)
    assert shown.event_info == "cannot read ~/x"
    assert (shown.step_id, shown.instance_name, shown.successful) == (
        "step-1", "c1-worker-1", False)
    status = tenant_view(ctx, ev.ClusterStatusChanged("Error", f"failed under {local.root}"))
    assert status == ev.ClusterStatusChanged("Error", "failed under <nodes>")
