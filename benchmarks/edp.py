"""EDP: how fast a job gets RUNNING, how many jobs engines follow at once, and a Spark job
through sahara-es against a bare ``spark-submit`` of the same job on the same cluster.

    python benchmarks/edp.py [--json] [--shell-jobs 200] [--spark-runs 3] [--skip-spark]
                             [--store sqlite|cassandra] [--job-poll-interval 0.2]

The v2 API runs in this process (``ApiConfig(engines=True)``, no engine of its own); the
engines are real ``sahara-es engine`` processes (``--job-poll-interval``, 0.2 s by default,
and otherwise their defaults: ``--concurrency 8 --max-workflows 64 --project-share 0.5``),
on a fresh store (a new SQLite file; with ``--store cassandra`` the keyspace
``sahara_es_bench_edp``, dropped first), and local nodes (an sshd each on its own loopback
address). Job binaries are in the test Swift (``tools/swift start`` if it is not running).

1. Shell: a 1-node ``fake`` cluster (provisioned by the first engine). ``--shell-jobs``
   Shell jobs (``echo $1``, one template, one binary in Swift) are POSTed one after another
   as fast as the API answers, then followed until every one ended. For each job,
   submit->RUNNING is its record's ``start_time`` (when the engine recorded it RUNNING)
   minus the time its POST was sent; ``all_done_s`` is the last job's ``end_time`` minus the
   first POST; ``jobs_per_s`` is the jobs over ``all_done_s``; ``max_running_at_once`` the
   most jobs between their RUNNING and their end at one instant (from the records). With 1
   engine, then with a second engine process started beside the first; then the same two
   again with the engines pinned (``taskset``): the first on CPU 0, the second on CPU 1 (this
   process, the API and the client, unpinned).
2. Spark: a Spark cluster (1 master on ``local.medium``, 1 worker on ``local.small``,
   ``Worker memory`` 512m), one engine. A PySpark job (a sum over ``sc.parallelize``, its
   result printed) runs ``--spark-runs`` times through the API (ours: POST -> SUCCEEDED seen
   by polling the job every 0.2 s; and from the record, ``end_time`` - POST) and as many
   times as a bare ``spark-submit --master spark://<master>:7077 --deploy-mode client`` of
   the same file over SSH on the master's node, as the node's user (the command's wall
   time, seen from here), interleaved: ours, bare, ours, bare... ``ratio_ours_over_spark_
   submit`` is the median of ours over the median of bare (goal: at most 1.2).

Every cluster is deleted at the end; no node is left.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask.testing import FlaskClient
from rich.table import Table

from benchmarks.common import fresh_store, output, print_notes, scenario_parser, wide_console
from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import app_for
from sahara_es.edp.storage import StoragePolicy, policy_from_env, put_object
from sahara_es.engine.engine import WORKFLOW_PREFIX
from sahara_es.infra.base import HostInventory
from sahara_es.infra.local import LocalProvider
from sahara_es.infra.quotas import QuotaLimits
from sahara_es.infra.ssh import Node
from sahara_es.plugins.spark import spark_version
from sahara_es.provisioning.services import (
    ProvisioningServices,
    build_services,
    provisioning_services,
)
from sahara_es.store import Store
from tests.clouds import create_fake_cluster, show_cluster
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.factories import CASSANDRA_HOST
from tests.integration.conftest import swift_env
from tests.nodes import node_root, remove_node_root

ROOT = Path(__file__).resolve().parent.parent
SWIFT = ROOT / "tools" / "swift"
KEYSPACE = "sahara_es_bench_edp"
CASSANDRA_URL = f"cassandra://{CASSANDRA_HOST}:9042/{KEYSPACE}"
HOSTS = 2  # of 8 vCPUs and 16 GB
QUOTA = QuotaLimits(instances=20, cores=64, ram_mb=64 * 1024)
TIMEOUT = float(os.environ.get("SAHARA_ES_BENCH_TIMEOUT", "600"))
POLL = 0.2
FINAL = ("SUCCEEDED", "FAILED", "KILLED")
SHELL_SCRIPT = "echo $1\n"
PYSPARK_JOB = """\
from pyspark import SparkContext

