"""The job manager (``edp.manager``) on a real engine and store, with a scripted job engine
standing in for the cluster's (the real job engines are tested on real clusters in
``test_edp_jobs.py``): a job waits for its cluster to be Active, is submitted once, is
followed to its end, is cancelled (and a cancel that cannot complete is reported), is
killed with its cluster, and gives back what it held. On both stores."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sahara_es.commands import edp, resources
from sahara_es.commands.caller import SYSTEM, Caller
from sahara_es.commands.errors import InUse
from sahara_es.edp.base import EngineState, JobEngine, JobInvalid, JobLogs, JobRun, JobState
from sahara_es.edp.manager import EDP, JobLimits, workflow_id
from sahara_es.engine import Engine, EngineConfig, load_workflow
from sahara_es.engine.handoff import leave_alone
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc, Kind
from sahara_es.plugins.catalog import PluginCatalog, load_plugins
from sahara_es.provisioning.requests import CLUSTER_REQUESTS
from sahara_es.store import Store
from tests.engines import wait_until


@dataclass
class Run:
    job: JobRun
    submissions: int = 1
    state: EngineState = EngineState.RUNNING
    cancels: int = 0


@dataclass
class ScriptedJobs(JobEngine):
    """Jobs that do what their ``script`` config says: ``succeed``/``fail`` after
    ``seconds``, ``run`` until cancelled, or ``stubborn`` (a cancel never lands)."""

    runs: dict[str, Run] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: dict[str, float] = field(default_factory=dict)

    def get_supported_job_types(self) -> list[str]:
        return ["Shell"]

    def run_job(self, job: JobRun) -> str:
        with self.lock:
            if job.job_id in self.runs:
                return f"scripted/{job.job_id}"
            self.runs[job.job_id] = Run(job, submissions=1)
            self.started[job.job_id] = time.monotonic()
        return f"scripted/{job.job_id}"

    def _run(self, engine_job_id: str) -> Run:
        return self.runs[engine_job_id.split("/", 1)[1]]

    def get_job_status(self, engine_job_id: str) -> JobState:
        run = self._run(engine_job_id)
        script = str(run.job.configs.get("script", "succeed"))
        elapsed = time.monotonic() - self.started[run.job.job_id]
        if run.state is EngineState.RUNNING and script in ("succeed", "fail") \
                and elapsed >= float(run.job.configs.get("seconds", 0.3)):
            run.state = EngineState.SUCCEEDED if script == "succeed" else EngineState.FAILED
        if run.state is EngineState.FAILED:
            return JobState(run.state, "exit code 3: it broke", 3)
        return JobState(run.state, exit_code=0 if run.state.final else None)

    def cancel_job(self, engine_job_id: str, timeout: float) -> JobState:
        run = self._run(engine_job_id)
        run.cancels += 1
        if run.job.configs.get("script") != "stubborn" and not run.state.final:
            run.state = EngineState.KILLED
        return JobState(run.state)

    def get_job_logs(self, engine_job_id: str, tail_bytes: int) -> JobLogs:
        run = self._run(engine_job_id)
        return JobLogs(f"output of {run.job.job_id}\n", "")


@dataclass
class Services:
    jobs: ScriptedJobs
    limits: JobLimits = field(default_factory=lambda: JobLimits(
        poll_interval=0.1, cancel_timeout=0.5, log_interval=0.2))

    def job_engine(self, cluster_id: str, job_type: str) -> JobEngine:
        if job_type not in self.jobs.get_supported_job_types():
            raise JobInvalid(f"this cluster runs Shell jobs, not {job_type}")
        return self.jobs

    def fetch_binary(self, binary: Doc, extra: Doc | None) -> bytes:
        return b"echo hello\n"

    def node_url(self, cluster_id: str, project_id: str, url: str) -> str:
        return url


@dataclass
class World:
    store: Store
    caller: Caller
    jobs: ScriptedJobs
    catalog: PluginCatalog
    template_id: str
    engine: Engine

    def another_engine(self) -> Engine:
        return Engine(self.store, EngineConfig(concurrency=2, lease_ttl=2.0,
                                               sweep_interval=0.05),
                      services={EDP: Services(self.jobs)}).start()

    def cluster(self, status: str = "Active") -> str:
        """A fake cluster no engine provisions, brought to ``status`` by hand."""
        doc = resources.create(self.store, Kind.CLUSTER, self.caller, {
            "name": f"c{uuid.uuid4().hex[:8]}", "plugin_name": "fake",
            "plugin_version": "0.1", "status": "Validating", "node_groups": []})
        leave_alone(self.store, doc["id"])
        path = {"Validating": [], "Spawning": ["InfraUpdating", "Spawning"],
                "Active": ["InfraUpdating", "Spawning", "Configuring", "Starting", "Active"],
                "Error": ["InfraUpdating", "Error"]}[status]
        for step in path:
            self.set_status(doc["id"], step)
        return str(doc["id"])

    def set_status(self, cluster_id: str, status: str) -> None:
        aggregate = resources.load(self.store, Kind.CLUSTER, cluster_id)
        resources.append(self.store, aggregate, [ev.ClusterStatusChanged(status, "")], SYSTEM)

    def run(self, cluster_id: str, **configs: Any) -> str:
        doc = edp.run_job(self.store, self.caller, self.catalog, {
            "cluster_id": cluster_id, "job_template_id": self.template_id,
            "job_configs": {"configs": configs}})
        return str(doc["id"])

    def job(self, job_id: str) -> Doc:
        doc = resources.load(self.store, Kind.JOB, job_id).doc
        assert doc is not None
        return doc

    def status(self, job_id: str) -> str:
        return str(self.job(job_id)["info"]["status"])

    def ends(self, job_id: str, *statuses: str, timeout: float = 30) -> Doc:
        wait_until(lambda: self.status(job_id) in statuses, timeout=timeout, poll=0.05)
        return self.job(job_id)


@pytest.fixture
def world(store: Store) -> Iterator[World]:
    jobs = ScriptedJobs()
    caller = Caller(project_id=f"p{uuid.uuid4().hex[:8]}")
    binary = resources.create(store, Kind.JOB_BINARY, caller, {
        "name": f"b{uuid.uuid4().hex[:8]}", "url": "internal-db://script"})
    template = edp.create_job_template(store, caller, _catalog(), {
        "name": f"t{uuid.uuid4().hex[:8]}", "type": "Shell", "mains": [binary["id"]]})
    engine = Engine(store, EngineConfig(concurrency=2, lease_ttl=2.0, sweep_interval=0.05),
                    services={EDP: Services(jobs)}, handoff=CLUSTER_REQUESTS).start()
    try:
        yield World(store, caller, jobs, _catalog(), template["id"], engine)
    finally:
        engine.stop(5)


def _catalog() -> PluginCatalog:
    return PluginCatalog(load_plugins(["fake"]), {})


def test_a_job_is_submitted_once_followed_to_its_end_and_keeps_its_output(
        world: World) -> None:
    job_id = world.run(world.cluster())
    doc = world.ends(job_id, "SUCCEEDED")
    assert doc["engine_job_id"] == f"scripted/{job_id}"
    assert doc["start_time"] and doc["end_time"]
    assert world.jobs.runs[job_id].submissions == 1
    assert doc["logs"]["stdout"] == f"output of {job_id}\n"
    wait_until(lambda: load_workflow(world.store, workflow_id(job_id)).status.value
               == "succeeded", timeout=10)


def test_a_failed_job_ends_failed_with_the_reason(world: World) -> None:
    doc = world.ends(world.run(world.cluster(), script="fail"), "FAILED")
    assert doc["info"]["status_description"] == "exit code 3: it broke"


def test_a_job_waits_for_its_cluster_and_runs_once_it_is_active(world: World) -> None:
    cluster_id = world.cluster("Spawning")
    job_id = world.run(cluster_id)
    time.sleep(0.5)
    assert world.status(job_id) == "PENDING" and job_id not in world.jobs.runs
    for step in ("Configuring", "Starting", "Active"):
        world.set_status(cluster_id, step)
    world.ends(job_id, "SUCCEEDED")


def test_a_job_whose_cluster_fails_first_fails_saying_so(world: World) -> None:
    cluster_id = world.cluster("Spawning")
    job_id = world.run(cluster_id)
    world.set_status(cluster_id, "Error")
    doc = world.ends(job_id, "FAILED")
    assert "its cluster is in Error" in doc["info"]["status_description"]
    assert job_id not in world.jobs.runs


def test_several_jobs_run_at_once_on_one_cluster_beyond_the_engine_slots(
        world: World) -> None:
    cluster_id = world.cluster()
    ids = [world.run(cluster_id, seconds=1.5) for _ in range(6)]  # 2 slots only
    wait_until(lambda: all(world.status(i) == "RUNNING" for i in ids), timeout=30)
    for job_id in ids:
        world.ends(job_id, "SUCCEEDED")


def test_cancel_kills_a_running_job(world: World) -> None:
    job_id = world.run(world.cluster(), script="run")
    world.ends(job_id, "RUNNING")
    edp.cancel_job(world.store, world.caller, job_id)
    doc = world.ends(job_id, "KILLED")
    assert doc["info"]["status_description"] == "cancelled"
    assert world.jobs.runs[job_id].state is EngineState.KILLED


def test_a_cancel_that_cannot_complete_is_reported_and_the_job_followed_on(
        world: World) -> None:
    job_id = world.run(world.cluster(), script="stubborn")
    world.ends(job_id, "RUNNING")
    edp.cancel_job(world.store, world.caller, job_id)
    wait_until(lambda: "did not complete" in
               world.job(job_id)["info"].get("status_description", ""), timeout=30)
    assert world.status(job_id) == "RUNNING"
    types = [e.type for e in world.store.read(Kind.JOB.stream(job_id))]
    assert "JobCancelFailed" in types


def test_deleting_the_cluster_kills_its_jobs_and_frees_what_they_held(
        world: World) -> None:
    cluster_id = world.cluster()
    job_id = world.run(cluster_id, script="run")
    world.ends(job_id, "RUNNING")
    with pytest.raises(InUse):
        resources.delete(world.store, Kind.JOB_TEMPLATE, world.template_id, world.caller)
    world.set_status(cluster_id, "Deleting")
    doc = world.ends(job_id, "KILLED")
    assert "its cluster is being deleted" in doc["info"]["status_description"]
    wait_until(lambda: not world.job(job_id)["_meta"]["uses"], timeout=10)
    resources.delete(world.store, Kind.JOB_TEMPLATE, world.template_id, world.caller)


def test_a_job_cancelled_before_it_started_is_killed_without_running(world: World) -> None:
    cluster_id = world.cluster("Spawning")
    job_id = world.run(cluster_id)
    edp.cancel_job(world.store, world.caller, job_id)
    world.ends(job_id, "KILLED")
    assert job_id not in world.jobs.runs


def test_a_secret_in_a_job_s_configs_is_sealed_in_its_events_and_opened_for_its_engine(
        world: World) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    name = "fs.swift.service.sahara.password"
    job_id = world.run(world.cluster(), **{name: secret})
    world.ends(job_id, "SUCCEEDED")
    run = world.jobs.runs[job_id].job
    assert run.configs[name] == secret and secret in run.secrets()
    stored = [e.data for e in world.store.read(Kind.JOB.stream(job_id))]
    assert secret not in repr(stored)
    assert str(world.job(job_id)["job_configs"]["configs"][name]).startswith("sbx1:")


def test_a_stopping_engine_gives_the_jobs_it_follows_back_and_another_follows_them_on(
        world: World) -> None:
    job_id = world.run(world.cluster(), script="run")
    world.ends(job_id, "RUNNING")
    first = world.engine.engine_id
    # The launch task records RUNNING; the follow task starts after it, on the same engine:
    # stop that engine only once it follows the job.
    wait_until(lambda: any(
        e.type == "TaskStarted" and e.data.get("task_id") == "follow"
        and e.data.get("engine") == first
        for e in world.store.read(f"workflow-{workflow_id(job_id)}")), timeout=30)
    world.engine.stop(grace=60)  # its follow task gives the work back, failing nothing
    heir = world.another_engine()
    try:
        edp.cancel_job(world.store, world.caller, job_id)
        world.ends(job_id, "KILLED")
        wait_until(lambda: load_workflow(world.store, workflow_id(job_id)).status.value
                   == "succeeded", timeout=30)
    finally:
        heir.stop(5)
    events = list(world.store.read(f"workflow-{workflow_id(job_id)}"))
    follows = [(e.type, e.data.get("engine")) for e in events
               if e.data.get("task_id") == "follow"]
    assert ("TaskStarted", first) in follows and ("TaskSucceeded", heir.engine_id) in follows
    assert not any(kind == "TaskFailed" for kind, _ in follows)
    assert world.jobs.runs[job_id].submissions == 1
