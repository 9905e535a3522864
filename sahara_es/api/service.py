"""What the views work with: the store, the plugin catalog, the read models, and the
provisioner that turns accepted cluster and job commands into work."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import current_app, g

from sahara_es.commands import edp, resources
from sahara_es.commands.caller import Caller
from sahara_es.commands.catalog import Quota
from sahara_es.commands.errors import NotVisible
from sahara_es.events.resources import META, Doc, Kind, public
from sahara_es.plugins.base import Plugin
from sahara_es.plugins.catalog import PluginCatalog
from sahara_es.projections import RESOURCE_PROJECTIONS, Projector, ReadModel
from sahara_es.projections.projector import EVERYONE
from sahara_es.store import Store


class Provisioner(Protocol):
    """Carries out what cluster and job commands recorded (the provisioning and EDP layers)."""

    def cluster_created(self, cluster: Doc, caller: Caller) -> None: ...

    def cluster_scale_requested(self, cluster: Doc, caller: Caller) -> None: ...

    def cluster_deletion_requested(self, cluster: Doc, caller: Caller) -> None: ...

    def cluster_verification_requested(self, cluster: Doc, caller: Caller) -> None: ...

    def cluster_rebuild_requested(self, cluster: Doc, caller: Caller) -> None: ...

    def job_created(self, job: Doc, caller: Caller) -> None: ...

    def job_cancel_requested(self, job: Doc, caller: Caller) -> None: ...


class RecordOnly:
    """No provisioning attached: commands are recorded; a cluster deletion, having nothing
    to tear down, completes at once, and a cancelled job that never ran is killed."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def cluster_created(self, cluster: Doc, caller: Caller) -> None:
        pass

    def cluster_scale_requested(self, cluster: Doc, caller: Caller) -> None:
        pass

    def cluster_deletion_requested(self, cluster: Doc, caller: Caller) -> None:
        aggregate = resources.load(self.store, Kind.CLUSTER, cluster["id"])
        if aggregate.exists:
            resources.finish_delete(self.store, aggregate, caller)

    def cluster_verification_requested(self, cluster: Doc, caller: Caller) -> None:
        pass

    def cluster_rebuild_requested(self, cluster: Doc, caller: Caller) -> None:
        pass

    def job_created(self, job: Doc, caller: Caller) -> None:
        pass

    def job_cancel_requested(self, job: Doc, caller: Caller) -> None:
        edp.kill_unstarted(self.store, job["id"], caller)


@dataclass
class Service:
    store: Store
    plugins: dict[str, Plugin]
    catalog: PluginCatalog
    provisioner: Provisioner
    quota: Quota
    projector: Projector | None = None
    reads: dict[Kind, ReadModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, projection in RESOURCE_PROJECTIONS.items():
            self.reads[kind] = ReadModel(self.store, projection())

    def written(self, doc: Doc) -> Doc:
        """A command's result: remembered so this process's lists show it at once."""
        meta = doc[META]
        audience = EVERYONE if doc.get("is_public") else doc.get("project_id")
        self.reads[Kind(meta["kind"])].written(meta["stream"], meta["version"], audience)
        if self.projector is not None:
            self.projector.wake()
        return doc

    def refresh(self, kind: Kind, resource_id: str) -> None:
        """This process (or its provisioner) just wrote the resource without a document to
        hand (a delete): remembered, so this process's lists show its latest state at once."""
        stream = kind.stream(resource_id)
        self.reads[kind].written(stream, self.store.stream_version(stream))
        if self.projector is not None:
            self.projector.wake()

    def get(self, kind: Kind, resource_id: str, caller: Caller) -> Doc:
        doc = self.reads[kind].get(resource_id)
        if doc is None or not caller.can_see(doc):
            raise NotVisible(f"{kind.label} {resource_id} not found")
        return doc

    def visible(self, kind: Kind, caller: Caller) -> Iterator[Doc]:
        rows = self.reads[kind].scan(None if caller.is_admin else caller.project_id)
        return (doc for doc in rows if caller.can_see(doc))


def service() -> Service:
    found: Service = current_app.extensions["sahara_es"]
    return found


def caller() -> Caller:
    found: Caller = g.caller
    return found


def shown(doc: Doc, **extra: Any) -> Doc:
    return {**public(doc), **extra}
