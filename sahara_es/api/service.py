"""What the views work with: the store, the plugin catalog and the read models.

Commands only record: the workflows a cluster command asks for are started by the engines'
handoff, which follows the feed (``engine/handoff.py``, ``provisioning/requests.py``), so an API
process that dies after its append orphans nothing. Without engines (``engines=False``: tests,
development) cluster requests are only recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g, has_request_context

from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.commands.catalog import Quota
from sahara_es.commands.errors import NotVisible
from sahara_es.engine.handoff import leave_alone
from sahara_es.events.resources import META, Doc, Kind, public
from sahara_es.plugins.base import Plugin
from sahara_es.plugins.catalog import PluginCatalog
from sahara_es.projections import RESOURCE_PROJECTIONS, Projector, ReadModel
from sahara_es.projections.memory import DEFAULT_MAX_LAG, FeedTail, MemoryReadModel, MemoryReads
from sahara_es.projections.projector import EVERYONE
from sahara_es.store import Store


@dataclass
class Service:
    store: Store
    plugins: dict[str, Plugin]
    catalog: PluginCatalog
    quota: Quota
    engines: bool = False
    """Engines share the store and carry out cluster requests (their handoff starts the
    workflows). False: nothing does; see ``cluster_created`` and ``deletion_requested``."""
    projector: Projector | None = None
    memory: MemoryReads | None = None
    """The read models in memory (GETs read them, not the store); None: reads go to the
    store's rows."""
    tail: FeedTail | None = None
    """What feeds ``memory`` from the feed."""
    max_read_lag: float = DEFAULT_MAX_LAG
    reads: dict[Kind, ReadModel | MemoryReadModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, projection in RESOURCE_PROJECTIONS.items():
            stored = ReadModel(self.store, projection())
            if self.memory is None or self.tail is None:
                self.reads[kind] = stored
                continue
            read = MemoryReadModel(self.memory.rows[kind], self.memory, self.tail, stored,
                                   max_lag=self.max_read_lag)
            read.from_store = _request_reads_from_store
            self.reads[kind] = read

    def written(self, doc: Doc) -> Doc:
        """A command's result: in this process's reads before it is answered."""
        meta = doc[META]
        audience = EVERYONE if doc.get("is_public") else doc.get("project_id")
        self._wrote(Kind(meta["kind"]), meta["stream"], meta["version"], audience)
        return doc

    def _wrote(self, kind: Kind, stream: str, version: int, audience: str | None = None) -> None:
        self.reads[kind].written(stream, version, audience)
        if has_request_context():
            g.setdefault("written_streams", {})[stream] = version
        if self.projector is not None:
            self.projector.wake()

    def cluster_created(self, doc: Doc) -> None:
        """Without engines, the cluster is marked as left alone: an engine that shares the
        store later must not provision what this API only recorded."""
        if not self.engines:
            leave_alone(self.store, doc["id"])

    def job_created(self, doc: Doc) -> None:
        """Without engines, the job is left alone too: no engine sharing the store runs it."""
        if not self.engines:
            leave_alone(self.store, doc["id"])

    def deletion_requested(self, doc: Doc, caller: Caller) -> None:
        """Without engines a deletion, having nothing to tear down, completes at once."""
        if self.engines:
            return
        aggregate = resources.load(self.store, Kind.CLUSTER, doc["id"])
        if aggregate.exists:
            resources.finish_delete(self.store, aggregate, caller)

    def refresh(self, kind: Kind, resource_id: str) -> None:
        """This process just wrote the resource without a document to hand (a delete):
        remembered, so this process's lists show its latest state at once."""
        stream = kind.stream(resource_id)
        self._wrote(kind, stream, self.store.stream_version(stream))

    def get(self, kind: Kind, resource_id: str, caller: Caller) -> Doc:
        doc = self.reads[kind].get(resource_id)
        if doc is None or not caller.can_see(doc):
            raise NotVisible(f"{kind.label} {resource_id} not found")
        return doc

    def visible(self, kind: Kind, caller: Caller) -> Iterator[Doc]:
        rows = self.reads[kind].scan(None if caller.is_admin else caller.project_id)
        return (doc for doc in rows if caller.can_see(doc))


def _request_reads_from_store() -> bool:
    """Whether the request at hand reads from the store (``api/reads.py`` decides)."""
    return has_request_context() and bool(g.get("reads_from_store", False))


def service() -> Service:
    found: Service = current_app.extensions["sahara_es"]
    return found


def caller() -> Caller:
    found: Caller = g.caller
    return found


def shown(doc: Doc, **extra: Any) -> Doc:
    return {**public(doc), **extra}
