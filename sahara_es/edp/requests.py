"""Which workflows job commands ask for: a created job asks for its ``edp.run-job``
(``job-<id>``), carrying its project, unless the API that took it has no engines behind it
(``engine.handoff.leave_alone``)."""

from __future__ import annotations

from collections.abc import Iterator

from sahara_es.commands import resources
from sahara_es.edp.manager import RUN_JOB, workflow_id
from sahara_es.engine import WorkflowRequest
from sahara_es.engine.handoff import left_alone
from sahara_es.events import RecordedEvent
from sahara_es.events.resources import META, Kind
from sahara_es.store import Store


def job_created(store: Store, event: RecordedEvent) -> Iterator[WorkflowRequest]:
    job_id = event.stream_id.removeprefix(f"{Kind.JOB.value}-")
    if left_alone(store, job_id):
        return
    doc = resources.load(store, Kind.JOB, job_id).doc
    if doc is None or doc[META].get("deleted"):
        return
    template = resources.load(store, Kind.JOB_TEMPLATE, doc["job_template_id"]).doc
    job_type = template["type"] if template is not None else ""
    yield WorkflowRequest(RUN_JOB, {"job_id": job_id, "job_type": job_type},
                          workflow_id(job_id), doc["project_id"])
