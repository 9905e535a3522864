"""EDP as a hostile project uses it: nothing a job names (binaries, URLs, params, args,
shares) runs code or reads files as the service, reaches another project's data, or has a
service-side address fetched; refusals say why and name no secret. Jobs run for real on a
``fake`` cluster's local nodes, binaries in the real Swift."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sahara_es.edp.manager import JobLimits
from sahara_es.store import open_store
from tests.clouds import Cloud, create_fake_cluster, running_cloud
from tests.edp import Jobs, cluster_status
from tests.engines import wait_until
from tests.integration.conftest import SwiftStorage


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory, swift_storage: SwiftStorage
          ) -> Iterator[Cloud]:
    folder = tmp_path_factory.mktemp("edp-hostile")
    store = open_store(f"sqlite:///{folder / 'store.db'}", upgrade=True)
    with running_cloud(store, folder, hosts=1, storage_policy=swift_storage.policy,
                       job_limits=JobLimits(poll_interval=0.2, log_interval=1.0)) as running:
        yield running
    store.close()


@pytest.fixture(scope="module")
def cluster(cloud: Cloud) -> str:
    cluster_id = create_fake_cluster(cloud.client, cloud.project)
    wait_until(lambda: cluster_status(cloud, cluster_id) == "Active", timeout=180, poll=0.2)
    return cluster_id


@pytest.fixture
def jobs(cloud: Cloud, swift_storage: SwiftStorage) -> Jobs:
    return Jobs(cloud, swift_storage)


def failed(jobs: Jobs, job_id: str) -> str:
    job = jobs.ends(job_id, "SUCCEEDED", "FAILED", "KILLED")
    assert job["info"]["status"] == "FAILED", job["info"]
    return str(job["info"]["status_description"])


def test_a_file_binary_outside_the_project_s_folder_is_never_read(
        cluster: str, jobs: Jobs) -> None:
    for url in ("file:///etc/shadow", "file:///etc/../etc/passwd"):
        binary = jobs.post("job-binaries", {"name": f"b{uuid.uuid4().hex[:6]}.sh",
                                            "url": url})["job_binary"]["id"]
        template = jobs.template_of("Shell", mains=[binary])
        reason = failed(jobs, jobs.run(cluster, template))
        assert "root:" not in reason and "/etc" not in reason.replace(url, "")


def test_an_object_store_at_a_service_side_address_is_never_fetched(
        cluster: str, jobs: Jobs) -> None:
    for endpoint in ("http://169.254.169.254", "http://127.0.0.1:9042", "http://[::1]:22"):
        binary = jobs.post("job-binaries", {
            "name": f"b{uuid.uuid4().hex[:6]}.sh", "url": "s3://bucket/main.sh",
            "extra": {"accesskey": "a", "secretkey": "s3cr3t-value",
                      "endpoint": endpoint}})["job_binary"]["id"]
        reason = failed(jobs, jobs.run(cluster, jobs.template_of("Shell", mains=[binary])))
        assert "s3cr3t-value" not in reason
        assert "does not allow" in reason, reason


def test_params_and_args_reach_the_script_as_data_never_as_shell_code(
        cluster: str, jobs: Jobs, tmp_path: Path) -> None:
    marker = Path("/tmp") / f"pwned-{uuid.uuid4().hex[:8]}"
    template = jobs.template('printf "%s|" "$@"; printf "%s" "$GREETING"\n')
    job_id = jobs.run(cluster, template, job_configs={
        "params": {"GREETING": f"$(touch {marker})`touch {marker}`"},
        "args": [f"; touch {marker}", f"$(touch {marker})", "'\"", "\n"]})
    assert jobs.ends(job_id, "SUCCEEDED", "FAILED")["info"]["status"] == "SUCCEEDED"
    assert jobs.logs(job_id)["stdout"] == (
        f"; touch {marker}|$(touch {marker})|'\"|\n|$(touch {marker})`touch {marker}`")
    assert not marker.exists()
    bad = jobs.run(cluster, template, job_configs={
        "params": {f"X;touch {marker}": "1"}})
    assert "X;touch" in failed(jobs, bad) and not marker.exists()


def test_another_project_s_job_data_and_templates_are_out_of_reach(
        cloud: Cloud, cluster: str, jobs: Jobs, swift_storage: SwiftStorage) -> None:
    template = jobs.template("echo mine\n")
    source = jobs.data_source("swift", f"swift://{jobs.container}/data",
                              jobs.storage.swift_credentials)
    job_id = jobs.run(cluster, template)
    stranger = Jobs(cloud, swift_storage)
    stranger.headers = {"X-Project-Id": f"other-{uuid.uuid4().hex[:6]}"}
    for path in (f"jobs/{job_id}", f"jobs/{job_id}/logs", f"data-sources/{source['id']}",
                 f"job-templates/{template}"):
        assert stranger.client.get(f"/v2/{path}",
                                   headers=stranger.headers).status_code == 404
    answer = stranger.client.post("/v2/jobs", headers=stranger.headers, json={
        "cluster_id": cluster, "job_template_id": template})
    assert answer.status_code == 400  # named in the body: Sahara's 400, as if unknown
    assert "does not exist" in answer.get_json()["error_message"]
    answer = stranger.client.patch(f"/v2/jobs/{job_id}", headers=stranger.headers,
                                   json={"info": {"status": "cancel"}})
    assert answer.status_code == 404
    assert jobs.ends(job_id, "SUCCEEDED", "FAILED")["info"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize("url", ["manila://../other/x", "manila://share/../../etc/passwd",
                                 "manila://sh are/x"])
def test_a_share_path_cannot_leave_its_share(cluster: str, jobs: Jobs, url: str) -> None:
    answer = jobs.client.post("/v2/data-sources", headers=jobs.headers, json={
        "name": f"d{uuid.uuid4().hex[:6]}", "type": "manila", "url": url})
    if answer.status_code == 400:
        return  # refused as a URL already
    assert answer.status_code == 202
    source = answer.get_json()["data_source"]
    template = jobs.template('cat "${1#file://}"\n')
    reason = failed(jobs, jobs.run(cluster, template, job_configs={
        "configs": {"edp.substitute_data_source_for_uuid": True}, "args": [source["id"]]}))
    assert "root:" not in reason
