"""The read models of the API: one projection per kind of resource, each row the resource's
representation (the same fold the commands use), indexed by owning project and by being
public, so that a project's list reads its own rows and the public ones, not everyone's."""

from __future__ import annotations

from typing import ClassVar

from sahara_es.events import RecordedEvent, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import META, Doc, Kind
from sahara_es.projections.base import APPLIED, Projection

PUBLIC = "public:"


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


class Clusters(ResourceProjection):
    name = "clusters"
    kind = Kind.CLUSTER


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
