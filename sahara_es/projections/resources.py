"""The read models of the API: one projection per kind of resource, each row the resource's
representation (the same fold the commands use), indexed by owning project and by being
public, so that a project's list reads its own rows and the public ones, not everyone's."""

from __future__ import annotations

from typing import ClassVar

from sahara_es.events import RecordedEvent, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import META, Doc, Kind
from sahara_es.projections.base import APPLIED, Projection
from sahara_es.store import Store

PUBLIC = "public:"

CLUSTER_KEYS = "clusterkey"
"""The category of the streams of clusters' management keys (``clusterkey-<cluster id>``,
written by ``provisioning.services.ensure_cluster_key``)."""


def owned_by(project_id: str) -> str:
    """The index prefix of a project's resources."""
    return f"project:{project_id}/"


class ResourceProjection(Projection):
    kind: ClassVar[Kind]

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        if "name" in cls.__dict__:
            cls.index = f"{cls.name}.by_project"

    def index_keys(self, key: str, doc: Doc | None) -> set[str]:
        if doc is None or doc[META]["deleted"]:
            return set()
        keys = {owned_by(doc["project_id"]) + key} if doc.get("project_id") else set()
        if doc.get("is_public"):
            keys.add(PUBLIC + key)
        return keys

    def key(self, event: RecordedEvent) -> str | None:
        if event.category != self.kind.value or not registry.known(event.type):
            return None
        return event.stream_id.split("-", 1)[1]

    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        before = {k: v for k, v in doc.items() if k != APPLIED} if doc else None
        new = ev.evolve(before, registry.decode(event), stream_id=event.stream_id,
                        occurred_at=event.metadata.occurred_at.isoformat())
        # A deleted resource stays as a tombstone (readers skip it): a late redelivery of its
        # creation then changes nothing, where a removed row would come back to life.
        return new


class NodeGroupTemplates(ResourceProjection):
    name = "node_group_templates"
    kind = Kind.NODE_GROUP_TEMPLATE


class ClusterTemplates(ResourceProjection):
    name = "cluster_templates"
    kind = Kind.CLUSTER_TEMPLATE


SETTLED = ("Active", "Error")
"""Cluster statuses in which no workflow of the cluster runs."""


class Clusters(ResourceProjection):
    """Clusters, with what their own stream does not hold: the public key of their
    management key pair (from its stream) and their verification's dates."""

    name = "clusters"
    kind = Kind.CLUSTER

    def key(self, event: RecordedEvent) -> str | None:
        if event.category == CLUSTER_KEYS and registry.known(event.type):
            return event.stream_id.split("-", 1)[1]
        return super().key(event)

    def evolve(self, doc: Doc | None, event: RecordedEvent) -> Doc | None:
        fact = registry.decode(event)
        if isinstance(fact, ev.ClusterKeyGenerated):
            # the key is made once the cluster exists (its first instance): none to go on
            if doc is None:
                return None
            return {**{k: v for k, v in doc.items() if k != APPLIED},
                    "management_public_key": fact.public_key}
        new = super().evolve(doc, event)
        if new is not None and isinstance(fact, (ev.ClusterVerificationRequested,
                                                 ev.ClusterHealthChecked)):
            before = (doc or {}).get("verification") or {}
            at = event.metadata.occurred_at.isoformat()
            started = before.get("created_at") if before.get("id") == fact.verification_id \
                else None
            new["verification"] = {**new["verification"], "created_at": started or at,
                                   "updated_at": at}
        if new is not None and event.metadata.engine_id and event.metadata.correlation_id:
            new["workflow_owner"] = None if new.get("status") in SETTLED else {
                "workflow_id": event.metadata.correlation_id,
                "engine": event.metadata.engine_id, "region": event.metadata.region}
        return new


def management_public_key(store: Store, cluster_id: str) -> str | None:
    """The public key of the cluster's management key pair, once it was made."""
    for event in store.read(f"{CLUSTER_KEYS}-{cluster_id}", 1, to_version=1):
        fact = registry.decode(event)
        if isinstance(fact, ev.ClusterKeyGenerated):
            return fact.public_key
    return None


class DataSources(ResourceProjection):
    name = "data_sources"
    kind = Kind.DATA_SOURCE


class JobBinaries(ResourceProjection):
    name = "job_binaries"
    kind = Kind.JOB_BINARY


class JobTemplates(ResourceProjection):
    name = "job_templates"
    kind = Kind.JOB_TEMPLATE


class Jobs(ResourceProjection):
    name = "jobs"
    kind = Kind.JOB


RESOURCE_PROJECTIONS: dict[Kind, type[ResourceProjection]] = {
    p.kind: p for p in (NodeGroupTemplates, ClusterTemplates, Clusters, DataSources,
                        JobBinaries, JobTemplates, Jobs)
}
