"""EDP commands: data sources, job binaries, job templates and jobs (executions).

A job template pins its job binaries; a job pins its template and data sources while it
exists. Running a job needs an Active cluster the caller may see; the job engines of the EDP
layer carry it out and record its status in the job's stream.
"""

from __future__ import annotations

from sahara_es.commands import resources
from sahara_es.commands.caller import Caller
from sahara_es.commands.catalog import Catalog
from sahara_es.commands.errors import Conflict, Invalid
from sahara_es.events import resources as ev
from sahara_es.events.resources import JOB_FINAL, Doc, Kind
from sahara_es.events.statuses import JobStatus
from sahara_es.store import Store

DATA_SOURCE = Kind.DATA_SOURCE
JOB_BINARY = Kind.JOB_BINARY
JOB_TEMPLATE = Kind.JOB_TEMPLATE
JOB = Kind.JOB

INITIAL_JOB_STATUS: str = JobStatus.PENDING.value


def create_job_template(store: Store, caller: Caller, catalog: Catalog, fields: Doc) -> Doc:
    catalog.check_job_type(fields["type"])
    binaries = [*fields.get("mains", []), *fields.get("libs", [])]
    if fields["type"] in ("Pig", "Hive", "Spark", "Shell", "Storm") and not fields.get("mains"):
        raise Invalid(f"a {fields['type']} job template needs one main job binary")
    uses = [(JOB_BINARY, binary) for binary in dict.fromkeys(binaries)]
    return resources.create(store, JOB_TEMPLATE, caller, fields, uses=uses)


def run_job(store: Store, caller: Caller, catalog: Catalog, fields: Doc) -> Doc:
    """Record a job to run; the job engine of the cluster's plugin picks it up."""
    template = resources.visible(store, JOB_TEMPLATE, fields["job_template_id"], caller).doc
    cluster = resources.visible(store, Kind.CLUSTER, fields["cluster_id"], caller).doc
    assert template is not None and cluster is not None
    if cluster["status"] != "Active":
        raise Conflict(f"cluster {cluster['id']} is {cluster['status']}; jobs run only on an"
                       " Active cluster")
    catalog.check_job_type(template["type"], cluster["plugin_name"], cluster["plugin_version"])
    uses = [(JOB_TEMPLATE, template["id"])]
    for key in ("input_id", "output_id"):
        if fields.get(key):
            uses.append((DATA_SOURCE, fields[key]))
    attributes = {**fields, "info": {"status": INITIAL_JOB_STATUS}, "start_time": None,
                  "end_time": None, "engine_job_id": None, "return_code": None}
    return resources.create(store, JOB, caller, attributes, uses=uses)


def cancel_job(store: Store, caller: Caller, job_id: str) -> Doc:
    """Ask for the job to be killed (``TOBEKILLED``); a finished job cannot be."""
    aggregate = resources.owned(store, JOB, job_id, caller)
    doc = aggregate.doc
    assert doc is not None
    status = doc["info"]["status"]
    if status in JOB_FINAL:
        raise Conflict(f"job {job_id} is {status} already")
    if status == JobStatus.TOBEKILLED:
        return doc
    return resources.append(store, aggregate, [ev.JobCancelRequested(status)], caller)


def update_job(store: Store, caller: Caller, job_id: str, changes: Doc) -> Doc:
    info = changes.pop("info", None)
    doc = resources.update(store, JOB, job_id, caller, changes) if changes else \
        resources.owned(store, JOB, job_id, caller).doc
    if info is not None:
        if str(info.get("status", "")).lower() != "cancel":
            raise Invalid('info: only {"status": "cancel"} is accepted')
        doc = cancel_job(store, caller, job_id)
    assert doc is not None
    return doc


def delete_job(store: Store, caller: Caller, job_id: str) -> None:
    """Delete a job record; a job still running is asked to stop first."""
    aggregate = resources.owned(store, JOB, job_id, caller)
    doc = aggregate.doc
    assert doc is not None
    if doc.get("is_protected"):
        resources.check_changeable(store, aggregate, caller=caller)
    if doc["info"]["status"] not in JOB_FINAL | {"TOBEKILLED"}:
        resources.append(store, aggregate, [ev.JobCancelRequested(doc["info"]["status"])],
                         caller)
    resources.finish_delete(store, aggregate, caller)


def kill_unstarted(store: Store, job_id: str, caller: Caller) -> None:
    """A cancelled job no job engine ever started is killed at once."""
    aggregate = resources.load(store, JOB, job_id)
    if aggregate.exists and aggregate.doc is not None \
            and aggregate.doc["info"]["status"] == "TOBEKILLED":
        resources.append(store, aggregate, [ev.JobStatusChanged(JobStatus.KILLED.value)], caller)
