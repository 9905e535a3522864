"""The cluster's own stream as the provisioning tasks read and write it: its document,
its status, the events a workflow records (as the tenant may read them), its plugin and its
nodes as the plugin sees them."""

from __future__ import annotations

import dataclasses
import logging

from sahara_es.commands import resources
from sahara_es.commands.errors import ChangedConcurrently
from sahara_es.engine import PermanentFailure, TaskContext
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import CLUSTER_FINAL, META, Doc, Kind
from sahara_es.plugins.base import ClusterInfo, NodeInfo, Plugin
from sahara_es.provisioning.services import StepLimits, engine_store, optional_services, services
from sahara_es.store import ConcurrencyConflict, Store

log = logging.getLogger(__name__)


def cluster_doc(store: Store, cluster_id: str) -> Doc:
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    if aggregate.doc is None:
        raise PermanentFailure(f"cluster {cluster_id} does not exist")
    return aggregate.doc


class ClusterGone(PermanentFailure):
    """The cluster was deleted: nothing more is recorded about it."""


def being_deleted(doc: Doc) -> bool:
    return doc.get("status") == CLUSTER_FINAL or bool(doc[META].get("deleted"))


def step_limits(ctx: TaskContext) -> StepLimits:
    found = optional_services(ctx)
    return found.step_limits if found is not None else StepLimits()


def tenant_view(ctx: TaskContext, event: DomainEvent) -> DomainEvent:
    """``event`` as the cluster's owner may read it: its texts (a status description, a
    node's failure) name none of the service's own folders."""
    found = optional_services(ctx)
    if found is None or not dataclasses.is_dataclass(event):
        return event
    provider = found.provider
    texts = {f.name: provider.tenant_view(value) for f in dataclasses.fields(event)
             if isinstance(value := getattr(event, f.name), str)}
    return dataclasses.replace(event, **texts)


def record(ctx: TaskContext, cluster_id: str, *events: DomainEvent) -> Doc:
    """Append to the cluster's stream after whatever the API appended meanwhile; never to a
    deleted cluster (``ClusterGone``): a late task cannot bring it back."""
    store = engine_store(ctx)
    events = tuple(tenant_view(ctx, event) for event in events)
    metadata = Metadata(actor="sahara-es", correlation_id=ctx.workflow_id,
                        causation_id=f"{ctx.workflow_id}/{ctx.task_id}",
                        engine_id=ctx.engine_id)
    for _ in range(20):
        aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
        if aggregate.doc is not None and aggregate.doc[META].get("deleted"):
            raise ClusterGone(f"cluster {cluster_id} was deleted")
        try:
            resources.append_records(store, aggregate, [
                registry.new_event(e, metadata) for e in events])
            assert aggregate.doc is not None
            return aggregate.doc
        except ChangedConcurrently:
            continue
    raise ConcurrencyConflict(f"cluster {cluster_id} kept changing")


def set_status(ctx: TaskContext, cluster_id: str, status: str, description: str = "") -> None:
    """Change the cluster's status, unless it is being deleted (Deleting is final: a create
    or scale rolled back by the deletion leaves it so)."""
    doc = cluster_doc(engine_store(ctx), cluster_id)
    if being_deleted(doc) and status != CLUSTER_FINAL:
        return
    if (doc.get("status"), doc.get("status_description", "")) != (status, description):
        record(ctx, cluster_id, ev.ClusterStatusChanged(status, description))


def plugin_of(ctx: TaskContext, doc: Doc) -> Plugin:
    plugins = services(ctx).plugins
    try:
        return plugins[doc["plugin_name"]]
    except KeyError:
        raise PermanentFailure(f"this engine has no plugin {doc['plugin_name']}") from None


def instances_of(doc: Doc) -> list[tuple[str, Doc]]:
    return [(group["name"], instance) for group in doc.get("node_groups", [])
            for instance in group.get("instances", [])]


def cluster_info(ctx: TaskContext, doc: Doc) -> ClusterInfo:
    """The cluster's nodes as the plugin sees them, from the provider's records."""
    provider = services(ctx).provider
    processes = {g["name"]: list(g["node_processes"]) for g in doc.get("node_groups", [])}
    nodes: list[NodeInfo] = []
    for group, name in [(group, i["instance_name"]) for group, i in instances_of(doc)]:
        instance = provider.get_instance(name)
        if instance is None:
            raise PermanentFailure(f"instance {name} of cluster {doc['id']} is gone")
        nodes.append(NodeInfo(name=name, node_group=group, processes=processes[group],
                              address=instance.address, ssh_port=instance.ssh_port,
                              username=instance.username,
                              host_key=str(instance.extra.get("host_key", "")),
                              home=str(instance.extra.get("home", "")), host=instance.host))
    return ClusterInfo(doc["id"], doc["name"], doc["plugin_version"],
                       dict(doc.get("cluster_configs") or {}), nodes)
