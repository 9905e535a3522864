"""Jobs through the API on real local nodes (a ``fake`` cluster: its nodes and sshd are
real, its services are not; Shell jobs run on them for real), with binaries in the real
Swift: a job's exit code and output are captured, a failing one ends FAILED with the reason,
several run at once, one submitted during provisioning runs once the cluster is Active, a
cancel kills it (no process of it remains), deleting the cluster kills its jobs, and bad
input answers 400 with nothing created. On SQLite (the job manager's store contract runs
on both stores in ``test_job_manager.py``)."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_es.edp.manager import JobLimits
from sahara_es.infra.local import user_of
from sahara_es.store import open_store
from tests.clouds import Cloud, create_fake_cluster, running_cloud
from tests.edp import Jobs, cluster_status, processes_with
from tests.engines import wait_until
from tests.integration.conftest import SwiftStorage


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, swift_storage: SwiftStorage
          ) -> Iterator[Cloud]:
    folder = tmp_path_factory.mktemp("edp-shell")
    store = open_store(f"sqlite:///{folder / 'store.db'}", upgrade=True)
    with running_cloud(store, folder, hosts=2, storage_policy=swift_storage.policy,
                       job_limits=JobLimits(poll_interval=0.2, cancel_timeout=20,
                                            log_interval=1.0)) as running:
        yield running
    store.close()


@pytest.fixture(scope="module")
def cluster(cloud: Cloud) -> str:
    cluster_id = create_fake_cluster(cloud.client, cloud.project, workers=1)
    wait_until(lambda: status(cloud, cluster_id) == "Active", timeout=180, poll=0.2)
    return cluster_id


def status(cloud: Cloud, cluster_id: str) -> str:
    return cluster_status(cloud, cluster_id)


@pytest.fixture
def jobs(cloud: Cloud, swift_storage: SwiftStorage) -> Jobs:
    return Jobs(cloud, swift_storage)


def test_a_shell_job_runs_on_the_cluster_and_its_output_is_kept(
        cluster: str, jobs: Jobs) -> None:
    template = jobs.template('echo "hello $WHO"; echo "args: $*"; echo warned >&2\n')
    job_id = jobs.run(cluster, template, job_configs={
        "params": {"WHO": "world"}, "args": ["a b", "c"]})
    job = jobs.ends(job_id, "SUCCEEDED", "FAILED")
    assert job["info"]["status"] == "SUCCEEDED", job["info"]
    assert job["engine_job_id"] and job["start_time"] and job["end_time"]
    logs = jobs.logs(job_id)
    assert logs["stdout"] == "hello world\nargs: a b c\n"
    assert logs["stderr"] == "warned\n"


def test_a_failing_shell_job_ends_failed_with_its_exit_code_and_last_words(
        cluster: str, jobs: Jobs) -> None:
    job = jobs.ends(jobs.run(cluster, jobs.template("echo broken input >&2; exit 7\n")),
                    "SUCCEEDED", "FAILED")
    assert job["info"]["status"] == "FAILED"
    assert "7" in job["info"]["status_description"]
    assert "broken input" in job["info"]["status_description"]


def test_three_jobs_run_at_once_on_one_cluster(cluster: str, jobs: Jobs) -> None:
    template = jobs.template("sleep 2; echo done $1\n")
    started = time.monotonic()
    ids = [jobs.run(cluster, template, job_configs={"args": [str(i)]}) for i in range(3)]
    for index, job_id in enumerate(ids):
        assert jobs.ends(job_id, "SUCCEEDED", "FAILED")["info"]["status"] == "SUCCEEDED"
        assert jobs.logs(job_id)["stdout"] == f"done {index}\n"
    assert time.monotonic() - started < 3 * 2 + 30  # not one after the other... roughly


def test_a_job_submitted_during_provisioning_runs_once_the_cluster_is_active(
        cloud: Cloud, jobs: Jobs) -> None:
    cluster_id = create_fake_cluster(cloud.client, cloud.project,
                                     configs={"configure_seconds": 3})
    job_id = jobs.run(cluster_id, jobs.template("echo ran\n"))
    assert jobs.show(job_id)["info"]["status"] == "PENDING"
    job = jobs.ends(job_id, "SUCCEEDED", "FAILED", timeout=240)
    assert job["info"]["status"] == "SUCCEEDED", job["info"]
    assert status(cloud, cluster_id) == "Active"
    assert cloud.client.delete(f"/v2/clusters/{cluster_id}",
                               headers=cloud.headers).status_code == 204


def test_cancel_kills_a_running_job_and_nothing_of_it_remains(cluster: str,
                                                              jobs: Jobs) -> None:
    marker = f"sleeper{uuid.uuid4().hex[:8]}"
    job_id = jobs.run(cluster, jobs.template(f"sh -c 'sleep 300; echo {marker}' & wait\n"))
    jobs.ends(job_id, "RUNNING")
    wait_until(lambda: bool(processes_with(marker)), timeout=30)
    answer = jobs.client.patch(f"/v2/jobs/{job_id}", headers=jobs.headers,
                               json={"info": {"status": "cancel"}})
    assert answer.status_code == 202
    job = jobs.ends(job_id, "KILLED", "FAILED", "SUCCEEDED")
    assert job["info"]["status"] == "KILLED"
    assert processes_with(marker) == []


def test_deleting_a_cluster_kills_its_running_jobs(cloud: Cloud, jobs: Jobs) -> None:
    cluster_id = create_fake_cluster(cloud.client, cloud.project)
    wait_until(lambda: status(cloud, cluster_id) == "Active", timeout=180, poll=0.2)
    template = jobs.template("sleep 300\n")
    job_id = jobs.run(cluster_id, template)
    jobs.ends(job_id, "RUNNING")
    assert cloud.client.delete(f"/v2/clusters/{cluster_id}",
                               headers=cloud.headers).status_code == 204
    job = jobs.ends(job_id, "KILLED", "FAILED", "SUCCEEDED")
    assert job["info"]["status"] == "KILLED"
    assert "cluster" in job["info"]["status_description"]
    # the job gave its template back: it can be deleted now
    wait_until(lambda: jobs.client.delete(f"/v2/job-templates/{template}",
                                          headers=jobs.headers).status_code == 204,
               timeout=30, poll=0.5)


def _nothing_new(jobs: Jobs, before: int) -> None:
    after = jobs.client.get("/v2/jobs", headers=jobs.headers).get_json()["jobs"]
    assert len(after) == before


@pytest.mark.parametrize(("change", "message"), [
    ({"job_type": "Pig"}, "runs Shell jobs, not Pig"),
    ({"same_io": True}, "same data source"),
    ({"interface": {}}, "required argument 'size' is missing"),
    ({"interface": {"size": "big"}}, "must be a number"),
    ({"interface": {"size": "1", "colour": "red"}}, "no argument colour"),
])
def test_bad_jobs_are_refused_with_a_400_and_nothing_is_created(
        cluster: str, jobs: Jobs, change: dict[str, Any], message: str) -> None:
    before = len(jobs.client.get("/v2/jobs", headers=jobs.headers).get_json()["jobs"])
    interface = [{"name": "size", "mapping_type": "args", "location": "0",
                  "value_type": "number", "required": True}]
    if change.get("job_type") == "Pig":
        binary = jobs.binary("main.pig", "x")
        template = str(jobs.post("job-templates", {
            "name": f"t{uuid.uuid4().hex[:8]}", "type": "Pig",
            "mains": [binary]})["job_template"]["id"])
    else:
        template = jobs.template("echo $1\n", interface=interface)
    body: dict[str, Any] = {"cluster_id": cluster, "job_template_id": template,
                            "interface": change.get("interface", {"size": "1"})}
    if change.get("same_io"):
        source = jobs.post("data-sources", {
            "name": f"d{uuid.uuid4().hex[:8]}", "type": "swift",
            "url": f"swift://{jobs.container}/data",
            "credentials": jobs.storage.swift_credentials})["data_source"]["id"]
        body.update(input_id=source, output_id=source)
    answer = jobs.client.post("/v2/jobs", headers=jobs.headers, json=body)
    assert answer.status_code == 400, answer.get_json()
    assert message in answer.get_json()["error_message"]
    _nothing_new(jobs, before)


@pytest.mark.parametrize(("job_type", "mains", "libs", "message"), [
    ("Shell", 0, 0, "exactly one main"),
    ("Spark", 2, 0, "exactly one main"),
    ("Java", 1, 1, "takes no mains"),
    ("Java", 0, 0, "needs libs"),
    ("MapReduce", 0, 0, "needs libs"),
])
def test_job_templates_follow_sahara_s_rules_on_binaries(
        jobs: Jobs, job_type: str, mains: int, libs: int, message: str) -> None:
    binaries = [jobs.binary(f"b{i}", "x") for i in range(mains + libs)]
    answer = jobs.client.post("/v2/job-templates", headers=jobs.headers, json={
        "name": f"t{uuid.uuid4().hex[:8]}", "type": job_type, "mains": binaries[:mains],
        "libs": binaries[mains:]})
    assert answer.status_code == 400, answer.get_json()
    assert message in answer.get_json()["error_message"]


def test_data_source_placeholders_are_resolved_once_and_shown(
        cluster: str, jobs: Jobs) -> None:
    source = jobs.post("data-sources", {
        "name": f"d{uuid.uuid4().hex[:8]}", "type": "swift",
        "url": f"swift://{jobs.container}/out-%JOB_EXEC_ID%-%RANDSTR(6)%",
        "credentials": jobs.storage.swift_credentials})["data_source"]
    template = jobs.template("echo \"$1\"\n")
    job_id = jobs.run(cluster, template, job_configs={
        "configs": {"edp.substitute_data_source_for_name": True},
        "args": [source["name"]]})
    job = jobs.ends(job_id, "SUCCEEDED", "FAILED")
    url = job["data_source_urls"][source["id"]]
    assert url.startswith(f"swift://{jobs.container}/out-{job_id}-")
    assert len(url) == len(f"swift://{jobs.container}/out-{job_id}-") + 6
    assert jobs.logs(job_id)["stdout"] == f"{url}\n", job["info"]
    assert "password" not in str(job) and jobs.storage.key not in str(jobs.logs(job_id))



def test_a_manila_share_is_one_folder_for_a_project_s_clusters_and_no_one_else_s(
        cloud: Cloud, cluster: str, jobs: Jobs, swift_storage: SwiftStorage) -> None:
    share = str(uuid.uuid4())
    second = create_fake_cluster(cloud.client, cloud.project)
    stranger = Jobs(cloud, swift_storage)
    stranger.headers = {"X-Project-Id": f"other-{uuid.uuid4().hex[:6]}"}
    theirs = create_fake_cluster(cloud.client, stranger.headers["X-Project-Id"])
    for cluster_id, headers in ((second, jobs.headers), (theirs, stranger.headers)):
        wait_until(lambda c=cluster_id, h=headers: cloud.client.get(
            f"/v2/clusters/{c}", headers=h).get_json()["cluster"]["status"] == "Active",
            timeout=180, poll=0.2)

    def source(owner: Jobs, name: str) -> str:
        return str(owner.data_source("manila", f"manila://{share}/{name}")["name"])

    substitute = {"edp.substitute_data_source_for_name": True}
    write = jobs.run(cluster, jobs.template('echo "hello from a share" > "${1#file://}";'
                                            ' echo "${1#file://}"\n'),
                     job_configs={"configs": substitute, "args": [source(jobs, "hello.txt")]})
    assert jobs.ends(write, "SUCCEEDED", "FAILED")["info"]["status"] == "SUCCEEDED"
    path = jobs.logs(write)["stdout"].strip()
    read = jobs.run(second, jobs.template('cat "${1#file://}"\n'),
                    job_configs={"configs": substitute, "args": [source(jobs, "hello.txt")]})
    assert jobs.ends(read, "SUCCEEDED", "FAILED")["info"]["status"] == "SUCCEEDED"
    assert jobs.logs(read)["stdout"] == "hello from a share\n"
    # Another project's share of the same id is another folder; this one it cannot read.
    theirs_read = stranger.run(theirs, stranger.template(
        'cat "${1#file://}"; cat "$2"\n'), job_configs={
            "configs": substitute, "args": [source(stranger, "hello.txt"), path]})
    job = stranger.ends(theirs_read, "SUCCEEDED", "FAILED")
    assert job["info"]["status"] == "FAILED"
    assert "hello from a share" not in stranger.logs(theirs_read)["stdout"]
    assert "Permission denied" in stranger.logs(theirs_read)["stderr"]
    for cluster_id, headers in ((second, jobs.headers), (theirs, stranger.headers)):
        assert cloud.client.delete(f"/v2/clusters/{cluster_id}",
                                   headers=headers).status_code == 204
    # A deleted cluster's node user (whose uid the next cluster may get) loses its entry.
    wait_until(lambda: cloud.client.get(f"/v2/clusters/{second}",
                                        headers=jobs.headers).status_code == 404,
               timeout=120, poll=0.5)
    entries = subprocess.run(["getfacl", "-p", str(Path(path).parent)], capture_output=True,
                             text=True, check=True).stdout
    granted = {line.split(":")[1] for line in entries.splitlines()
               if line.startswith("user:") and line.split(":")[1]}
    assert granted == {user_of(cluster)}  # no entry of second's user, by name or by uid
