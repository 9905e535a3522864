"""The job manager: running a job and following it to its end is a durable workflow.

``edp.run-job`` (id ``job-<job id>``, started by the handoff when a job is created) has
three tasks, each recording what happens as the job's events:

- ``await`` waits until the job's cluster is Active (a job may be submitted while its
  cluster is still being provisioned); it fails the job when the cluster ends in Error or
  is deleted first, and kills it when it is cancelled first;
- ``submit`` fetches the job's binaries, opens its data sources' credentials and hands the
  job to the job engine the cluster's plugin gives (``EdpServices.job_engine``); the job is
  ``RUNNING`` with its engine job id. A job engine's ``run_job`` finds what was already
  submitted for the job, so an engine taking the workflow over after a crash never submits
  it twice;
- ``follow`` polls the job engine until the job ends (``SUCCEEDED``, ``FAILED`` with the
  reason, ``KILLED``), carries out a cancel (``TOBEKILLED``: the engine kills the job; one
  that does not stop within the cancel timeout is reported as such, ``JobCancelFailed``,
  and followed on), kills the job when its cluster is being deleted, and keeps the last
  bytes of its output (``JobLogsCaptured``).

``await`` and ``follow`` wait rather than work (``Task.waits``): they take none of the
engine's task slots, so one engine follows as many jobs as it owns workflows. A job's
failure is its outcome, not the workflow's: the workflow succeeds once the job has ended,
whatever its status. A workflow that fails nonetheless (an engine error past its retries)
fails the job with the reason, when its first task is reverted.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sahara_es.commands import resources
from sahara_es.commands.caller import SYSTEM
from sahara_es.commands.errors import ChangedConcurrently
from sahara_es.commands.secrets import open_job_configs, open_secret_field
from sahara_es.edp.base import (
    DataSourceAccess,
    EngineState,
    JobEngine,
    JobEngineError,
    JobFile,
    JobInvalid,
    JobRun,
    JobState,
)
from sahara_es.engine import (
    Flow,
    PermanentFailure,
    RetryPolicy,
    Task,
    TaskContext,
    WorkGivenBack,
    load_workflow,
    task_type,
    workflow_type,
)
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import JOB_FINAL, META, Doc, Kind
from sahara_es.events.statuses import JobStatus
from sahara_es.store import ConcurrencyConflict, Store

RUN_JOB = "edp.run-job"
EDP = "edp"
"""The key under which an engine's services hold the ``EdpServices``."""


def workflow_id(job_id: str) -> str:
    return f"job-{job_id}"


@dataclass(frozen=True)
class JobLimits:
    """How jobs are followed (set by the service, never by a tenant)."""

    poll_interval: float = 1.0
    """Seconds between two looks at a running job (and at a cluster a job waits for)."""
    cancel_timeout: float = 60.0
    """How long a cancel may take before it is reported as not done."""
    log_tail_bytes: int = 16384
    """The last bytes of a job's stdout and of its stderr kept in its history."""
    log_interval: float = 15.0
    """Seconds between two captures of a running job's output (only when it changed)."""
    unreachable_limit: int = 60
    """Consecutive failed looks at a running job after which it is failed as lost."""


class EdpServices(Protocol):
    """What the job manager's tasks use (the provisioning services give it)."""

    def job_engine(self, cluster_id: str, job_type: str) -> JobEngine:
        """The job engine of the cluster's plugin for ``job_type``; ``JobInvalid`` when the
        plugin runs no such jobs."""
        ...

    def fetch_binary(self, binary: Doc, extra: Doc | None) -> bytes:
        """A job binary's bytes (swift://, s3://, file://...), under the storage policy."""
        ...

    def node_url(self, cluster_id: str, project_id: str, url: str) -> str:
        """A data source's URL as the cluster's nodes reach it: ``manila://share/path`` as
        the ``file://`` path of the share's folder on the nodes; any other unchanged."""
        ...

    @property
    def limits(self) -> JobLimits: ...


def edp_services(ctx: TaskContext) -> EdpServices:
    return cast(EdpServices, ctx.service(EDP))


def _store(ctx: TaskContext) -> Store:
    store: Store = ctx.service("store")
    return store


# -- the job's stream ---------------------------------------------------------------------------

