"""EDP end to end through the API, on real clusters and real storage: a Spark cluster (a
master that is also the namenode, a worker that is also a datanode) and a Dask cluster (a
scheduler, a worker), provisioned once for the module on local nodes; binaries and data in the
real Swift (``swift://``, and ``s3://`` through its s3api).

Spark word counts from Swift into the cluster's HDFS (a relative HDFS path) and from HDFS to
S3, their data sources reaching the job's args through Sahara's substitution configs; a Java
job of a class compiled here; a Dask job; a long Spark job cancelled (no driver or executor
left); Shell jobs on the Spark cluster; and the real python-saharaclient and ``openstack
dataprocessing`` CLI driving jobs against the API served over HTTP with the engine behind it.
On SQLite: the store is not what is tested here, the JVMs cost the time.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from saharaclient import client as sahara_client
from saharaclient.api.base import APIException

from sahara_es.api.app import ApiConfig
from sahara_es.api.compose import app_for
from sahara_es.edp.manager import JobLimits
from sahara_es.edp.storage import get_object, list_objects, put_object
from sahara_es.infra import Node, SSHPool
from sahara_es.plugins import hdfs
from sahara_es.plugins.dask import dask_version
from sahara_es.plugins.spark import master_status, spark_version
from sahara_es.store import Store, open_store
from tests.apiserver import RunningApi, running_api
from tests.clouds import Cloud, running_cloud
from tests.edp import Jobs, processes_with
from tests.engines import wait_until
from tests.integration.conftest import SwiftStorage

pytestmark = pytest.mark.xdist_group("local-infra")

PROVISION_TIMEOUT = 420.0
SPARK_JOB_TIMEOUT = 300.0
FINAL = ("SUCCEEDED", "FAILED", "KILLED")
SUBMIT = "org.apache.spark.deploy.SparkSubmit"
EXECUTOR = "CoarseGrainedExecutorBackend"


# -- the cloud and its clusters ---------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    folder = tmp_path_factory.mktemp("edp-jobs")
    opened = open_store(f"sqlite:///{folder / 'store.db'}", upgrade=True)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, store: Store,
          swift_storage: SwiftStorage) -> Iterator[Cloud]:
    hdfs.hadoop_home()  # PluginUnavailable (an error, not a skip) without the Hadoop jars
    folder = tmp_path_factory.mktemp("edp-jobs-nodes")
    with running_cloud(store, folder, hosts=2, storage_policy=swift_storage.policy,
                       job_limits=JobLimits(poll_interval=0.2, cancel_timeout=60,
                                            log_interval=1.0)) as running:
        yield running


@dataclass
class Cluster:
    id: str
    doc: dict[str, Any]
    pool: SSHPool

    def nodes(self, cloud: Cloud, process: str) -> list[Node]:
        found = []
        for group in self.doc["node_groups"]:
            if process in group["node_processes"]:
                for item in group["instances"]:
                    instance = cloud.services.provider.get_instance(item["instance_name"])
                    assert instance is not None
                    found.append(Node.of(instance))
        return found


def create(cloud: Cloud, plugin: str, version: str, master: list[str],
           worker: list[str]) -> str:
    answer = cloud.client.post("/v2/clusters", headers=cloud.headers, json={
        "name": f"{plugin}-{uuid.uuid4().hex[:6]}", "plugin_name": plugin,
        "plugin_version": version,
        "node_groups": [
            {"name": "master", "flavor_id": "local.medium", "node_processes": master,
             "count": 1},
            {"name": "workers", "flavor_id": "local.small", "node_processes": worker,
             "count": 1}]})
    assert answer.status_code == 202, answer.get_json()
    cluster_id: str = answer.get_json()["cluster"]["id"]
    return cluster_id


def active(cloud: Cloud, cluster_id: str) -> Cluster:
    deadline = time.monotonic() + PROVISION_TIMEOUT
    while True:
        answer = cloud.client.get(f"/v2/clusters/{cluster_id}?show_progress=true",
                                  headers=cloud.headers)
        doc: dict[str, Any] = answer.get_json()["cluster"]
        if doc["status"] in ("Active", "Error"):
            break
        assert time.monotonic() < deadline, (doc["status"], doc.get("provision_progress"))
        time.sleep(0.5)
    assert doc["status"] == "Active", doc["status_description"]
    return Cluster(cluster_id, doc, cloud.services.ssh.pool(cluster_id))


@pytest.fixture(scope="module")
def clusters(cloud: Cloud) -> dict[str, str]:
    """Both clusters asked for at once: they are provisioned side by side."""
    return {"spark": create(cloud, "spark", spark_version(), ["master", "namenode"],
                            ["worker", "datanode"]),
            "dask": create(cloud, "dask", dask_version(), ["scheduler"], ["worker"])}


@pytest.fixture(scope="module")
def spark(cloud: Cloud, clusters: dict[str, str]) -> Cluster:
    return active(cloud, clusters["spark"])


@pytest.fixture(scope="module")
def dask(cloud: Cloud, clusters: dict[str, str]) -> Cluster:
    return active(cloud, clusters["dask"])


@pytest.fixture
def jobs(cloud: Cloud, swift_storage: SwiftStorage) -> Jobs:
    return Jobs(cloud, swift_storage)


def on_node(pool: SSHPool, node: Node, command: str, timeout: float = 180) -> str:
    result = pool.run(node, command, check=False, timeout=timeout)
    assert result.exit_code == 0, (command[-300:], result.stdout[-2000:],
                                   result.stderr[-4000:])
    return result.stdout


def succeeded(jobs: Jobs, job_id: str, timeout: float = SPARK_JOB_TIMEOUT) -> dict[str, Any]:
    job = jobs.ends(job_id, *FINAL, timeout=timeout)
    if job["info"]["status"] != "SUCCEEDED":
        logs = jobs.logs(job_id)
        pytest.fail(f"{job['info']}\n--- stdout ---\n{logs['stdout'][-2000:]}"
                    f"\n--- stderr ---\n{logs['stderr'][-6000:]}")
    return job


def counts_of(lines: str) -> dict[str, int]:
    """``word<TAB>count`` lines (Spark's text output) as a dict."""
    found = {}
    for line in lines.splitlines():
        if line.strip():
            word, count = line.split("\t")
            found[word] = int(count)
    return found


# -- Spark: Swift -> HDFS -> S3 -----------------------------------------------------------------

WORDCOUNT = b'''
import sys
from operator import add
from pyspark.sql import SparkSession
sc = SparkSession.builder.getOrCreate().sparkContext
counts = (sc.textFile(sys.argv[1]).flatMap(lambda line: line.split())
          .map(lambda word: (word, 1)).reduceByKey(add, 2))
counts.map(lambda wc: "%s\\t%d" % wc).saveAsTextFile(sys.argv[2])
print("ARGS", sys.argv[1:])
'''


def test_spark_word_counts_from_swift_into_hdfs_and_from_hdfs_to_s3(
        cloud: Cloud, spark: Cluster, jobs: Jobs, swift_storage: SwiftStorage) -> None:
    (master,) = spark.nodes(cloud, "namenode")
    swift = swift_storage.swift_credentials
    for name, data in {"a.txt": b"spark swift spark\n", "b.txt": b"swift hdfs\n"}.items():
        put_object(f"swift://{jobs.container}/in/{name}", data, swift, swift_storage.policy)
    template = jobs.template_of("Spark", mains=[jobs.binary("wordcount.py", WORDCOUNT)])

    # 1. Swift -> HDFS, by data source names; the output a path relative to the HDFS home.
    source = jobs.data_source("swift", f"swift://{jobs.container}/in", swift)
    relative = jobs.data_source("hdfs", "wc-%JOB_EXEC_ID%/counts")
    first = jobs.run(spark.id, template, input_id=source["id"], output_id=relative["id"],
                     job_configs={"configs": {"edp.substitute_data_source_for_name": True,
                                              "spark.sql.shuffle.partitions": 2},
                                  "args": [source["name"], relative["name"]]})
    job = succeeded(jobs, first)
    written = job["data_source_urls"][relative["id"]]
    assert written == f"wc-{first}/counts"
    stdout = jobs.logs(first)["stdout"]
    assert f"ARGS ['s3a://{jobs.container}/in', 'wc-{first}/counts']" in stdout, stdout
    assert swift_storage.key not in stdout + jobs.logs(first)["stderr"]
    home = f"/user/{master.username}"
    listed = on_node(spark.pool, master, hdfs.fs_shell("-ls", "-R", home))
    assert f"{home}/wc-{first}/counts/_SUCCESS" in listed
    text = on_node(spark.pool, master, hdfs.fs_shell("-cat", f"{written}/part-*"))
    assert counts_of(text) == {"spark": 2, "swift": 2, "hdfs": 1}

    # 2. HDFS (absolute URL) -> S3, by data source ids; S3 settings in the data source.
    on_node(spark.pool, master, "printf 'to be or not to be\\n' > words.txt && "
            + hdfs.fs_shell("-put", "-f", "words.txt", f"wc-{first}/words.txt"))
    hdfs_in = jobs.data_source(
        "hdfs", f"hdfs://{master.address}:{hdfs.NAMENODE_PORT}{home}/wc-{first}/words.txt")
    bucket = f"out{uuid.uuid4().hex[:8]}"
    put_object(f"s3://{bucket}/placeholder", b"", swift_storage.s3_credentials,
               swift_storage.policy)
    s3 = {"accesskey": swift_storage.user, "secretkey": swift_storage.key,
          "endpoint": swift_storage.s3_endpoint, "bucket_in_path": "true", "ssl": "false"}
    s3_out = jobs.data_source("s3", f"s3://{bucket}/counts-%JOB_EXEC_ID%", s3)
    assert swift_storage.key not in json.dumps(s3_out)
    second = jobs.run(spark.id, template, job_configs={
        "configs": {"edp.substitute_data_source_for_uuid": True},
        "args": [hdfs_in["id"], s3_out["id"]]})
    succeeded(jobs, second)
    assert f"'s3a://{bucket}/counts-{second}'" in jobs.logs(second)["stdout"]
    names = list_objects(f"s3://{bucket}/counts-{second}/", swift_storage.s3_credentials,
                         swift_storage.policy)
    assert f"counts-{second}/_SUCCESS" in names
    text = "".join(get_object(f"s3://{bucket}/{name}", swift_storage.s3_credentials,
                              swift_storage.policy).decode()
                   for name in names if "/part-" in name)
    assert counts_of(text) == {"to": 2, "be": 2, "or": 1, "not": 1}


def test_an_s3_data_source_takes_its_flags_as_json_booleans(
        jobs: Jobs, swift_storage: SwiftStorage) -> None:
    """Sahara's s3 data sources take ``bucket_in_path`` and ``ssl`` as booleans (and
    doc/edp-storage.rst says so)."""
    answer = jobs.client.post("/v2/data-sources", headers=jobs.headers, json={
        "name": f"d{uuid.uuid4().hex[:8]}", "type": "s3", "url": "s3://bucket/key",
        "credentials": {"accesskey": swift_storage.user, "secretkey": swift_storage.key,
                        "endpoint": swift_storage.s3_endpoint, "bucket_in_path": True,
                        "ssl": False}})
    assert answer.status_code == 202, answer.get_json()
    assert swift_storage.key not in json.dumps(answer.get_json())


# -- Java, Dask, Shell on Spark ----------------------------------------------------------------

def test_a_java_job_runs_its_main_class(spark: Cluster, jobs: Jobs, tmp_path: Path) -> None:
    if not shutil.which("javac") or not shutil.which("jar"):
        pytest.fail("no JDK (javac, jar) to build the job's class")
    source = tmp_path / "hello" / "Hello.java"
    source.parent.mkdir()
    source.write_text('package hello; public class Hello { public static void main(String[] a)'
                      ' { System.out.println("hello " + String.join("|", a)); } }\n')
    subprocess.run(["javac", "--release", "11", "-d", str(tmp_path / "classes"), str(source)],
                   check=True)
    subprocess.run(["jar", "cf", str(tmp_path / "hello.jar"), "-C", str(tmp_path / "classes"),
                    "."], check=True)
    jar = jobs.binary("hello.jar", (tmp_path / "hello.jar").read_bytes())
    template = jobs.template_of("Java", libs=[jar])
    job_id = jobs.run(spark.id, template, job_configs={
        "configs": {"edp.java.main_class": "hello.Hello", "edp.java.java_opts": "-Xmx64m"},
        "args": ["a b", "c"]})
    succeeded(jobs, job_id, timeout=120)
    assert jobs.logs(job_id)["stdout"] == "hello a b|c\n"


@pytest.mark.parametrize("job_type", ["Java", "Spark"])
def test_a_jvm_job_without_its_main_class_is_refused(spark: Cluster, jobs: Jobs,
                                                     job_type: str) -> None:
    jar = jobs.binary("app.jar", b"PK")
    template = jobs.template_of(job_type, **({"libs": [jar]} if job_type == "Java"
                                             else {"mains": [jar]}))
    answer = jobs.client.post("/v2/jobs", headers=jobs.headers, json={
        "cluster_id": spark.id, "job_template_id": template})
    assert answer.status_code == 400, answer.get_json()
    assert "edp.java.main_class" in answer.get_json()["error_message"]


DASK_SUM = b'''
import sys
from distributed import Client
with Client(timeout=30) as client:
    squares = client.map(lambda x: x * x, range(int(sys.argv[1])))
    print("SUM", client.submit(sum, squares).result())
    print("WORKERS", len(client.scheduler_info()["workers"]))
'''


def test_a_dask_job_computes_on_the_cluster(dask: Cluster, jobs: Jobs) -> None:
    template = jobs.template_of("Dask", mains=[jobs.binary("squares.py", DASK_SUM)])
    job_id = jobs.run(dask.id, template, job_configs={"args": ["10"]})
    succeeded(jobs, job_id, timeout=120)
    lines = jobs.logs(job_id)["stdout"].splitlines()
    assert "SUM 285" in lines and "WORKERS 1" in lines


def test_a_shell_job_runs_on_the_spark_master(spark: Cluster,
                                              jobs: Jobs) -> None:
    template = jobs.template('echo "$GREETING $1"; test -x "$HOME/spark/dist/bin/spark-submit"'
                             ' && echo spark-here; pwd\n')
    job_id = jobs.run(spark.id, template, job_configs={"params": {"GREETING": "hello"},
                                                       "args": ["spark"]})
    job = succeeded(jobs, job_id, timeout=120)
    master_name = next(group["instances"][0]["instance_name"]
                       for group in spark.doc["node_groups"]
                       if "master" in group["node_processes"])
    assert job["engine_job_id"] == f"{master_name}/{job_id}"
    lines = jobs.logs(job_id)["stdout"].splitlines()
    assert lines[:2] == ["hello spark", "spark-here"], lines
    assert lines[2].endswith(f"/edp/{job_id}")


# -- cancel a Spark job -------------------------------------------------------------------------

SLEEPER = b'''
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.getOrCreate()
spark.sparkContext.parallelize(range(1), 1).map(lambda x: time.sleep(600)).collect()
'''


def test_a_cancelled_spark_job_is_killed_and_leaves_no_driver_or_executor(
        cloud: Cloud, spark: Cluster, jobs: Jobs) -> None:
    (master,) = spark.nodes(cloud, "master")
    template = jobs.template_of("Spark", mains=[jobs.binary("sleeper.py", SLEEPER)])
    job_id = jobs.run(spark.id, template)
    name = f"sahara-es-{job_id}"
    app_id: list[str] = []

    def executor_running() -> bool:
        assert jobs.show(job_id)["info"]["status"] in ("PENDING", "RUNNING"), (
            jobs.show(job_id)["info"], jobs.logs(job_id)["stderr"][-3000:])
        if not app_id:
            apps = master_status(master.address, 8080).get("activeapps", [])
            app_id.extend(a["id"] for a in apps if a.get("name") == name)
        return bool(app_id) and bool(processes_with(EXECUTOR, app_id[0]))

    wait_until(executor_running, timeout=180, poll=0.5)
    assert processes_with(SUBMIT, name)
    jobs.cancel(job_id)
    job = jobs.ends(job_id, *FINAL, timeout=120)
    assert job["info"]["status"] == "KILLED", job["info"]
    assert not processes_with(SUBMIT, name)
    wait_until(lambda: not processes_with(EXECUTOR, app_id[0]), timeout=30, poll=0.5)
    assert not any(a.get("name") == name
                   for a in master_status(master.address, 8080).get("activeapps", []))


# -- python-saharaclient and the openstack CLI over HTTP ----------------------------------------

@pytest.fixture(scope="module")
def api(cloud: Cloud, store: Store) -> Iterator[RunningApi]:
    """The API over HTTP in token mode, with engines behind it (the cloud's engine, on the
    same store, runs what it records)."""
    app = app_for(ApiConfig(auth="token", plugins=["spark", "dask", "fake"], engines=True),
                  store=store, quota=cloud.services.quota)
    with running_api(store, app=app) as running:
        yield running


def client_for(api: RunningApi, token: str) -> Any:
    auth = token_endpoint.Token(api.url, token)
    return sahara_client.Client("2", session=ks_session.Session(auth=auth))


def until_final(client: Any, job_id: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = client.jobs.get(job_id)
        if job.info["status"] in FINAL:
            return job
        assert time.monotonic() < deadline, job.info
        time.sleep(0.3)


def http_logs(api: RunningApi, token: str, job_id: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{api.url}/jobs/{job_id}/logs",
                                     headers=api.headers(token))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        logs: dict[str, Any] = json.loads(answer.read())["logs"]
        return logs


def test_saharaclient_drives_jobs_end_to_end(cloud: Cloud, dask: Cluster, api: RunningApi,
                                             swift_storage: SwiftStorage) -> None:
    token = api.token(cloud.project)
    client = client_for(api, token)
    container = f"cli{uuid.uuid4().hex[:8]}"
    swift = swift_storage.swift_credentials
    source = client.data_sources.create(
        f"in-{uuid.uuid4().hex[:6]}", "the input", "swift", f"swift://{container}/in",
        credential_user=swift["user"], credential_pass=swift["password"])
    put_object(f"swift://{container}/echo.sh",
               b'echo "$WHO $1"\nsleep "${2:-0}"\n', swift, swift_storage.policy)
    binary = client.job_binaries.create(f"echo-{uuid.uuid4().hex[:6]}",
                                        f"swift://{container}/echo.sh", extra=swift)
    template = client.job_templates.create(f"echo-{uuid.uuid4().hex[:6]}", "Shell",
                                           mains=[binary.id])

    job = client.jobs.create(template.id, dask.id, configs={
        "configs": {"edp.substitute_data_source_for_name": True},
        "params": {"WHO": "client"}, "args": [source.name]})
    assert job.info["status"] == "PENDING"
    done = until_final(client, job.id)
    assert done.info["status"] == "SUCCEEDED", done.info
    assert client.jobs.refresh_status(job.id).info["status"] == "SUCCEEDED"
    assert done.data_source_urls == {source.id: f"swift://{container}/in"}
    assert http_logs(api, token, job.id)["stdout"] == f"client swift://{container}/in\n"
    client.jobs.update(job.id, is_public=True)
    assert client.jobs.get(job.id).is_public is True
    assert swift_storage.key not in json.dumps(client.jobs.get(job.id).to_dict())

    long = client.jobs.create(template.id, dask.id, configs={"params": {"WHO": "x"},
                                                             "args": ["y", "300"]})
    deadline = time.monotonic() + 60
    while client.jobs.get(long.id).info["status"] != "RUNNING":
        assert time.monotonic() < deadline, client.jobs.get(long.id).info
        time.sleep(0.3)
    cancel = getattr(client.jobs, "cancel", None)
    if cancel is not None:
        cancel(long.id)
    else:  # saharaclient's v2 jobs have no cancel: the PATCH it would send
        client.jobs._patch(f"/jobs/{long.id}", {"info": {"status": "cancel"}})
    assert until_final(client, long.id).info["status"] == "KILLED"

    for job_id in (job.id, long.id):
        client.jobs.delete(job_id)
        with pytest.raises(APIException) as gone:
            client.jobs.get(job_id)
        assert gone.value.error_code == 404
    # the jobs gave their template and data source back
    client.job_templates.delete(template.id)
    client.job_binaries.delete(binary.id)
    client.data_sources.delete(source.id)


def openstack(api: RunningApi, token: str, *words: str) -> str:
    command = [shutil.which("openstack") or "openstack",
               "--os-auth-type", "admin_token", "--os-endpoint", api.url,
               "--os-token", token, "--os-data-processing-api-version", "2",
               "--os-data-processing-url", api.url, *words]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, (shlex.join(command[:1] + list(words)), done.stdout,
                                  done.stderr[-3000:])
    return done.stdout


def test_openstack_dataprocessing_job_execute_runs_a_shell_job(
        cloud: Cloud, dask: Cluster, api: RunningApi, jobs: Jobs) -> None:
    template = jobs.template('echo "from the cli: $*"\n')
    token = api.token(cloud.project)
    out = openstack(api, token, "dataprocessing", "job", "execute", "--job-template",
                    template, "--cluster", dask.id, "--args", "one", "two", "-f", "json")
    shown = json.loads(out[out.index("{"):])
    assert shown["Status"] in ("PENDING", "RUNNING", "SUCCEEDED"), shown
    job_id = shown["Id"]
    assert jobs.ends(job_id, *FINAL, timeout=120)["info"]["status"] == "SUCCEEDED"
    assert jobs.logs(job_id)["stdout"] == "from the cli: one two\n"
    out = openstack(api, token, "dataprocessing", "job", "show", job_id, "-f", "json")
    assert json.loads(out)["Status"] == "SUCCEEDED"

