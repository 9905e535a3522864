"""The cluster's own stream as the provisioning tasks read and write it: its document,
its status, the events a workflow records (as the tenant may read them), its plugin and its
nodes as the plugin sees them.

A task loads the cluster once (``Cluster``: the aggregate from its latest snapshot, on first
use) and passes it down; what the task records keeps it current. It is read again only where
the task must see what others did meanwhile (``refresh``: after a side effect that a
deletion could have raced) or when an append finds that the stream moved on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sahara_es.commands import resources
from sahara_es.commands.errors import ChangedConcurrently
from sahara_es.engine import PermanentFailure, TaskContext
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import CLUSTER_FINAL, META, Doc, Kind
from sahara_es.plugins.base import ClusterInfo, Plugin
from sahara_es.provisioning.jobs import instances_of, nodes_of
from sahara_es.provisioning.services import StepLimits, engine_store, optional_services, services
from sahara_es.store import ConcurrencyConflict, Store


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


class Cluster:
    """The cluster's aggregate for one task: loaded once, on first use, and kept current by
    what the task records (``record``); ``refresh`` reads it again."""

    def __init__(self, ctx: TaskContext, cluster_id: str) -> None:
        self.ctx = ctx
        self.id = cluster_id
        self.store: Store = engine_store(ctx)
        self._aggregate: resources.Resource | None = None

    @property
    def aggregate(self) -> resources.Resource:
        if self._aggregate is None:
            self._aggregate = resources.load(self.store, Kind.CLUSTER, self.id)
        return self._aggregate

    @property
    def doc(self) -> Doc:
        """The cluster's representation; ``PermanentFailure`` if it does not exist."""
        doc = self.aggregate.doc
        if doc is None:
            raise PermanentFailure(f"cluster {self.id} does not exist")
        return doc

    def reload(self) -> resources.Resource:
        """The aggregate as it is now (what others appended meanwhile included)."""
        self._aggregate = None
        return self.aggregate

    def refresh(self) -> Doc:
        """The cluster's representation as it is now."""
        self.reload()
        return self.doc

    def record(self, *events: DomainEvent, unless: Callable[[Doc], bool] | None = None
               ) -> Doc:
        """Append after whatever the API appended meanwhile, unless ``unless(doc)`` says the
        cluster as it is needs none of it; never to a deleted cluster (``ClusterGone``): a
        late task cannot bring it back.

        The cluster the task holds is used as it is when it is still current (the append
        finds it so); the decisions it would change (a stream that moved on, a status change
        its table refuses, nothing to record) are taken again on the cluster read anew."""
        events = tuple(tenant_view(self.ctx, event) for event in events)
        metadata = Metadata(actor="sahara-es", correlation_id=self.ctx.workflow_id,
                            causation_id=f"{self.ctx.workflow_id}/{self.ctx.task_id}",
                            engine_id=self.ctx.engine_id, region=self.store.region)
        for _ in range(20):
            fresh = self._aggregate is None  # read now, not earlier in the task
            aggregate = self.aggregate
            if unless is not None and unless(self.doc):
                if fresh:
                    return self.doc
                self._aggregate = None
                continue
            if aggregate.doc is not None and aggregate.doc[META].get("deleted"):
                raise ClusterGone(f"cluster {self.id} was deleted")
            try:
                resources.append_records(self.store, aggregate, [
                    registry.new_event(e, metadata) for e in events])
                assert aggregate.doc is not None
                return aggregate.doc
            except ChangedConcurrently:
                self._aggregate = None
            except resources.IllegalStatusChange:
                if fresh:
                    raise
                self._aggregate = None
        raise ConcurrencyConflict(f"cluster {self.id} kept changing")

    def set_status(self, status: str, description: str = "") -> None:
        """Change the cluster's status, unless it is being deleted (Deleting is final: a
        create or scale rolled back by the deletion leaves it so)."""

        def needless(doc: Doc) -> bool:
            return ((being_deleted(doc) and status != CLUSTER_FINAL)
                    or (doc.get("status"), doc.get("status_description", ""))
                    == (status, description))

        self.record(ev.ClusterStatusChanged(status, description), unless=needless)


def plugin_of(ctx: TaskContext, doc: Doc) -> Plugin:
    plugins = services(ctx).plugins
    try:
        return plugins[doc["plugin_name"]]
    except KeyError:
        raise PermanentFailure(f"this engine has no plugin {doc['plugin_name']}") from None



def cluster_info(ctx: TaskContext, doc: Doc) -> ClusterInfo:
    """The cluster's nodes as the plugin sees them, from the provider's records."""
    return nodes_of(services(ctx).provider, doc)


__all__ = ["Cluster", "ClusterGone", "being_deleted", "cluster_info", "instances_of",
           "plugin_of", "step_limits", "tenant_view"]