class Job:
    """The job's aggregate as a task reads and writes it."""

    def __init__(self, ctx: TaskContext, job_id: str) -> None:
        self.ctx = ctx
        self.id = job_id
        self.store = _store(ctx)

    def doc(self) -> Doc:
        doc = resources.load(self.store, Kind.JOB, self.id).doc
        if doc is None:
            raise PermanentFailure(f"job {self.id} does not exist")
        return doc

    @property
    def status(self) -> str:
        return str(self.doc()["info"]["status"])

    def record(self, *events: DomainEvent, unless: Any = None) -> Doc:
        """Append after whatever the API appended meanwhile; nothing when ``unless(doc)``."""
        metadata = Metadata(actor="sahara-es", correlation_id=self.ctx.workflow_id,
                            causation_id=f"{self.ctx.workflow_id}/{self.ctx.task_id}",
                            engine_id=self.ctx.engine_id)
        for _ in range(20):
            aggregate = resources.load(self.store, Kind.JOB, self.id)
            doc = aggregate.doc
            if doc is None:
                raise PermanentFailure(f"job {self.id} does not exist")
            if unless is not None and unless(doc):
                return doc
            try:
                resources.append_records(self.store, aggregate, [
                    registry.new_event(e, metadata) for e in events])
                assert aggregate.doc is not None
                return aggregate.doc
            except ChangedConcurrently:
                continue
        raise ConcurrencyConflict(f"job {self.id} kept changing")

    def end(self, status: JobStatus, description: str = "") -> Doc:
        """The job ends as ``status`` (unless it ended already), and gives back the
        template and data sources it held."""
        doc = self.record(ev.JobStatusChanged(status.value, description[-2000:]),
                          unless=lambda d: d["info"]["status"] in JOB_FINAL)
        self.release_uses()
        return doc

    def release_uses(self) -> None:
        aggregate = resources.load(self.store, Kind.JOB, self.id)
        doc = aggregate.doc
        if doc is None or not doc[META].get("uses"):
            return
        resources.release_uses(self.store, aggregate, SYSTEM)


def _cluster(store: Store, cluster_id: str) -> Doc | None:
    doc = resources.load(store, Kind.CLUSTER, cluster_id).doc
    if doc is None or doc[META].get("deleted"):
        return None
    return doc


def _cluster_going(doc: Doc | None) -> str | None:
    """Why a job cannot (or can no longer) run on the cluster, or None."""
    if doc is None:
        return "its cluster was deleted"
    if doc.get("status") == "Deleting":
        return "its cluster is being deleted"
    if doc.get("status") == "Error":
        return f"its cluster is in Error: {doc.get('status_description', '')}".rstrip(": ")
    return None


def _sleep(ctx: TaskContext, seconds: float) -> None:
    """Wait, unless the workflow is cancelled; ``LeaseExpired`` once the work is lost,
    ``WorkGivenBack`` once the engine stops (another one follows the job on)."""
    ctx.cancelled.wait(seconds)
    if ctx.stopping.is_set():
        raise WorkGivenBack(f"{ctx.engine_id} stops: {ctx.workflow_id} is given back")
    ctx.check_lease()


# -- the tasks --------------------------------------------------------------------------------

@task_type("edp.await-cluster")
class AwaitCluster(Task):
    """Wait until the job's cluster is Active; fail the job if the cluster fails first, kill
    it if it is cancelled first. Reverted (the workflow failed), it fails the job."""

    idempotent = True
    waits = True

    def execute(self, ctx: TaskContext) -> Doc:
        job = Job(ctx, self.args["job_id"])
        interval = edp_services(ctx).limits.poll_interval
        while True:
            doc = job.doc()
            status = doc["info"]["status"]
            if status in JOB_FINAL:
                return {"outcome": status}
            if status == JobStatus.TOBEKILLED:
                job.end(JobStatus.KILLED, "cancelled before it started")
                return {"outcome": JobStatus.KILLED.value}
            cluster = _cluster(job.store, doc["cluster_id"])
            why = _cluster_going(cluster)
            if why:
                job.end(JobStatus.FAILED, f"the job could not start: {why}")
                return {"outcome": JobStatus.FAILED.value}
            assert cluster is not None
            if cluster["status"] == "Active":
                return {"outcome": "ready"}
            if ctx.cancelled.is_set():
                raise PermanentFailure("the job's workflow was cancelled")
            _sleep(ctx, interval)

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        failure = load_workflow(_store(ctx), ctx.workflow_id).failure
        reason = failure.error if failure else "its workflow was cancelled"
        Job(ctx, self.args["job_id"]).end(JobStatus.FAILED, f"the job failed: {reason}")


def _ready(ctx: TaskContext) -> bool:
    return bool(ctx.results.get("await", {}).get("outcome") == "ready")


