"""A user's command on a stream that engines write too reads it again when a write got in
between its read and its append: it is neither refused for it nor lost (both stores)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from sahara_es.commands import clusters, edp, resources
from sahara_es.commands.caller import SYSTEM, Caller
from sahara_es.commands.errors import ChangedConcurrently, Protected
from sahara_es.events import NewEvent, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.store import Store


class EngineBetween:
    """A store on which another writer (as a provisioning engine recording a step) appends to
    the stream just before each of the next ``times`` appends the command makes there."""

    def __init__(self, store: Store, stream_id: str, times: int) -> None:
        self._store, self._stream_id, self.times = store, stream_id, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def append(self, stream_id: str, events: Sequence[NewEvent], expected_version: int,
               **kwargs: Any) -> Any:
        if stream_id == self._stream_id and self.times > 0:
            self.times -= 1
            version = max((e.version for e in self._store.read(stream_id)), default=0)
            self._store.append(stream_id, [registry.new_event(
                ev.ResourceUpdated({"description": f"step {uuid.uuid4().hex[:6]}"}),
                SYSTEM.metadata())], version)
        return self._store.append(stream_id, events, expected_version, **kwargs)


def a_cluster(store: Store, caller: Caller, **fields: Any) -> str:
    doc = resources.create(store, Kind.CLUSTER, caller, {
        "name": f"c-{uuid.uuid4().hex[:8]}", "status": "Validating", "plugin_name": "fake",
        "plugin_version": "0.1", "node_groups": [], **fields})
    return str(doc["id"])


@pytest.fixture
def caller() -> Caller:
    return Caller(project_id=f"p-{uuid.uuid4().hex[:8]}")


def test_unprotecting_a_cluster_whose_engine_records_a_step_meanwhile_lands(
        store: Store, caller: Caller) -> None:
    cluster_id = a_cluster(store, caller, is_protected=True)
    busy = EngineBetween(store, Kind.CLUSTER.stream(cluster_id), times=2)

    doc = clusters.update_cluster(busy, caller, cluster_id,  # type: ignore[arg-type]
                                  {"is_protected": False})

    assert doc["is_protected"] is False and busy.times == 0
    assert resources.load(store, Kind.CLUSTER, cluster_id).doc["is_protected"] is False  # type: ignore[index]


def test_a_force_delete_is_accepted_while_the_engine_writes_and_guards_are_checked_again(
        store: Store, caller: Caller) -> None:
    cluster_id = a_cluster(store, caller)
    busy = EngineBetween(store, Kind.CLUSTER.stream(cluster_id), times=3)

    doc = clusters.delete_cluster(busy, caller, cluster_id,  # type: ignore[arg-type]
                                  force=True)

    assert doc["status"] == "Deleting"
    protected = a_cluster(store, caller, is_protected=True)
    with pytest.raises(Protected):
        clusters.delete_cluster(EngineBetween(store, Kind.CLUSTER.stream(protected), 3),  # type: ignore[arg-type]
                                caller, protected, force=True)


def test_a_stream_that_never_stops_moving_is_refused_not_overwritten(
        store: Store, caller: Caller) -> None:
    cluster_id = a_cluster(store, caller)
    always = EngineBetween(store, Kind.CLUSTER.stream(cluster_id), times=10**6)

    with pytest.raises(ChangedConcurrently):
        clusters.update_cluster(always, caller, cluster_id,  # type: ignore[arg-type]
                                {"description": "mine"})

    assert always.times == 10**6 - resources.REREADS
    assert resources.load(store, Kind.CLUSTER, cluster_id).doc["description"] != "mine"  # type: ignore[index]


def test_a_job_update_keeps_its_fields_when_read_again(store: Store, caller: Caller) -> None:
    job = resources.create(store, Kind.JOB, caller, {
        "info": {"status": "PENDING"}, "is_public": False})
    busy = EngineBetween(store, Kind.JOB.stream(job["id"]), times=1)
    changes = {"is_public": True}

    doc = edp.update_job(busy, caller, job["id"], changes)  # type: ignore[arg-type]

    assert doc["is_public"] is True and changes == {"is_public": True}