sc = SparkContext(appName="bench-sum")
total = sc.parallelize(range(1, 100001), 4).map(lambda x: x * 2).sum()
print("sum", total)
sc.stop()
"""
PHASES = (("1_engine", 1, False), ("2_engines", 2, False),
          ("1_engine_pinned", 1, True), ("2_engines_pinned", 2, True))
"""(name, engine processes, pinned): the Shell part's phases, in the order they run."""


# -- the service ------------------------------------------------------------------------------

def swift_environment() -> dict[str, str]:
    """The test Swift's settings (``tools/swift env``), started first unless it runs."""
    if subprocess.run([str(SWIFT), "status"], capture_output=True).returncode != 0:
        started = subprocess.run([str(SWIFT), "start"], capture_output=True, text=True)
        if started.returncode != 0:
            raise SystemExit(f"tools/swift start failed:\n{started.stdout}{started.stderr}")
    return swift_env()


@dataclass
class Service:
    url: str
    store: Store
    client: FlaskClient
    services: ProvisioningServices
    provider: LocalProvider
    policy: StoragePolicy
    credentials: dict[str, str]
    data_dir: Path
    poll_interval: float
    project: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Project-Id": self.project}

    def engine(self, name: str) -> EngineProcess:
        engine = EngineProcess(self.url, f"edp-{name}-{uuid.uuid4().hex[:4]}", self.data_dir,
                               lease_ttl=10.0, concurrency=8, sweep_interval=0.1,
                               extra=("--data-dir", str(self.data_dir), "--nodes-dir",
                                      str(self.data_dir), "--hosts", str(HOSTS),
                                      "--job-poll-interval", str(self.poll_interval)))
        wait_until(lambda: engine_alive(self.store, engine.engine_id), timeout=120, poll=0.1)
        return engine

    # -- the API ----------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(f"/v2/{path}", headers=self.headers, json=body)
        if answer.status_code != 202:
            raise AssertionError(f"POST /v2/{path}: {answer.status_code} {answer.get_json()}")
        found: dict[str, Any] = answer.get_json()
        return found

    def template(self, name: str, data: bytes, job_type: str) -> str:
        url = f"swift://edpbench{uuid.uuid4().hex[:8]}/{name}"
        put_object(url, data, self.credentials, self.policy)
        binary = self.post("job-binaries", {"name": f"{uuid.uuid4().hex[:6]}-{name}",
                                            "url": url, "extra": self.credentials})
        return str(self.post("job-templates", {
            "name": f"t{uuid.uuid4().hex[:8]}", "type": job_type,
            "mains": [binary["job_binary"]["id"]]})["job_template"]["id"])

    def submit(self, cluster_id: str, template_id: str, args: list[str]) -> str:
        return str(self.post("jobs", {"cluster_id": cluster_id, "job_template_id": template_id,
                                      "job_configs": {"args": args}})["job"]["id"])

    def jobs(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        marker = ""
        while True:
            query = f"/v2/jobs?limit=1000{f'&marker={marker}' if marker else ''}"
            answer = self.client.get(query, headers=self.headers).get_json()
            page = answer["jobs"]
            found.update((job["id"], job) for job in page)
            marker = (answer.get("markers") or {}).get("next") or ""
            if not page or not marker:
                return found

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.get(f"/v2/jobs/{job_id}",
                                              headers=self.headers).get_json()["job"]
        return job

    def cluster_status(self, cluster_id: str) -> str | None:
        cluster = show_cluster(self.client, self.project, cluster_id)
        if cluster is not None and cluster["status"] == "Error":
            raise AssertionError(f"cluster {cluster_id}: {cluster['status_description']}")
        return None if cluster is None else str(cluster["status"])

    def wait_active(self, cluster_id: str) -> float:
        return timed(lambda: self.cluster_status(cluster_id) == "Active",
                     f"cluster {cluster_id} Active", poll=0.5)

    def delete_cluster(self, cluster_id: str) -> None:
        answer = self.client.delete(f"/v2/clusters/{cluster_id}", headers=self.headers)
        assert answer.status_code == 204, answer.get_json()
        timed(lambda: self.cluster_status(cluster_id) is None, f"deleting {cluster_id}",
              poll=0.5)


@contextlib.contextmanager
def service(backend: str, folder: Path, poll_interval: float) -> Iterator[Service]:
    swift = swift_environment()
    os.environ.update(swift)  # the engine processes read the storage policy from it
    with fresh_store(backend, KEYSPACE, CASSANDRA_URL, folder / "edp.db") as (url, store):
        data_dir = node_root()
        hosts = [HostInventory(f"local-host-{i}", 8, 16384) for i in range(1, HOSTS + 1)]
        policy = policy_from_env()
        services = provisioning_services(build_services(
            store, root=data_dir, hosts=hosts, quota_defaults=QUOTA, storage_policy=policy))
        app = app_for(ApiConfig(auth="noauth", plugins=["spark", "fake"], engines=True),
                      store=store, quota=services.quota)
        provider = services.provider
        assert isinstance(provider, LocalProvider)
        try:
            yield Service(url, store, app.test_client(), services, provider, policy,
                          {"user": swift["SAHARA_ES_SWIFT_USER"],
                           "password": swift["SAHARA_ES_SWIFT_KEY"]},
                          data_dir, poll_interval, f"edp-{uuid.uuid4().hex[:6]}")
        finally:
            stop_app(app)
            for instance in provider.list_instances():  # after a failure: leave no sshd
                provider.delete_instance(instance.name)
            services.ssh.close()
            remove_node_root(data_dir)


@contextlib.contextmanager
def engine_logs_on_failure(engines: list[EngineProcess]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        for engine in engines:
            tail = engine.log.read_text(errors="replace").splitlines()[-40:]
            print(f"--- {engine.engine_id}:", *tail, sep="\n", file=sys.stderr)
        raise


def stop(engine: EngineProcess) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        engine.stop(60)
    engine.__exit__()


def pin(engine: EngineProcess, cpus: str | None) -> None:
    """Every thread of the engine on ``cpus`` (``taskset -a``), or on all CPUs again."""
    cpus = cpus or f"0-{(os.cpu_count() or 1) - 1}"
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(engine.process.pid)], check=True,
                   capture_output=True)


