"""``sahara-es api`` and ``sahara-es engine`` as separate processes sharing the store: the
API records the request, the engine finds the work by sweeping the store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from sahara_es.commands import tokens
from sahara_es.store import Store
from tests.engines import ROOT, EngineProcess, wait_until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_api_and_an_engine_provision_a_cluster_as_separate_processes(
        store: Store, url: str, tmp_path: Path) -> None:
    port = free_port()
    tag = uuid.uuid4().hex[:6]
    log = (tmp_path / "api.log").open("wb")
    api = subprocess.Popen([sys.executable, "-m", "sahara_es.cli", "--store", url, "api",
                            "--port", str(port), "--plugins", "fake"], cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    token = tokens.issue(store, f"p{tag}").token
    session = requests.Session()
    session.headers["X-Auth-Token"] = token
    base = f"http://127.0.0.1:{port}/v2"
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60, poll=0.2)
        extra = ("--data-dir", str(tmp_path), "--hosts", f"x{tag}-1=8:16384")
        with EngineProcess(url, f"engine-{tag}", tmp_path, lease_ttl=5, extra=extra):
            answer = session.post(f"{base}/clusters", json={
                "name": f"c{tag}", "plugin_name": "fake", "plugin_version": "0.1",
                "node_groups": [{"name": "manager", "flavor_id": "local.small",
                                 "node_processes": ["namenode"], "count": 1},
                                {"name": "workers", "flavor_id": "local.small",
                                 "node_processes": ["datanode"], "count": 1}]}, timeout=30)
            assert answer.status_code == 202, answer.text
            path = f"{base}/clusters/{answer.json()['cluster']['id']}"

            def status() -> str:
                found: str = session.get(path, timeout=30).json()["cluster"]["status"]
                return found

            wait_until(lambda: status() in ("Active", "Error"), timeout=120, poll=0.2)
            assert status() == "Active"
            assert session.delete(path, timeout=30).status_code == 204
            wait_until(lambda: session.get(path, timeout=30).status_code == 404,
                       timeout=120, poll=0.2)
    finally:
        api.terminate()
        api.wait(30)
        log.close()


def _answers(health: str) -> bool:
    try:
        return requests.get(health, timeout=2).status_code == 200
    except requests.RequestException:
        time.sleep(0.1)
        return False
