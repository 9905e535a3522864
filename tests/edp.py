"""EDP objects made through the API in tests: binaries in the real Swift, job templates,
jobs, their status and logs (``Jobs``); the processes of this machine by command line."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from sahara_es.edp.storage import put_object
from tests.clouds import Cloud
from tests.engines import wait_until
from tests.integration.conftest import SwiftStorage


def cluster_status(cloud: Cloud, cluster_id: str) -> str:
    answer = cloud.client.get(f"/v2/clusters/{cluster_id}", headers=cloud.headers)
    return str(answer.get_json()["cluster"]["status"])


class Jobs:
    """The EDP objects of one test, made through the API."""

    def __init__(self, cloud: Cloud, storage: SwiftStorage) -> None:
        self.client: FlaskClient = cloud.client
        self.headers = cloud.headers
        self.storage = storage
        self.container = f"edp{uuid.uuid4().hex[:8]}"

    def post(self, path: str, body: dict[str, Any], expect: int = 202) -> dict[str, Any]:
        answer = self.client.post(f"/v2/{path}", headers=self.headers, json=body)
        assert answer.status_code == expect, answer.get_json()
        found: dict[str, Any] = answer.get_json()
        return found

    def binary(self, name: str, script: str | bytes) -> str:
        """A job binary in Swift holding ``script``; its id. Its name (the file's name on
        the node, as in Sahara) keeps ``name``'s extension: ``main-1a2b3c.sh``."""
        url = f"swift://{self.container}/{name}"
        data = script.encode() if isinstance(script, str) else script
        put_object(url, data, self.storage.swift_credentials, self.storage.policy)
        stem, dot, extension = name.rpartition(".")
        unique = (f"{stem}-{uuid.uuid4().hex[:6]}.{extension}" if dot
                  else f"{name}-{uuid.uuid4().hex[:6]}")
        return str(self.post("job-binaries", {
            "name": unique, "url": url,
            "extra": self.storage.swift_credentials})["job_binary"]["id"])

    def template(self, script: str, **extra: Any) -> str:
        """A Shell job template whose main is ``script``."""
        return self.template_of("Shell", mains=[self.binary("main.sh", script)], **extra)

    def template_of(self, job_type: str, *, mains: list[str] | None = None,
                    libs: list[str] | None = None, **extra: Any) -> str:
        return str(self.post("job-templates", {
            "name": f"t{uuid.uuid4().hex[:8]}", "type": job_type, "mains": mains or [],
            "libs": libs or [], **extra})["job_template"]["id"])

    def data_source(self, kind: str, url: str, credentials: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": f"d{uuid.uuid4().hex[:8]}", "type": kind, "url": url}
        if credentials is not None:
            body["credentials"] = credentials
        source: dict[str, Any] = self.post("data-sources", body)["data_source"]
        return source

    def run(self, cluster_id: str, template_id: str, **body: Any) -> str:
        return str(self.post("jobs", {"cluster_id": cluster_id,
                                      "job_template_id": template_id, **body})["job"]["id"])

    def show(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.client.get(f"/v2/jobs/{job_id}",
                                              headers=self.headers).get_json()["job"]
        return job

    def ends(self, job_id: str, *statuses: str, timeout: float = 120) -> dict[str, Any]:
        wait_until(lambda: self.show(job_id)["info"]["status"] in statuses, timeout=timeout,
                   poll=0.2)
        return self.show(job_id)

    def cancel(self, job_id: str) -> None:
        answer = self.client.patch(f"/v2/jobs/{job_id}", headers=self.headers,
                                   json={"info": {"status": "cancel"}})
        assert answer.status_code == 202, answer.get_json()

    def logs(self, job_id: str) -> dict[str, Any]:
        answer = self.client.get(f"/v2/jobs/{job_id}/logs", headers=self.headers)
        assert answer.status_code == 200
        logs: dict[str, Any] = answer.get_json()["logs"]
        return logs


def processes_with(*markers: str | bytes) -> list[int]:
    """The processes of this machine whose command line holds every marker."""
    wanted = [m.encode() if isinstance(m, str) else m for m in markers]
    found = []
    for pid in Path("/proc").iterdir():
        if pid.name.isdigit():
            try:
                command = (pid / "cmdline").read_bytes()
            except OSError:
                continue
            if all(marker in command for marker in wanted):
                found.append(int(pid.name))
    return found
