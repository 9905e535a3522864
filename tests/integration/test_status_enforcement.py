"""Status transitions are enforced where resource events are appended, on both stores: by
commands and by workflows' tasks, before anything is written."""

from __future__ import annotations

import uuid

import pytest

from sahara_es.commands import edp, resources
from sahara_es.commands.caller import SYSTEM, Caller
from sahara_es.commands.resources import IllegalStatusChange
from sahara_es.engine import TaskContext
from sahara_es.engine.attempts import decide
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc, Kind
from sahara_es.provisioning import ids
from sahara_es.provisioning.cluster import Cluster
from sahara_es.store import Store

CALLER = Caller(project_id="p-status")


def new_cluster(store: Store, status: str = "Validating") -> str:
    doc = resources.create(store, Kind.CLUSTER, CALLER, {
        "status": status, "status_description": "", "node_groups": [], "info": {}})
    return str(doc["id"])


def append(store: Store, cluster_id: str, *events: ev.DomainEvent,
           kind: Kind = Kind.CLUSTER) -> Doc:
    return resources.append(store, resources.load(store, kind, cluster_id), list(events),
                            SYSTEM)


def version(store: Store, kind: Kind, resource_id: str) -> int:
    return resources.load(store, kind, resource_id).version


def test_a_cluster_walks_its_lifecycle_and_an_illegal_change_is_refused(store: Store) -> None:
    cluster = new_cluster(store)
    for status in ("InfraUpdating", "Spawning", "Configuring", "Starting", "Active"):
        assert append(store, cluster, ev.ClusterStatusChanged(status))["status"] == status
    assert append(store, cluster, ev.ClusterScaleRequested({"w": 1}))["status"] == "Scaling"
    append(store, cluster, ev.ClusterStatusChanged("Decommissioning"))
    append(store, cluster, ev.ClusterStatusChanged("Active", "back"))
    append(store, cluster, ev.ClusterStatusChanged("Active", "a new description"))
    assert append(store, cluster, ev.ClusterDeletionRequested("Active"))["status"] == "Deleting"
    before = version(store, Kind.CLUSTER, cluster)

    with pytest.raises(IllegalStatusChange) as refused:
        append(store, cluster, ev.ClusterStatusChanged("Active"))

    assert refused.value.message == (f"cluster-{cluster}: illegal cluster status transition"
                                     " from Deleting to Active; Deleting is final")
    assert (refused.value.from_status, refused.value.to_status) == ("Deleting", "Active")
    assert refused.value.code == "illegal-transition"
    assert version(store, Kind.CLUSTER, cluster) == before  # nothing written


def test_a_batch_with_one_illegal_change_appends_nothing(store: Store) -> None:
    cluster = new_cluster(store)
    before = version(store, Kind.CLUSTER, cluster)

    with pytest.raises(IllegalStatusChange, match="from InfraUpdating to Starting"):
        append(store, cluster, ev.ClusterStatusChanged("InfraUpdating"),
               ev.ClusterStatusChanged("Starting"))

    assert version(store, Kind.CLUSTER, cluster) == before
    assert resources.load(store, Kind.CLUSTER, cluster).doc["status"] == "Validating"  # type: ignore[index]


def test_a_cluster_cannot_be_created_in_another_status(store: Store) -> None:
    with pytest.raises(IllegalStatusChange, match=r"from \(none: created\) to Active"):
        new_cluster(store, status="Active")


def test_a_workflow_task_setting_an_illegal_status_fails_at_once(store: Store) -> None:
    """The provisioning tasks record through the same check: the error is not retryable."""
    cluster = new_cluster(store)
    ctx = TaskContext(workflow_id=ids.create_id(cluster), task_id="begin", attempt=1,
                      engine_id="e1", params={}, results={}, lease_valid=lambda: True,
                      services={"store": store})
    Cluster(ctx, cluster).set_status("InfraUpdating")

    with pytest.raises(IllegalStatusChange) as refused:
        Cluster(ctx, cluster).set_status("Active")

    assert "from InfraUpdating to Active" in str(refused.value)
    assert not decide(refused.value).retryable


def test_a_job_walks_its_statuses_and_a_finished_one_stays_finished(store: Store) -> None:
    job = resources.create(store, Kind.JOB, CALLER, {"info": {"status": "PENDING"}})["id"]
    with pytest.raises(IllegalStatusChange, match="from PENDING to SUCCEEDED"):
        append(store, job, ev.JobStatusChanged("SUCCEEDED"), kind=Kind.JOB)
    append(store, job, ev.JobStatusChanged("RUNNING", engine_job_id="e-1"), kind=Kind.JOB)
    append(store, job, ev.JobStatusChanged("RUNNING", "still"), kind=Kind.JOB)
    edp.cancel_job(store, CALLER, job)
    assert resources.load(store, Kind.JOB, job).doc["info"]["status"] == "TOBEKILLED"  # type: ignore[index]
    edp.kill_unstarted(store, job, CALLER)
    before = version(store, Kind.JOB, job)

    with pytest.raises(IllegalStatusChange, match="from KILLED to RUNNING; KILLED is final"):
        append(store, job, ev.JobStatusChanged("RUNNING"), kind=Kind.JOB)

    assert version(store, Kind.JOB, job) == before


def test_other_kinds_have_no_status_to_check(store: Store) -> None:
    source = resources.create(store, Kind.DATA_SOURCE, CALLER,
                              {"name": f"ds-{uuid.uuid4()}", "type": "swift", "status": "x"})
    doc = resources.update(store, Kind.DATA_SOURCE, source["id"], CALLER, {"status": "y"})
    assert doc["status"] == "y"