def timed(condition: Callable[[], bool], what: str, poll: float = POLL) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > TIMEOUT:
            raise AssertionError(f"{what}: not within {TIMEOUT:g} s")
        time.sleep(poll)
    return time.perf_counter() - started


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


# -- 1. Shell ---------------------------------------------------------------------------------

def shell_round(svc: Service, cluster_id: str, template_id: str, count: int,
                engine_ids: list[str]) -> dict[str, Any]:
    posted: dict[str, float] = {}
    first = time.time()
    for i in range(count):
        sent = time.time()
        posted[svc.submit(cluster_id, template_id, [str(i)])] = sent
    submitted = time.time() - first
    jobs: dict[str, dict[str, Any]] = {}

    def all_ended() -> bool:
        jobs.update({k: v for k, v in svc.jobs().items() if k in posted})
        return len(jobs) == count and all(j["info"]["status"] in FINAL for j in jobs.values())

    timed(all_ended, f"{count} Shell jobs ended")
    to_running = [epoch(jobs[j]["start_time"]) - sent for j, sent in posted.items()
                  if jobs[j].get("start_time")]
    ends = [epoch(j["end_time"]) for j in jobs.values()]
    all_done = max(ends) - first
    slowest = max((j for j in posted if jobs[j].get("start_time")),
                  key=lambda j: epoch(jobs[j]["start_time"]) - posted[j])
    by_engine = {engine: 0 for engine in engine_ids}
    for job_id in posted:
        owner = follower(svc.store, job_id)
        by_engine[owner] = by_engine.get(owner, 0) + 1
    return {
        "submit_per_s": count / submitted,
        "submit_to_running_p50_s": percentile(to_running, 0.50),
        "submit_to_running_p99_s": percentile(to_running, 0.99),
        "submit_to_running_max_s": max(to_running),
        "all_done_s": all_done,
        "jobs_per_s": count / all_done,
        "max_running_at_once": most_at_once(
            [(epoch(j["start_time"]), epoch(j["end_time"])) for j in jobs.values()
             if j.get("start_time")]),
        "succeeded": sum(j["info"]["status"] == "SUCCEEDED" for j in jobs.values()),
        "failures": [f"{j['id']}: {j['info']['status']}"
                     f" {str(j['info'].get('status_description', ''))[:300]}"
                     for j in jobs.values() if j["info"]["status"] != "SUCCEEDED"][:5],
        "jobs_by_engine": sorted(by_engine.values(), reverse=True),
        "slowest_to_running": timeline(svc.store, slowest, posted[slowest]),
    }