@task_type("edp.submit")
class Submit(Task):
    """Hand the job to the cluster's job engine; the job is RUNNING with its engine job id.
    Safe to run again: the job engine answers the submission it finds for the job."""

    idempotent = True
    retry = RetryPolicy(attempts=5, backoff=1.0, max_backoff=10.0)

    def execute(self, ctx: TaskContext) -> Doc:
        if not _ready(ctx):
            return {"submitted": False}
        job = Job(ctx, self.args["job_id"])
        doc = job.doc()
        if doc["info"]["status"] in JOB_FINAL:
            return {"submitted": False}
        if doc["info"]["status"] == JobStatus.TOBEKILLED and not doc.get("engine_job_id"):
            job.end(JobStatus.KILLED, "cancelled before it started")
            return {"submitted": False}
        services = edp_services(ctx)
        try:
            run = job_run(job.store, services, doc)
            engine = services.job_engine(doc["cluster_id"], run.job_type)
            engine.validate_job_execution(run)
            ctx.check_lease()
            engine_job_id = engine.run_job(run)
        except JobInvalid as invalid:
            job.end(JobStatus.FAILED, f"the job cannot run: {invalid}")
            return {"submitted": False}
        except Exception as error:
            if getattr(error, "retryable", True) is False or isinstance(error, PermanentFailure):
                job.end(JobStatus.FAILED, f"the job could not be submitted: {error}")
                return {"submitted": False}
            raise
        job.record(ev.JobStatusChanged(JobStatus.RUNNING.value, "",
                                       engine_job_id=engine_job_id),
                   unless=lambda d: d["info"]["status"] != JobStatus.PENDING)
        return {"submitted": True, "engine_job_id": engine_job_id}


@task_type("edp.follow")
class Follow(Task):
    """Follow the submitted job to its end: its status, its cancel, its cluster's deletion,
    its output."""

    idempotent = True
    waits = True

    def execute(self, ctx: TaskContext) -> Doc:
        submitted = ctx.results.get("submit") or {}
        if not submitted.get("submitted"):
            return {"followed": False}
        engine_job_id = str(submitted["engine_job_id"])
        job = Job(ctx, self.args["job_id"])
        services = edp_services(ctx)
        limits = services.limits
        doc = job.doc()
        engine = services.job_engine(doc["cluster_id"], self.args["job_type"])
        follower = _Follower(ctx, job, engine, engine_job_id, limits)
        return follower.run()


class _Follower:
    def __init__(self, ctx: TaskContext, job: Job, engine: JobEngine, engine_job_id: str,
                 limits: JobLimits) -> None:
        self.ctx, self.job, self.engine = ctx, job, engine
        self.engine_job_id, self.limits = engine_job_id, limits
        self.last_logs: tuple[str, str] | None = None
        self.last_capture = time.monotonic()
        self.misses = 0

    def run(self) -> Doc:
        while True:
            doc = self.job.doc()
            status = doc["info"]["status"]
            why = _cluster_going(_cluster(self.job.store, doc["cluster_id"]))
            if doc[META].get("deleted"):
                why = why or "the job was deleted"
            if why and status not in JOB_FINAL:
                return self._killed(f"killed: {why}")
            if status == JobStatus.TOBEKILLED:
                outcome = self._kill("cancelled")
                if outcome is not None:
                    return outcome
            try:
                state = self.engine.get_job_status(self.engine_job_id)
                self.misses = 0
            except JobEngineError as error:
                self.misses += 1
                if self.misses >= self.limits.unreachable_limit:
                    return self._ended(JobState(EngineState.FAILED,
                                                f"the job was lost: {error}"))
                state = JobState(EngineState.RUNNING)
            if state.state.final:
                return self._ended(state)
            if status in JOB_FINAL:  # ended meanwhile (e.g. the API killed it unstarted)
                self._cancel_quietly()
                return {"followed": True, "status": status}
            self._capture_logs(only_if_due=True)
            _sleep(self.ctx, self.limits.poll_interval)

    def _kill(self, reason: str, final_anyway: bool = False) -> Doc | None:
        self.ctx.check_lease()
        try:
            state = self.engine.cancel_job(self.engine_job_id, self.limits.cancel_timeout)
        except JobEngineError as error:
            state = JobState(EngineState.RUNNING, str(error))
        if state.state is EngineState.RUNNING and not final_anyway:
            note = (f"the cancel did not complete within {self.limits.cancel_timeout:g} s;"
                    " the job still runs")
            if state.description:
                note += f": {state.description}"
            self.job.record(ev.JobCancelFailed(note[-2000:]),
                            unless=lambda d: d["info"]["status"] != JobStatus.TOBEKILLED)
            return None
        if state.state in (EngineState.SUCCEEDED, EngineState.FAILED) and not final_anyway:
            return self._ended(state)
        self._capture_logs()
        self.job.end(JobStatus.KILLED, reason)
        return {"followed": True, "status": JobStatus.KILLED.value}

    def _killed(self, reason: str) -> Doc:
        """Kill the job whatever its engine answers (its cluster is going away)."""
        found = self._kill(reason, final_anyway=True)
        assert found is not None
        return found

    def _cancel_quietly(self) -> None:
        with contextlib.suppress(JobEngineError):
            self.engine.cancel_job(self.engine_job_id, self.limits.cancel_timeout)

    def _ended(self, state: JobState) -> Doc:
        self._capture_logs()
        status = {EngineState.SUCCEEDED: JobStatus.SUCCEEDED,
                  EngineState.FAILED: JobStatus.FAILED,
                  EngineState.KILLED: JobStatus.KILLED}[state.state]
        self.job.end(status, state.description)
        return {"followed": True, "status": status.value, "exit_code": state.exit_code}

    def _capture_logs(self, only_if_due: bool = False) -> None:
        now = time.monotonic()
        if only_if_due and now - self.last_capture < self.limits.log_interval:
            return
        self.last_capture = now
        try:
            logs = self.engine.get_job_logs(self.engine_job_id, self.limits.log_tail_bytes)
        except JobEngineError:
            return
        if (logs.stdout, logs.stderr) == self.last_logs:
            return
        self.last_logs = (logs.stdout, logs.stderr)
        self.job.record(ev.JobLogsCaptured(logs.stdout, logs.stderr),
                        unless=lambda d: (d.get("logs") or {}).get("stdout") == logs.stdout
                        and (d.get("logs") or {}).get("stderr") == logs.stderr)


