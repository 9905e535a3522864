"""A job survives the engine following it: ``kill -9`` the engine process while its job runs
on a real node, and another engine process takes the job's workflow over from its history,
follows the same run to its end (``SUCCEEDED`` in the API) and never submits it again.
On both stores."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.edp.manager import workflow_id
from sahara_es.edp.storage import put_object
from sahara_es.engine import wait_for
from sahara_es.events import registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store
from tests.engines import EngineProcess, wait_until
from tests.integration.conftest import SwiftStorage

TTL = 3.0


def test_a_killed_engine_s_job_is_followed_to_its_end_by_another_and_runs_once(
        store: Store, url: str, tmp_path: Path, swift_storage: SwiftStorage,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAHARA_ES_SWIFT_AUTH_URL", swift_storage.auth_url)
    monkeypatch.setenv("SAHARA_ES_STORAGE_PRIVATE_HOSTS",
                       ",".join(sorted(swift_storage.policy.private_hosts)))
    tag = uuid.uuid4().hex[:6]
    extra = ("--data-dir", str(tmp_path), "--hosts", f"j{tag}-1=16:65536",
             "--job-poll-interval", "0.2")
    app = app_for(ApiConfig(auth="noauth", plugins=["fake"], engines=True), store=store,
                  quota=STORE_QUOTAS)
    client = app.test_client()
    headers = {"X-Project-Id": f"p{tag}"}

    def post(path: str, body: dict[str, Any]) -> Any:
        answer = client.post(f"/v2/{path}", headers=headers, json=body)
        assert answer.status_code == 202, answer.get_json()
        return answer.get_json()

    def job() -> Any:
        return client.get(f"/v2/jobs/{job_id}", headers=headers).get_json()["job"]

    def job_status() -> str:
        return str(job()["info"]["status"])

    try:
        with EngineProcess(url, f"doomed-{tag}", tmp_path, lease_ttl=TTL,
                           extra=extra) as doomed:
            cluster = post("clusters", {
                "name": f"c{tag}", "plugin_name": "fake", "plugin_version": "0.1",
                "node_groups": [{"name": "manager", "flavor_id": "local.small",
                                 "node_processes": ["namenode"], "count": 1}]})["cluster"]
            cluster_id = cluster["id"]
            script = f"swift://edp{tag}/run.sh"
            put_object(script, b'echo "started $(date +%s.%N)"; sleep 8; echo finished\n',
                       swift_storage.swift_credentials, swift_storage.policy)
            binary = post("job-binaries", {"name": f"b{tag}", "url": script,
                                           "extra": swift_storage.swift_credentials})
            template = post("job-templates", {"name": f"t{tag}", "type": "Shell",
                                              "mains": [binary["job_binary"]["id"]]})
            job_id = post("jobs", {"cluster_id": cluster_id, "job_template_id":
                                   template["job_template"]["id"]})["job"]["id"]
            wait_until(lambda: job_status() == "RUNNING", timeout=240, poll=0.2)
            engine_job_id = job()["engine_job_id"]
            time.sleep(1.0)  # the job runs; its engine follows it
            doomed.kill()
            with EngineProcess(url, f"heir-{tag}", tmp_path, lease_ttl=TTL, extra=extra):
                wait_until(lambda: job_status() in ("SUCCEEDED", "FAILED", "KILLED"),
                           timeout=120, poll=0.2)
                done = job()
                assert done["info"]["status"] == "SUCCEEDED", done["info"]
                assert done["engine_job_id"] == engine_job_id
                logs = client.get(f"/v2/jobs/{job_id}/logs", headers=headers).get_json()
                stdout = logs["logs"]["stdout"]
                assert stdout.count("started") == 1 and stdout.endswith("finished\n")
                state = wait_for(store, workflow_id(str(job_id)), timeout=60)
                assert state.status.value == "succeeded"
                events = [registry.decode(e)
                          for e in store.read(f"workflow-{workflow_id(str(job_id))}")]
                owners = {e.engine for e in events if isinstance(e, ev.WorkflowOwned)}
                assert owners == {f"doomed-{tag}", f"heir-{tag}"}
                submitted = [e for e in events if isinstance(e, ev.TaskSucceeded)
                             and e.task_id == "submit"]
                assert len(submitted) == 1
                followed_by = {e.engine for e in events if isinstance(e, ev.TaskSucceeded)
                               and e.task_id == "follow"}
                assert followed_by == {f"heir-{tag}"}
                assert client.delete(f"/v2/clusters/{cluster_id}",
                                     headers=headers).status_code == 204
                wait_until(lambda: client.get(f"/v2/clusters/{cluster_id}",
                                              headers=headers).status_code == 404,
                           timeout=120, poll=0.5)
    finally:
        stop_app(app)