def timeline(store: Store, job_id: str, sent: float) -> list[str]:
    """The job's workflow as ``seconds after the POST: event (engine)``: where the slowest
    job to get RUNNING waited."""
    return [f"{event.metadata.occurred_at.timestamp() - sent:.2f}: {event.type}"
            + (f" {event.data['task_id']}" if "task_id" in event.data else "")
            + f" ({event.metadata.engine_id or '-'})"
            + (f" {str(event.data['error'])[:300]!r}" if "error" in event.data else "")
            for event in store.read(f"{WORKFLOW_PREFIX}job-{job_id}")]


def follower(store: Store, job_id: str) -> str:
    """The engine that owned the job's workflow last (``WorkflowOwned``)."""
    owner = "?"
    for event in store.read(f"{WORKFLOW_PREFIX}job-{job_id}"):
        if event.type == "WorkflowOwned":
            owner = str(event.data.get("engine", "?"))
    return owner


def shell_part(svc: Service, count: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    first = svc.engine("a")
    engines = [first]
    with engine_logs_on_failure(engines):
        try:
            cluster_id = create_fake_cluster(svc.client, svc.project)
            figures["shell.cluster_active_s"] = svc.wait_active(cluster_id)
            template_id = svc.template("echo.sh", SHELL_SCRIPT.encode(), "Shell")
            for name, count_engines, pinned in PHASES:
                pin(first, "0" if pinned else None)
                second = svc.engine("b") if count_engines == 2 else None
                if second is not None:
                    engines.append(second)
                    pin(second, "1" if pinned else None)
                try:
                    ids = [e.engine_id for e in (first, second) if e is not None]
                    measured = shell_round(svc, cluster_id, template_id, count, ids)
                finally:
                    if second is not None:
                        stop(second)
                for key, value in measured.items():
                    figures[f"shell.{key}.{name}"] = value
            svc.delete_cluster(cluster_id)
        finally:
            stop(first)
    for suffix in ("", "_pinned"):
        figures[f"shell.ratio_2_over_1_engine{suffix}"] = (
            figures[f"shell.jobs_per_s.2_engines{suffix}"]
            / figures[f"shell.jobs_per_s.1_engine{suffix}"])
    return figures


# -- 2. Spark ---------------------------------------------------------------------------------

def create_spark_cluster(svc: Service) -> str:
    answer = svc.post("clusters", {
        "name": f"spark-{uuid.uuid4().hex[:6]}", "plugin_name": "spark",
        "plugin_version": spark_version(),
        "node_groups": [
            {"name": "master", "flavor_id": "local.medium", "node_processes": ["master"],
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": ["worker"],
             "count": 1}],
        "cluster_configs": {"Spark": {"Worker memory": "512m", "Daemon memory": "256m"}}})
    return str(answer["cluster"]["id"])


def master_node(svc: Service, cluster_id: str) -> Node:
    cluster = show_cluster(svc.client, svc.project, cluster_id) or {}
    name = next(i["instance_name"] for g in cluster["node_groups"]
                if "master" in g["node_processes"] for i in g["instances"])
    instance = svc.provider.get_instance(name)
    assert instance is not None, name
    return Node.of(instance)


def bare_command(node: Node, folder: str) -> str:
    """``spark-submit`` of ``job.py`` in ``folder`` as the job engine runs it: client deploy
    mode against the master, the same Python for the driver and the executors, the same
    executor memory (``sahara_es/edp/spark.py``), without the launcher around it."""
    env = {"SPARK_LOCAL_IP": node.address, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "PYTHONUNBUFFERED": "1"}
    words = ["--master", f"spark://{node.address}:7077", "--deploy-mode", "client",
             "--name", f"bare-{uuid.uuid4().hex[:6]}", "--conf", "spark.executor.memory=512m",
             "--conf", f"spark.pyspark.python={sys.executable}",
             "--conf", f"spark.pyspark.driver.python={sys.executable}", "job.py"]
    return (f"cd {shlex.quote(folder)} && "
            + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
            + ' "$HOME/spark/dist/bin/spark-submit" ' + " ".join(map(shlex.quote, words)))


def ours(svc: Service, cluster_id: str, template_id: str) -> tuple[float, float, float]:
    """POST -> SUCCEEDED seen by polling; POST -> end_time and POST -> start_time."""
    sent = time.time()
    job_id = svc.submit(cluster_id, template_id, [])
    timed(lambda: svc.job(job_id)["info"]["status"] in FINAL, f"Spark job {job_id}")
    polled = time.time() - sent
    job = svc.job(job_id)
    if job["info"]["status"] != "SUCCEEDED":
        raise AssertionError(f"Spark job {job_id}: {job['info']}")
    return polled, epoch(job["end_time"]) - sent, epoch(job["start_time"]) - sent


def spark_part(svc: Service, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    engine = svc.engine("spark")
    with engine_logs_on_failure([engine]):
        try:
            cluster_id = create_spark_cluster(svc)
            figures["spark.cluster_active_s"] = svc.wait_active(cluster_id)
            template_id = svc.template("sum.py", PYSPARK_JOB.encode(), "Spark")
            node = master_node(svc, cluster_id)
            pool = svc.services.ssh.pool(cluster_id)
            folder = f"edp-bench-{uuid.uuid4().hex[:6]}"
            pool.run(node, f"mkdir -p {folder} && cat > {folder}/job.py", stdin=PYSPARK_JOB)
            polled: list[float] = []
            recorded: list[float] = []
            to_running: list[float] = []
            bare: list[float] = []
            for _ in range(runs):
                p, r, s = ours(svc, cluster_id, template_id)
                polled.append(p)
                recorded.append(r)
                to_running.append(s)
                started = time.time()
                result = pool.run(node, bare_command(node, folder), timeout=TIMEOUT)
                bare.append(time.time() - started)
                if "sum 10000100000" not in result.stdout:
                    raise AssertionError(f"bare spark-submit: {result.stdout[-2000:]}"
                                         f" {result.stderr[-2000:]}")
            pool.run(node, f"rm -rf {folder}")
            svc.delete_cluster(cluster_id)
        finally:
            stop(engine)
    figures.update({
        "spark.ours_runs_s": polled, "spark.ours_record_runs_s": recorded,
        "spark.bare_runs_s": bare, "spark.submit_to_running_runs_s": to_running,
        "spark.ours_median_s": statistics.median(polled),
        "spark.ours_record_median_s": statistics.median(recorded),
        "spark.bare_median_s": statistics.median(bare),
        "spark.submit_to_running_median_s": statistics.median(to_running),
    })
    figures["spark.ratio_ours_over_spark_submit"] = (figures["spark.ours_median_s"]
                                                     / figures["spark.bare_median_s"])
    figures["spark.ratio_record_over_spark_submit"] = (figures["spark.ours_record_median_s"]
                                                       / figures["spark.bare_median_s"])
    return figures


# -- output -----------------------------------------------------------------------------------

def show_tables(figures: dict[str, Any], notes: list[str]) -> None:
    console = wide_console()
    table = Table(title=f"{figures['shell_jobs']} Shell jobs (echo $1) on a 1-node fake"
                        f" cluster, POSTed one after another; engines --job-poll-interval"
                        f" {figures['job_poll_interval_s']:g}")
    for column in ("engines", "POST/s", "to RUNNING p50 s", "p99 s", "max s", "all done s",
                   "jobs/s", "most at once", "succeeded", "jobs by engine"):
        table.add_column(column, justify="left" if column == "engines" else "right")
    for name, _, _ in PHASES:
        def f(key: str, fmt: str = ".2f", name: str = name) -> str:
            return format(figures[f"shell.{key}.{name}"], fmt)

        table.add_row(name.replace("_", " "), f("submit_per_s", ".1f"),
                      f("submit_to_running_p50_s"), f("submit_to_running_p99_s"),
                      f("submit_to_running_max_s"), f("all_done_s"), f("jobs_per_s"),
                      f("max_running_at_once", "d"), f("succeeded", "d"),
                      " / ".join(map(str, figures[f"shell.jobs_by_engine.{name}"])))
    console.print(table)
    if "spark.ratio_ours_over_spark_submit" in figures:
        spark = Table(title=f"a PySpark sum, {figures['spark_runs']} runs each, interleaved:"
                            " through sahara-es against a bare spark-submit on the master")
        for column in ("run", "median s", "runs s"):
            spark.add_column(column, justify="left" if column == "run" else "right")
        for label, key in (("ours: POST -> SUCCEEDED (polled)", "ours"),
                           ("ours: POST -> end_time (record)", "ours_record"),
                           ("bare spark-submit over SSH", "bare")):
            spark.add_row(label, f"{figures[f'spark.{key}_median_s']:.2f}",
                          ", ".join(f"{v:.2f}" for v in figures[f"spark.{key}_runs_s"]))
        console.print(spark)
    print_notes(console, notes)


def arguments() -> argparse.Namespace:
    parser = scenario_parser(__doc__, sqlite_only=False)
    parser.add_argument("--shell-jobs", type=int, default=200,
                        help="Shell jobs submitted in each phase")
    parser.add_argument("--spark-runs", type=int, default=3,
                        help="runs of the Spark job, each way")
    parser.add_argument("--skip-spark", action="store_true", help="the Shell part only")
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite",
                        help="a fresh SQLite file, or the keyspace " + KEYSPACE)
    parser.add_argument("--job-poll-interval", type=float, default=0.2,
                        help="the engines' --job-poll-interval")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    figures: dict[str, Any] = {"shell_jobs": args.shell_jobs, "spark_runs": args.spark_runs,
                               "job_poll_interval_s": args.job_poll_interval,
                               "store": args.store, "cpus": os.cpu_count(),
                               "engine_concurrency": 8, "engine_max_workflows": 64,
                               "engine_project_share": 0.5}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edpbench-") as folder_name, \
            service(args.store, Path(folder_name), args.job_poll_interval) as svc:
        figures["store_described"] = svc.store.describe()
        figures.update(shell_part(svc, args.shell_jobs))
        if not args.skip_spark:
            figures.update(spark_part(svc, args.spark_runs))
    figures["submit_to_running_p99_s"] = figures["shell.submit_to_running_p99_s.1_engine"]
    figures["seconds"] = time.monotonic() - started
    notes = [
        "to RUNNING: the job's start_time (recorded by the engine) - when its POST was sent;"
        " all done: the last end_time - the first POST; jobs/s = jobs / all done; most at"
        " once: the most jobs between RUNNING and their end at one instant (records);"
        " jobs by engine: whose engine owned each job's workflow",
        "engines: real sahara-es engine processes (--concurrency 8, --max-workflows 64,"
        " --project-share 0.5: one project's jobs hold at most 32 of an engine's workflows"
        " and 4 of its 8 task slots; a job's submit takes one, its await and follow none);"
        " the API and the client in this process; pinned: the first engine on CPU 0, the"
        " second on CPU 1 (taskset -a), this process unpinned",
        f"jobs/s, 2 engines over 1: {figures['shell.ratio_2_over_1_engine']:.2f}"
        f" ({figures['shell.ratio_2_over_1_engine_pinned']:.2f} pinned)",
    ]
    for name, _, _ in PHASES:
        for failure in figures[f"shell.failures.{name}"]:
            notes.append(f"{name}: not SUCCEEDED: {failure}")
        if (figures[f"shell.submit_to_running_max_s.{name}"]
                > 2 * figures[f"shell.submit_to_running_p99_s.{name}"]):
            notes.append(f"{name}: a straggler; its workflow (s after its POST): "
                         + "; ".join(figures[f"shell.slowest_to_running.{name}"]))
    if "spark.ratio_ours_over_spark_submit" in figures:
        notes.append(f"spark: ratio_ours_over_spark_submit ="
                     f" {figures['spark.ratio_ours_over_spark_submit']:.2f} (goal <= 1.2),"
                     f" from the records {figures['spark.ratio_record_over_spark_submit']:.2f}")
    notes.append(f"whole run {figures['seconds']:.0f} s on {os.cpu_count()} CPUs,"
                 f" store {args.store}")
    output(figures, args.json, lambda: show_tables(figures, notes))


if __name__ == "__main__":
    main()
