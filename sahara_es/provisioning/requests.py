"""Which workflows cluster commands ask for: the rules of the engines' handoff
(``engine/handoff.py``).

A cluster command only records its event; the handoff of one engine follows the feed and
starts, by workflow id (``ids``), what each event asks for: ``create-<id>``,
``scale<version>-<id>``, ``rebuild<version>-<id>``, ``delete-<id>``,
``forcedelete-<id>``, ``keypair<version>-<id>``, ``verify-<verification id>``, each
carrying the cluster's project, by which engines share their slots fairly.

An API with no engines behind it (tests, development: ``ApiConfig(engines=False)``) marks
the clusters it creates as left alone (``leave_alone``), so that no engine sharing the store
later provisions what that API promised only to record.
"""

from __future__ import annotations

from collections.abc import Iterator

from sahara_es.commands import resources
from sahara_es.edp.requests import job_created
from sahara_es.engine import WorkflowRequest
from sahara_es.engine.handoff import Rules, leave_alone, left_alone
from sahara_es.events import RecordedEvent
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.provisioning import ids
from sahara_es.provisioning.create import CREATE
from sahara_es.provisioning.delete import DELETE, FORCE_DELETE, force_delete_id
from sahara_es.provisioning.keypair import UPDATE_KEYPAIR, update_keypair_id
from sahara_es.provisioning.rebuild import REBUILD
from sahara_es.provisioning.scale import SCALE
from sahara_es.provisioning.verify import VERIFY
from sahara_es.store import Store


def _cluster(store: Store, event: RecordedEvent) -> tuple[str, str, bool] | None:
    """The cluster an event of its stream is about: its id, its project and whether it is
    still there; None for one left alone."""
    cluster_id = event.stream_id.removeprefix(f"{Kind.CLUSTER.value}-")
    if left_alone(store, cluster_id):
        return None
    doc = resources.load(store, Kind.CLUSTER, cluster_id).doc
    if doc is None:
        return None
    return cluster_id, doc["project_id"], not doc[ev.META].get("deleted")


def _existing(store: Store, event: RecordedEvent) -> tuple[str, str] | None:
    """The cluster's id and project, if it is still there (e.g. not undone by the count
    create it was part of) and not left alone."""
    found = _cluster(store, event)
    if found is None or not found[2]:
        return None
    return found[0], found[1]


def cluster_created(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    if event.data.get("kind") == Kind.JOB.value:
        yield from job_created(store, event)
        return
    if event.data.get("kind") != Kind.CLUSTER.value:
        return
    found = _existing(store, event)
    if found is None:
        return
    cluster_id, project = found
    yield WorkflowRequest(CREATE, {"cluster_id": cluster_id}, ids.create_id(cluster_id),
                          project)


def scale_requested(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    found = _existing(store, event)
    if found is None:
        return
    cluster_id, project = found
    yield WorkflowRequest(SCALE, {"cluster_id": cluster_id, "version": event.version},
                          ids.scale_id(event.version, cluster_id), project)


def rebuild_requested(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    found = _existing(store, event)
    if found is None:
        return
    cluster_id, project = found
    yield WorkflowRequest(REBUILD, {"cluster_id": cluster_id, "version": event.version,
                                    "nodes": list(event.data.get("nodes") or [])},
                          ids.rebuild_id(event.version, cluster_id), project)


def verification_requested(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    found = _existing(store, event)
    if found is None:
        return
    cluster_id, project = found
    verification = event.data["verification_id"]
    yield WorkflowRequest(VERIFY, {"cluster_id": cluster_id, "verification_id": verification},
                          ids.verify_id(verification), project)


def deletion_requested(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    found = _cluster(store, event)
    if found is None:
        return
    cluster_id, project, _ = found
    yield WorkflowRequest(DELETE, {"cluster_id": cluster_id}, ids.delete_id(cluster_id),
                          project)


def force_deletion_requested(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    found = _cluster(store, event)
    if found is None:
        return
    cluster_id, project, _ = found
    yield WorkflowRequest(FORCE_DELETE, {"cluster_id": cluster_id}, force_delete_id(cluster_id),
                          project)


def keypair_update_requested(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    found = _existing(store, event)
    if found is None:
        return
    cluster_id, project = found
    yield WorkflowRequest(UPDATE_KEYPAIR, {"cluster_id": cluster_id},
                          update_keypair_id(event.version, cluster_id), project)


CLUSTER_REQUESTS: Rules = {
    ev.ResourceCreated.event_type: cluster_created,
    ev.ClusterScaleRequested.event_type: scale_requested,
    ev.ClusterRebuildRequested.event_type: rebuild_requested,
    ev.ClusterVerificationRequested.event_type: verification_requested,
    ev.ClusterDeletionRequested.event_type: deletion_requested,
    ev.ClusterForceDeletionRequested.event_type: force_deletion_requested,
    ev.ClusterKeypairUpdateRequested.event_type: keypair_update_requested,
}
"""The handoff's rules for cluster and job commands (engines run them: ``sahara-es engine``,
``all-in-one``): a created job asks for its ``edp.run-job`` workflow (``edp.requests``)."""

__all__ = ["CLUSTER_REQUESTS", "leave_alone", "left_alone"]