# -- building the job as the engine gets it ---------------------------------------------------

def job_run(store: Store, services: EdpServices, doc: Doc) -> JobRun:
    """The job with its binaries fetched and its data sources' URLs and credentials."""
    template = resources.load(store, Kind.JOB_TEMPLATE, doc["job_template_id"]).doc
    if template is None or template[META].get("deleted"):
        raise JobInvalid(f"job template {doc['job_template_id']} is gone")

    def files(ids: list[str]) -> list[JobFile]:
        found = []
        for binary_id in ids:
            binary = resources.load(store, Kind.JOB_BINARY, binary_id).doc
            if binary is None or binary[META].get("deleted"):
                raise JobInvalid(f"job binary {binary_id} is gone")
            extra = open_secret_field(store, Kind.JOB_BINARY, binary)
            found.append(JobFile(binary["name"], services.fetch_binary(binary, extra)))
        return found

    urls: dict[str, str] = dict(doc.get("data_source_urls") or {})
    sources: dict[str, DataSourceAccess] = {}
    on_nodes: dict[str, str] = {}
    for source_id, url in urls.items():
        source = resources.load(store, Kind.DATA_SOURCE, source_id).doc
        if source is None or source[META].get("deleted"):
            raise JobInvalid(f"data source {source_id} is gone")
        credentials = open_secret_field(store, Kind.DATA_SOURCE, source) or {}
        node_url = services.node_url(doc["cluster_id"], doc["project_id"], url)
        if node_url != url:
            on_nodes[url] = node_url
        sources[source_id] = DataSourceAccess(node_url, source["type"], {
            str(k): _text(v) for k, v in credentials.items()})
    configs = doc.get("job_configs") or {}
    args = [str(a) for a in configs.get("args") or []]
    for url, node_url in on_nodes.items():
        args = [a.replace(url, node_url) for a in args]
    return JobRun(
        job_id=doc["id"], job_type=template["type"],
        mains=files(list(template.get("mains") or [])),
        libs=files(list(template.get("libs") or [])),
        configs=open_job_configs(store, doc["id"], dict(configs.get("configs") or {})),
        params=dict(configs.get("params") or {}),
        args=args,
        input=sources.get(doc.get("input_id") or ""),
        output=sources.get(doc.get("output_id") or ""),
        data_sources=list(sources.values()))


def _text(value: Any) -> str:
    """A credential's value as text (a boolean as ``true``/``false``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


@workflow_type(RUN_JOB)
def run_job(params: dict[str, Any]) -> Flow:
    flow = Flow(rollback_on_cancel=False)
    args = {"job_id": params["job_id"], "job_type": params["job_type"]}
    flow.add("await", AwaitCluster(args))
    flow.add("submit", Submit(args), requires=["await"])
    flow.add("follow", Follow(args), requires=["submit"])
    return flow
