"""One of three ``sahara-es api`` processes behind HAProxy killed (SIGKILL) while clients
send requests: no request fails beyond one retry by the client, every GET is answered without
one (HAProxy sends it again to another process), and each client still reads all it wrote."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from sahara_es.store import Store
from tests.integration.test_haproxy import HAPROXY, balanced

pytestmark = pytest.mark.skipif(not HAPROXY.exists(), reason="HAProxy is not installed")


@dataclass
class Outcomes:
    answered: int = 0
    retried: list[str] = field(default_factory=list)
    """Requests the client had to send twice (what and why)."""
    failed: list[str] = field(default_factory=list)
    """Requests that failed twice."""


class Client:
    """One caller (its own project) creating data sources, showing and listing them; a
    request that fails (no answer, a 5xx) is sent once more."""

    def __init__(self, base: str, outcomes: Outcomes) -> None:
        self.base = base
        self.session = requests.Session()
        self.project = f"p-{uuid.uuid4().hex[:8]}"
        self.session.headers["X-Project-Id"] = self.project
        self.outcomes = outcomes
        self.made: list[str] = []

    def send(self, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        why = ""
        for attempt in range(2):
            try:
                answer = self.session.request(method, self.base + path, timeout=30, **kwargs)
            except requests.RequestException as error:
                why = repr(error)
            else:
                if answer.status_code < 500:
                    return answer
                why = f"{answer.status_code} {answer.text[:200]}"
            (self.outcomes.failed if attempt else self.outcomes.retried).append(
                f"{method} {path}: {why}")
        return None

    def step(self, i: int) -> None:
        if i % 3 == 0:
            name = f"ds-{uuid.uuid4().hex[:8]}"
            answer = self.send("POST", "/v2/data-sources", json={
                "name": name, "type": "swift", "url": "swift://c/o"})
            if answer is not None and answer.status_code == 202:
                self.made.append(answer.json()["data_source"]["id"])
            elif answer is not None and answer.status_code == 409:
                # the first attempt was made before its process died: it is there
                self.made.extend(d["id"] for d in self.listed() if d["name"] == name)
            elif answer is not None:
                self.outcomes.failed.append(f"POST: {answer.status_code} {answer.text}")
        elif i % 3 == 1 and self.made:
            answer = self.send("GET", f"/v2/data-sources/{self.made[-1]}")
            if answer is not None and answer.status_code != 200:
                self.outcomes.failed.append(f"GET show: {answer.status_code} {answer.text}")
        else:
            self.listed()
        self.outcomes.answered += 1

    def listed(self) -> list[dict[str, Any]]:
        answer = self.send("GET", "/v2/data-sources?limit=1000")
        if answer is None or answer.status_code != 200:
            return []
        found: list[dict[str, Any]] = answer.json()["data_sources"]
        return found


def test_killing_one_api_process_under_load_costs_at_most_one_retry(
        store: Store, url: str, tmp_path: Path) -> None:
    with balanced(url, tmp_path, 3) as (balancer, processes):
        outcomes = Outcomes()
        clients = [Client(balancer.base, outcomes) for _ in range(6)]
        stop = threading.Event()

        def run(client: Client) -> None:
            i = 0
            while not stop.is_set():
                client.step(i)
                i += 1

        threads = [threading.Thread(target=run, args=(c,)) for c in clients]
        for thread in threads:
            thread.start()
        time.sleep(3)
        answered_before = outcomes.answered
        processes[1].kill()  # not the one that keeps the stored read models
        time.sleep(4)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert outcomes.answered > answered_before, "nothing was answered after the kill"
        assert outcomes.failed == []
        assert all(r.startswith("POST") for r in outcomes.retried), outcomes.retried
        assert not balancer.servers_up()["api-2"]
        for client in clients:
            listed = {d["id"] for d in client.listed()}
            assert set(client.made) <= listed
