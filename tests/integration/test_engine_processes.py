"""Engines as real processes on both stores: killed, paused, stopped, and working together.

Each task writes its id to an effects file once; "exactly once" is read from that file.
"""

from __future__ import annotations

import collections
import signal
import time
from pathlib import Path

import pytest

from sahara_es.engine import WorkflowStatus, start_workflow, wait_for
from sahara_es.engine.engine import events_of
from sahara_es.events import workflow as ev
from sahara_es.store import Store
from tests.engines import EngineProcess, engine_alive, wait_until
from tests.workflows import lines

TTL = 3.0


def effects_once(effects: str, expected: int) -> None:
    counts = collections.Counter(lines(effects))
    assert sorted(counts) == sorted(f"t{i:03d}" for i in range(expected))
    assert {line: n for line, n in counts.items() if n > 1} == {}


def owners(store: Store, workflow: str) -> list[tuple[str, int]]:
    return [(e.engine, e.epoch) for e in events_of(store, f"workflow-{workflow}")
            if isinstance(e, ev.WorkflowOwned)]


def test_a_killed_engine_s_workflow_is_finished_by_another(
    store: Store, url: str, tmp_path: Path
) -> None:
    effects = str(tmp_path / "effects")
    workflow = start_workflow(store, "test.chain", {"tasks": 20, "effects": effects,
                                                    "sleep": 0.1})
    with EngineProcess(url, "first", tmp_path, lease_ttl=TTL) as first:
        wait_until(lambda: len(lines(effects)) >= 6)
        first.kill()
    with EngineProcess(url, "second", tmp_path, lease_ttl=TTL) as second:
        state = wait_for(store, workflow, timeout=60)
        assert second.stop() == 0

    assert state.status is WorkflowStatus.SUCCEEDED
    effects_once(effects, 20)
    taken = owners(store, workflow)
    assert taken[0][0] == "first" and taken[-1][0] == "second"
    assert [epoch for _, epoch in taken] == sorted({epoch for _, epoch in taken})


def test_a_paused_owner_that_lost_its_lease_writes_nothing_when_it_wakes(
    store: Store, url: str, tmp_path: Path
) -> None:
    effects = str(tmp_path / "effects")
    workflow = start_workflow(store, "test.chain", {"tasks": 20, "effects": effects,
                                                    "sleep": 0.1})
    stream = f"workflow-{workflow}"
    with EngineProcess(url, "paused", tmp_path, lease_ttl=TTL) as paused:
        wait_until(lambda: len(lines(effects)) >= 6)
        paused.pause(url)
        with EngineProcess(url, "successor", tmp_path, lease_ttl=TTL):
            state = wait_for(store, workflow, timeout=60)
            finished_at = store.stream_version(stream)
            paused.signal(signal.SIGCONT)
            time.sleep(TTL)
        assert paused.stop() == 0

    assert state.status is WorkflowStatus.SUCCEEDED
    assert store.stream_version(stream) == finished_at
    effects_once(effects, 20)
    taken = [o for o, _ in owners(store, workflow)]
    assert taken[0] == "paused" and taken[-1] == "successor"


def test_sigterm_hands_workflows_back(store: Store, url: str, tmp_path: Path) -> None:
    effects = str(tmp_path / "effects")
    workflow = start_workflow(store, "test.chain", {"tasks": 12, "effects": effects,
                                                    "sleep": 0.1})
    with EngineProcess(url, "leaving", tmp_path, lease_ttl=30) as leaving:
        wait_until(lambda: len(lines(effects)) >= 3)
        assert leaving.stop() == 0
    lease = store.get_lease(f"workflow-{workflow}")
    assert lease is not None and lease.expired(time.time())  # released, not left to expire

    with EngineProcess(url, "staying", tmp_path, lease_ttl=30):
        state = wait_for(store, workflow, timeout=30)

    assert state.status is WorkflowStatus.SUCCEEDED
    effects_once(effects, 12)


def test_a_task_claimed_by_an_engine_that_dies_is_finished_by_the_owner(
    store: Store, url: str, tmp_path: Path
) -> None:
    effects, gate = str(tmp_path / "effects"), tmp_path / "gate"
    with EngineProcess(url, "owner", tmp_path, lease_ttl=TTL) as owner:
        wait_until(lambda: engine_alive(store, "owner"))
        workflow = start_workflow(store, "test.fan-out", {
            "tasks": 20, "effects": effects, "sleep": 0.3, "gate": str(gate)})
        wait_until(lambda: bool(owners(store, workflow)))
        with EngineProcess(url, "claimer", tmp_path, lease_ttl=TTL) as claimer:
            wait_until(lambda: engine_alive(store, "claimer"))
            time.sleep(1)  # the owner's sweep has seen the claimer alive
            gate.touch()
            wait_until(lambda: any(isinstance(e, ev.TaskStarted) and e.engine == "claimer"
                                   for e in events_of(store, f"workflow-{workflow}")))
            claimer.kill()
        state = wait_for(store, workflow, timeout=60)
        owner.stop()

    assert state.status is WorkflowStatus.SUCCEEDED
    counts = collections.Counter(lines(effects))
    assert len(counts) == 22 and set(counts.values()) == {1}
    assert {o for o, _ in owners(store, workflow)} == {"owner"}  # the owner never changed
    claims = [e.run for e in events_of(store, f"workflow-{workflow}")
              if isinstance(e, ev.TaskStarted) and e.engine == "claimer"]
    assert any(_abandoned(store, run) for run in claims), "the owner took a dead claim back"


def _abandoned(store: Store, run: str) -> bool:
    return any(isinstance(e, ev.TaskRunAbandoned) for e in events_of(store, run))


def test_three_engines_share_one_workflow_s_tasks(
    store: Store, url: str, tmp_path: Path
) -> None:
    effects = str(tmp_path / "effects")
    names = ["spread-a", "spread-b", "spread-c"]
    engines = [EngineProcess(url, name, tmp_path, lease_ttl=TTL) for name in names]
    try:
        wait_until(lambda: all(engine_alive(store, n) for n in names), timeout=30)
        workflow = start_workflow(store, "test.fan-out", {"tasks": 60, "effects": effects,
                                                          "sleep": 0.2})
        state = wait_for(store, workflow, timeout=90)
    finally:
        for engine in engines:
            engine.stop()

    assert state.status is WorkflowStatus.SUCCEEDED
    ran_by = collections.Counter(
        e.engine for e in events_of(store, f"workflow-{workflow}")
        if isinstance(e, ev.TaskSucceeded) and e.task_id.startswith("m")
    )
    assert set(ran_by) == set(names), ran_by
    counts = collections.Counter(lines(effects))
    assert len(counts) == 62 and set(counts.values()) == {1}



@pytest.fixture(autouse=True)
def _show_engine_logs(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    request.addfinalizer(lambda: _print_logs(tmp_path))


def _print_logs(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text()[-3000:]}")
