"""What the read models show of regions (doc/regions.rst): a cluster's home region and the
engine, of which region, that records its running workflow's steps; a workflow's home and
owner regions and its takeovers."""

from __future__ import annotations

import uuid

from sahara_es.events import Metadata, RecordedEvent, registry
from sahara_es.events import resources as rv
from sahara_es.events import workflow as ev
from sahara_es.events.registry import DomainEvent
from sahara_es.projections.base import Doc, Projection
from sahara_es.projections.resources import Clusters
from sahara_es.projections.workflows import WorkflowsProjection


def fold(projection: Projection, stream: str, *steps: tuple[DomainEvent, Metadata]) -> Doc:
    doc: Doc | None = None
    for version, (fact, metadata) in enumerate(steps, 1):
        new = registry.new_event(fact, metadata)
        recorded = RecordedEvent(stream_id=stream, version=version, event_id=new.event_id,
                                 type=new.type, schema_version=new.schema_version,
                                 data=new.data, metadata=new.metadata)
        doc, _ = projection.apply(doc, recorded)
    assert doc is not None
    return doc


def test_a_cluster_shows_its_region_and_its_running_workflows_engine_until_it_settles() -> None:
    cluster_id = uuid.uuid4().hex
    created = rv.ResourceCreated("cluster", cluster_id, "p", "c", {
        "name": "c", "status": "Validating", "region": "dc1"})
    step = Metadata(engine_id="e-dc2", region="dc2", correlation_id="create-1")
    stream = rv.Kind.CLUSTER.stream(cluster_id)

    running = fold(Clusters(), stream, (created, Metadata(project_id="p")),
                   (rv.ClusterStatusChanged("Spawning"), step))
    assert running["region"] == "dc1"
    assert running["workflow_owner"] == {"workflow_id": "create-1", "engine": "e-dc2",
                                         "region": "dc2"}

    settled = fold(Clusters(), stream, (created, Metadata(project_id="p")),
                   (rv.ClusterStatusChanged("Spawning"), step),
                   (rv.ClusterStatusChanged("Active"), step))
    assert settled["workflow_owner"] is None


def test_a_workflow_row_shows_its_home_its_owners_region_and_its_takeovers() -> None:
    row = fold(WorkflowsProjection(), "workflow-w1",
               (ev.WorkflowStarted("test.chain", {}, [], home_region="dc3"), Metadata()),
               (ev.WorkflowOwned("e-dc3", 1, "dc3"), Metadata()),
               (ev.WorkflowOwned("e-dc1", 2, "dc1"), Metadata()),
               (ev.WorkflowTakenOver("e-dc1", 2, "dc3", "dc1", "dc3"), Metadata()))

    assert (row["home_region"], row["owner"], row["owner_region"]) == ("dc3", "e-dc1", "dc1")
    assert row["takeovers"] == [{"engine": "e-dc1", "epoch": 2, "from_region": "dc3",
                                 "to_region": "dc1"}]


def test_a_workflow_of_one_site_is_recorded_without_a_home_region() -> None:
    assert "home_region" not in ev.WorkflowStarted("test.chain", {}, []).to_data()
