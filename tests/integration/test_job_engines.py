"""The job engines on real clusters: a Spark cluster (1 master, 1 worker) and a Dask cluster
(1 scheduler, 1 worker) provisioned through the API on local nodes, once for the module;
the engines are built by hand from the clusters' nodes, as a plugin would build them.

Shell jobs (output, exit code, a failure's reason, one run however many submissions, a job
whose process vanished, secrets redacted from logs), a Java job from a class compiled here,
a Spark word count (on files of the node, and from Swift to S3 through S3A), a long Spark job
cancelled (no driver or executor left), a Dask sum.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sahara_es.edp.base import (
    DataSourceAccess,
    EngineState,
    JobEngine,
    JobFile,
    JobNode,
    JobRun,
    JobState,
)
from sahara_es.edp.dask import DaskJobEngine
from sahara_es.edp.java import JavaJobEngine
from sahara_es.edp.shell import ShellJobEngine
from sahara_es.edp.spark import SparkJobEngine
from sahara_es.edp.storage import list_objects, put_object
from sahara_es.infra.ssh import Node, SSHPool
from sahara_es.plugins.dask import dask_version
from sahara_es.plugins.spark import spark_version
from sahara_es.store import Store, open_store
from tests.clouds import Cloud, running_cloud
from tests.edp import processes_with
from tests.integration.conftest import SwiftStorage

pytestmark = pytest.mark.xdist_group("local-infra")

PROVISION_TIMEOUT = 420.0
JOB_TIMEOUT = 240.0


@dataclass
class RealCluster:
    cluster_id: str
    nodes: list[JobNode]
    pool: SSHPool

    def with_process(self, process: str) -> JobNode:
        return next(n for n in self.nodes if process in n.processes)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("jobs")
    store: Store = open_store(f"sqlite:///{root}/s.db", upgrade=True)
    try:
        with running_cloud(store, root, hosts=2) as running:
            yield running
    finally:
        store.close()


def create(cloud: Cloud, plugin: str, version: str, master: str) -> str:
    answer = cloud.client.post("/v2/clusters", headers=cloud.headers, json={
        "name": f"{plugin}-{uuid.uuid4().hex[:6]}", "plugin_name": plugin,
        "plugin_version": version,
        "node_groups": [
            {"name": "master", "flavor_id": "local.medium", "node_processes": [master],
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": ["worker"],
             "count": 1}]})
    assert answer.status_code == 202, answer.get_json()
    cluster_id: str = answer.get_json()["cluster"]["id"]
    return cluster_id


def active(cloud: Cloud, cluster_id: str) -> RealCluster:
    """The cluster once Active, its nodes as a plugin would hand them to a job engine."""
    deadline = time.monotonic() + PROVISION_TIMEOUT
    while True:
        view = cloud.client.get(f"/v2/clusters/{cluster_id}", headers=cloud.headers)
        cluster: dict[str, Any] = view.get_json()["cluster"]
        if cluster["status"] in ("Active", "Error"):
            break
        assert time.monotonic() < deadline, f"still {cluster['status']}"
        time.sleep(0.5)
    assert cluster["status"] == "Active", cluster["status_description"]
    nodes = []
    for group in cluster["node_groups"]:
        for item in group["instances"]:
            instance = cloud.services.provider.get_instance(item["instance_name"])
            assert instance is not None
            nodes.append(JobNode(instance.name, list(group["node_processes"]),
                                 Node.of(instance), str(instance.extra.get("home", ""))))
    nodes.sort(key=lambda n: "master" not in n.processes and "scheduler" not in n.processes)
    return RealCluster(cluster_id, nodes, cloud.services.ssh.pool(cluster_id))


@pytest.fixture(scope="module")
def clusters(cloud: Cloud) -> dict[str, str]:
    """Both clusters asked for at once: they are provisioned side by side."""
    return {"spark": create(cloud, "spark", spark_version(), "master"),
            "dask": create(cloud, "dask", dask_version(), "scheduler")}


@pytest.fixture(scope="module")
def spark(cloud: Cloud, clusters: dict[str, str]) -> RealCluster:
    return active(cloud, clusters["spark"])


@pytest.fixture(scope="module")
def dask(cloud: Cloud, clusters: dict[str, str]) -> RealCluster:
    return active(cloud, clusters["dask"])


def spark_engine(cluster: RealCluster) -> SparkJobEngine:
    master = cluster.with_process("master")
    return SparkJobEngine(cluster.pool, cluster.nodes,
                          master_url=f"spark://{master.ssh.address}:7077",
                          spark_home="$HOME/spark/dist")


def job(job_type: str, *, mains: list[JobFile] | None = None,
        libs: list[JobFile] | None = None, **fields: Any) -> JobRun:
    return JobRun(str(uuid.uuid4()), job_type, mains or [], libs or [], **fields)


def until_final(engine: JobEngine, engine_job_id: str,
                timeout: float = JOB_TIMEOUT) -> JobState:
    deadline = time.monotonic() + timeout
    while True:
        state = engine.get_job_status(engine_job_id)
        if state.state.final:
            return state
        assert time.monotonic() < deadline, f"still {state}"
        time.sleep(0.5)


# -- Shell ----------------------------------------------------------------------------------


def test_a_shell_job_runs_with_its_params_args_and_libs(spark: RealCluster) -> None:
    engine = ShellJobEngine(spark.pool, spark.nodes)
    script = b'. ./lib.sh; echo "$GREETING $1 $(helper)"; echo "to stderr" >&2; pwd\n'
    run = job("Shell", mains=[JobFile("main.sh", script)],
              libs=[JobFile("lib.sh", b"helper() { echo from-lib; }\n")],
              params={"GREETING": "hello; $(touch pwned)"}, args=["it's 'me'"])
    engine_job_id = engine.run_job(run)
    master = spark.with_process("master")
    assert engine_job_id == f"{master.name}/{run.job_id}"

    state = until_final(engine, engine_job_id)
    assert state.state is EngineState.SUCCEEDED, state
    logs = engine.get_job_logs(engine_job_id, 4096)
    lines = logs.stdout.splitlines()
    assert lines[0] == "hello; $(touch pwned) it's 'me' from-lib"
    assert lines[1] == f"{master.home}/edp/{run.job_id}"
    assert logs.stderr == "to stderr\n"
    assert not Path(master.home, "edp", run.job_id, "pwned").exists()
    # A second engine (another process) follows it by its engine job id alone.
    again = ShellJobEngine(spark.pool, spark.nodes).get_job_status(engine_job_id)
    assert again.state is EngineState.SUCCEEDED


def test_a_failing_shell_job_fails_with_its_exit_code_and_last_error(
        spark: RealCluster) -> None:
    engine = ShellJobEngine(spark.pool, spark.nodes)
    run = job("Shell", mains=[JobFile("fail.sh", b"#!/bin/sh\necho partial\n"
                                                 b"echo 'no such table: x' >&2\nexit 7\n")],
              configs={"edp.node": "worker"})
    engine_job_id = engine.run_job(run)
    assert engine_job_id.startswith(spark.with_process("worker").name + "/")
    state = until_final(engine, engine_job_id)
    assert state.state is EngineState.FAILED
    assert state.exit_code == 7
    assert state.description == "exit code 7: no such table: x"


def test_a_job_submitted_twice_runs_once(spark: RealCluster) -> None:
    engines = [ShellJobEngine(spark.pool, spark.nodes) for _ in range(3)]
    run = job("Shell", mains=[JobFile("once.sh", b'echo $$ >> ../runs-"$RUN"; sleep 1\n')],
              params={"RUN": "x"})
    answers: list[str] = []
    threads = [threading.Thread(target=lambda e=e: answers.append(e.run_job(run)))
               for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers.append(engines[0].run_job(run))
    assert len(set(answers)) == 1 and len(answers) == 4
    assert until_final(engines[0], answers[0]).state is EngineState.SUCCEEDED
    assert engines[1].run_job(run) == answers[0]  # after its end too: not run again
    master = spark.with_process("master")
    runs = Path(master.home, "edp", "runs-x").read_text().split()
    assert len(runs) == 1
    assert Path(master.home, "edp", run.job_id, "pid").read_text().strip() != ""
    staging = Path(master.home, "edp", ".staging")
    assert not staging.exists() or not any(staging.iterdir())


def test_a_job_whose_process_vanished_fails_and_a_cancel_kills(spark: RealCluster) -> None:
    engine = ShellJobEngine(spark.pool, spark.nodes)
    master = spark.with_process("master")
    runs = [job("Shell", mains=[JobFile("sleep.sh", b"sleep 300 & sleep 300; wait\n")])
            for _ in range(2)]
    vanishing, cancelled = (engine.run_job(run) for run in runs)
    assert engine.get_job_status(vanishing).state is EngineState.RUNNING
    pid = int(Path(master.home, "edp", runs[0].job_id, "pid").read_text())
    os.killpg(pid, signal.SIGKILL)  # as if the node had killed it
    state = until_final(engine, vanishing, 30)
    assert state.state is EngineState.FAILED
    assert "without an exit code" in state.description

    group = int(Path(master.home, "edp", runs[1].job_id, "pid").read_text())
    started = time.monotonic()
    state = engine.cancel_job(cancelled, 30)
    assert state.state is EngineState.KILLED
    assert time.monotonic() - started < 20
    assert engine.get_job_status(cancelled).state is EngineState.KILLED
    assert not any(_group_of(p) == group for p in _all_pids())


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _group_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else int(fields[2])


def test_logs_never_show_the_jobs_secrets(spark: RealCluster) -> None:
    engine = ShellJobEngine(spark.pool, spark.nodes)
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    source = DataSourceAccess("s3://bucket/in", "s3", {"accesskey": "AK", "secretkey": secret})
    run = job("Shell", mains=[JobFile("leak.sh", b'echo "key=$1"; echo "$1" >&2; exit 1\n')],
              args=[secret], data_sources=[source])
    engine_job_id = engine.run_job(run)
    state = until_final(engine, engine_job_id)
    assert state.state is EngineState.FAILED
    assert secret not in state.description and "***" in state.description
    logs = engine.get_job_logs(engine_job_id, 1000)
    assert logs.stdout == "key=***\n" and secret not in logs.stderr


# -- Java -----------------------------------------------------------------------------------


def test_a_java_job_runs_its_main_class(spark: RealCluster, tmp_path: Path) -> None:
    if not shutil.which("javac") or not shutil.which("jar"):
        pytest.skip("no JDK (javac, jar) to build the job's class")
    source = tmp_path / "hello" / "Hello.java"
    source.parent.mkdir()
    source.write_text('package hello; public class Hello { public static void main(String[] a)'
                      ' { System.out.println("hello " + String.join("|", a) + " "'
                      ' + System.getProperty("greeting")); System.exit(a.length); } }\n')
    subprocess.run(["javac", "--release", "11", "-d", str(tmp_path / "classes"), str(source)],
                   check=True)
    subprocess.run(["jar", "cf", str(tmp_path / "hello.jar"), "-C", str(tmp_path / "classes"),
                    "."], check=True)
    engine = JavaJobEngine(spark.pool, spark.nodes)
    run = job("Java", libs=[JobFile("hello.jar", (tmp_path / "hello.jar").read_bytes())],
              configs={"edp.java.main_class": "hello.Hello",
                       "edp.java.java_opts": "-Xmx64m -Dgreeting=hi"},
              args=["a b", "$HOME"])
    engine_job_id = engine.run_job(run)
    state = until_final(engine, engine_job_id)
    assert state.state is EngineState.FAILED and state.exit_code == 2  # it exits len(args)
    assert engine.get_job_logs(engine_job_id, 1000).stdout == "hello a b|$HOME hi\n"


# -- Spark ----------------------------------------------------------------------------------

WORDCOUNT = b'''
import json, sys
from operator import add
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
with open(sys.argv[1]) as f:
    lines = f.read().splitlines()
counts = (spark.sparkContext.parallelize(lines, 2).flatMap(lambda line: line.split())
          .map(lambda word: (word, 1)).reduceByKey(add).collect())
print("COUNTS " + json.dumps(dict(counts), sort_keys=True))
spark.stop()
'''

SLEEPER = b'''
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.parallelize(range(1), 1).map(lambda x: time.sleep(600)).collect()
'''


def test_a_spark_word_count(spark: RealCluster) -> None:
    master = spark.with_process("master")
    spark.pool.put_file(master.ssh, "wordcount-input.txt", "a b a\nc a b\n")
    engine = spark_engine(spark)
    run = job("Spark", mains=[JobFile("wordcount.py", WORDCOUNT)],
              configs={"spark.sql.shuffle.partitions": 2},
              args=["../../wordcount-input.txt"])
    engine_job_id = engine.run_job(run)
    state = until_final(engine, engine_job_id)
    logs = engine.get_job_logs(engine_job_id, 20000)
    assert state.state is EngineState.SUCCEEDED, (state, logs.stderr[-3000:])
    line = next(x for x in logs.stdout.splitlines() if x.startswith("COUNTS "))
    assert json.loads(line[len("COUNTS "):]) == {"a": 3, "b": 2, "c": 1}


def test_a_cancelled_spark_job_leaves_no_driver_or_executor(spark: RealCluster) -> None:
    engine = spark_engine(spark)
    run = job("Spark", mains=[JobFile("sleeper.py", SLEEPER)])
    engine_job_id = engine.run_job(run)
    name = f"sahara-es-{run.job_id}"
    deadline = time.monotonic() + 120
    app_id = None
    while app_id is None or not processes_with(b"CoarseGrainedExecutorBackend", app_id.encode()):
        assert time.monotonic() < deadline, engine.get_job_logs(engine_job_id, 3000).stderr
        assert engine.get_job_status(engine_job_id).state is EngineState.RUNNING
        apps = engine.master_status().get("activeapps", [])
        app_id = next((a["id"] for a in apps if a.get("name") == name), None)
        time.sleep(0.5)
    assert processes_with(b"org.apache.spark.deploy.SparkSubmit", name.encode())

    assert engine.executors(app_id)  # seen by the engine on the worker node
    state = engine.cancel_job(engine_job_id, 60)
    assert state.state is EngineState.KILLED, state
    assert not engine.executors(app_id)
    assert engine.get_job_status(engine_job_id).state is EngineState.KILLED
    assert not engine.active_application(run.job_id)
    assert not processes_with(b"org.apache.spark.deploy.SparkSubmit", name.encode())
    deadline = time.monotonic() + 30  # the worker kills its executor once the app is gone
    while processes_with(b"CoarseGrainedExecutorBackend", app_id.encode()):
        assert time.monotonic() < deadline, "the executor outlived its application"
        time.sleep(0.5)


# -- Dask -----------------------------------------------------------------------------------

DASK_SUM = b'''
import sys
from distributed import Client
with Client(timeout=30) as client:
    squares = client.map(lambda x: x * x, range(int(sys.argv[1])))
    print("SUM", client.submit(sum, squares).result())
    print("WORKERS", len(client.scheduler_info()["workers"]))
'''


def test_a_dask_job_computes_on_the_cluster(dask: RealCluster) -> None:
    scheduler = dask.with_process("scheduler")
    engine = DaskJobEngine(dask.pool, dask.nodes,
                           scheduler_address=f"tcp://{scheduler.ssh.address}:8786",
                           python=sys.executable)
    run = job("Dask", mains=[JobFile("squares.py", DASK_SUM)], args=["10"])
    engine_job_id = engine.run_job(run)
    assert engine_job_id.startswith(scheduler.name + "/")
    state = until_final(engine, engine_job_id)
    logs = engine.get_job_logs(engine_job_id, 4000)
    assert state.state is EngineState.SUCCEEDED, (state, logs.stderr)
    assert "SUM 285" in logs.stdout.splitlines()
    assert "WORKERS 1" in logs.stdout.splitlines()


WORDCOUNT_S3A = b'''
import json, sys
from operator import add
from pyspark.sql import SparkSession
sc = SparkSession.builder.getOrCreate().sparkContext
counts = (sc.textFile(sys.argv[1]).flatMap(lambda line: line.split())
          .map(lambda word: (word, 1)).reduceByKey(add))
counts.map(lambda wc: "%s\\t%d" % wc).saveAsTextFile(sys.argv[2])
print("COUNTS " + json.dumps(dict(counts.collect()), sort_keys=True))
print("ARGS", sys.argv[1:])
'''


def test_a_spark_job_reads_swift_and_writes_s3_through_s3a(
        spark: RealCluster, swift_storage: SwiftStorage) -> None:
    source_bucket, target_bucket = (f"{p}{uuid.uuid4().hex[:8]}" for p in ("in", "out"))
    for name, data in {"a.txt": b"spark swift spark\n", "b.txt": b"swift s3a\n"}.items():
        put_object(f"swift://{source_bucket}/in/{name}", data,
                   swift_storage.swift_credentials, swift_storage.policy)
    put_object(f"s3://{target_bucket}/placeholder", b"", swift_storage.s3_credentials,
               swift_storage.policy)
    source = DataSourceAccess(f"swift://{source_bucket}/in", "swift",
                              swift_storage.swift_credentials)
    target = DataSourceAccess(f"s3://{target_bucket}/out", "s3", swift_storage.s3_credentials)
    engine = SparkJobEngine(spark.pool, spark.nodes, storage_policy=swift_storage.policy,
                            master_url=spark_engine(spark).master_url,
                            spark_home="$HOME/spark/dist")
    run = job("Spark", mains=[JobFile("wc.py", WORDCOUNT_S3A)], input=source, output=target,
              data_sources=[source, target], args=[f"{source.url}/*.txt", target.url])
    engine_job_id = engine.run_job(run)
    state = until_final(engine, engine_job_id)
    logs = engine.get_job_logs(engine_job_id, 100_000)
    assert state.state is EngineState.SUCCEEDED, (state, logs.stderr[-4000:])
    line = next(x for x in logs.stdout.splitlines() if x.startswith("COUNTS "))
    assert json.loads(line[len("COUNTS "):]) == {"spark": 2, "swift": 2, "s3a": 1}
    assert (f"ARGS ['s3a://{source_bucket}/in/*.txt', 's3a://{target_bucket}/out']"
            in logs.stdout)
    assert swift_storage.key not in logs.stdout + logs.stderr
    names = list_objects(f"s3://{target_bucket}/out/", swift_storage.s3_credentials,
                         swift_storage.policy)
    assert "out/_SUCCESS" in names
