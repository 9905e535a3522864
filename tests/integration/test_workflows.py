"""The workflow engine in one process, on both stores: graphs, retries, rollback, cancel and
resumption of a half-done task. Engine processes are tested in test_engine_processes.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sahara_es.engine import (
    Engine,
    EngineConfig,
    WorkflowStatus,
    request_cancel,
    start_workflow,
    wait_for,
)
from sahara_es.engine.engine import events_of
from sahara_es.events import registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store
from tests.factories import events, new_stream
from tests.workflows import append_line, lines


@pytest.fixture
def engine(store: Store) -> Iterator[Engine]:
    # A long lease: these tests are about one owner, however slow the machine is.
    running = Engine(store, EngineConfig(concurrency=8, lease_ttl=10, sweep_interval=0.05))
    yield running.start()
    running.stop()


@pytest.fixture
def effects(tmp_path: Path) -> str:
    return str(tmp_path / "effects")


def history(store: Store, workflow_id: str) -> list[Any]:
    return events_of(store, f"workflow-{workflow_id}")


def of_type(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_a_chain_runs_each_task_once_in_order(store: Store, engine: Engine, effects: str) -> None:
    workflow = start_workflow(store, "test.chain", {"tasks": 5, "effects": effects})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.SUCCEEDED
    assert lines(effects) == ["t000", "t001", "t002", "t003", "t004"]
    events = history(store, workflow)
    assert [e.task_id for e in of_type(events, ev.TaskSucceeded)] == lines(effects)
    started = of_type(events, ev.TaskStarted)
    assert {(e.engine, e.epoch) for e in started} == {(engine.engine_id, state.epoch)}


def test_fan_out_then_fan_in(store: Store, engine: Engine, effects: str) -> None:
    workflow = start_workflow(store, "test.fan-out", {"tasks": 12, "effects": effects})

    assert wait_for(store, workflow).status is WorkflowStatus.SUCCEEDED

    done = lines(effects)
    assert done[0] == "first" and done[-1] == "last"
    assert sorted(done[1:-1]) == [f"m{i:03d}" for i in range(12)]


def test_a_task_spawns_one_subtask_per_node(store: Store, engine: Engine, effects: str) -> None:
    workflow = start_workflow(store, "test.spawn", {"nodes": 4, "effects": effects})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.SUCCEEDED
    done = lines(effects)
    assert done[0] == "prepare" and done[-1] == "finish"
    assert sorted(done[1:-1]) == [f"nodes.node{i}" for i in range(4)]
    spawned = of_type(history(store, workflow), ev.TasksSpawned)
    assert [t["id"] for t in spawned[0].tasks] == [f"nodes.node{i}" for i in range(4)]


def test_retryable_failures_are_retried_and_recorded(store: Store, engine: Engine) -> None:
    workflow = start_workflow(store, "test.flaky", {"fail_times": 2})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.SUCCEEDED
    assert state.tasks["flaky"].result == 3
    events = history(store, workflow)
    failed = of_type(events, ev.TaskFailed)
    assert [(f.attempt, f.retryable, f.final) for f in failed] == [(1, True, False),
                                                                     (2, True, False)]
    assert [r.next_attempt for r in of_type(events, ev.TaskRetried)] == [2, 3]


def test_failure_beyond_the_retry_policy_rolls_back(store: Store, engine: Engine) -> None:
    workflow = start_workflow(store, "test.flaky", {"fail_times": 5})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.ROLLED_BACK
    assert state.failure is not None and "attempt 3 lost its connection" in state.failure.error


def test_a_permanent_failure_reverts_succeeded_tasks_in_reverse_order(
    store: Store, engine: Engine, effects: str
) -> None:
    workflow = start_workflow(store, "test.chain",
                              {"tasks": 6, "effects": effects, "fail_at": "t004"})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.ROLLED_BACK
    assert lines(effects) == ["t000", "t001", "t002", "t003",
                              "revert t003", "revert t002", "revert t001", "revert t000"]
    events = history(store, workflow)
    failed = of_type(events, ev.TaskFailed)
    assert [(f.task_id, f.retryable, f.final) for f in failed] == [("t004", False, True)]
    reverted = of_type(events, ev.TaskReverted)
    assert [r.task_id for r in reverted] == ["t003", "t002", "t001", "t000"]
    assert of_type(events, ev.WorkflowRolledBack)[0].reverted == ["t003", "t002", "t001", "t000"]
    assert "t005" not in {e.task_id for e in of_type(events, ev.TaskStarted)}


def test_a_revert_that_keeps_failing_leaves_rollback_failed(
    store: Store, engine: Engine, effects: str
) -> None:
    workflow = start_workflow(store, "test.chain", {
        "tasks": 3, "effects": effects, "fail_at": "t002", "revert_fails": True})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.ROLLBACK_FAILED
    assert state.failure is not None and state.failure.task_id == "t001"
    assert "cannot revert t001" in state.failure.error
    attempts = of_type(history(store, workflow), ev.TaskRevertFailed)
    assert [(a.task_id, a.final) for a in attempts] == [("t001", False), ("t001", False),
                                                        ("t001", True)]
    assert lines(effects) == ["t000", "t001"]  # nothing reverted, nothing hidden


@pytest.mark.parametrize("rollback", [True, False])
def test_cancel_stops_at_the_next_task_boundary(
    store: Store, engine: Engine, effects: str, rollback: bool
) -> None:
    workflow = start_workflow(store, "test.chain", {
        "tasks": 40, "effects": effects, "sleep": 0.1, "rollback_on_cancel": rollback})
    wait_until(lambda: len(lines(effects)) >= 3)

    request_cancel(store, workflow, "changed my mind")
    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.CANCELLED
    done = [line for line in lines(effects) if not line.startswith("revert")]
    assert 3 <= len(done) < 40
    events = history(store, workflow)
    cancelled_at = next(i for i, e in enumerate(events) if isinstance(e, ev.CancelRequested))
    assert not of_type(events[cancelled_at:], ev.TaskStarted)
    reverts = [line for line in lines(effects) if line.startswith("revert")]
    assert reverts == ([f"revert {t}" for t in reversed(done)] if rollback else [])
    assert of_type(events, ev.WorkflowCancelled)[0].rolled_back is rollback


def test_a_half_done_task_is_reconciled_not_repeated(store: Store, effects: str) -> None:
    """An engine died after recording a task's start and doing its side effect, before
    recording the outcome: the next owner asks the task, and does not do it again."""
    workflow = start_workflow(store, "test.chain", {"tasks": 3, "effects": effects})
    stream = f"workflow-{workflow}"
    dead = store.acquire_lease(stream, "dead-engine", ttl=0.3)
    store.fence(stream, dead)
    store.append(stream, [registry.new_event(e) for e in (
        ev.WorkflowOwned("dead-engine", dead.epoch),
        ev.TaskStarted("t000", 1, "dead-engine", dead.epoch),
    )], 1, lease=dead)
    append_line(effects, "t000")

    with started_engine(store):
        state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.SUCCEEDED
    assert lines(effects) == ["t000", "t001", "t002"]
    succeeded = of_type(history(store, workflow), ev.TaskSucceeded)
    assert [(s.task_id, s.reconciled) for s in succeeded] == [
        ("t000", True), ("t001", False), ("t002", False)]


def test_a_started_task_that_did_not_happen_runs_again(store: Store, effects: str) -> None:
    workflow = start_workflow(store, "test.chain", {"tasks": 2, "effects": effects})
    stream = f"workflow-{workflow}"
    dead = store.acquire_lease(stream, "dead-engine", ttl=0.3)
    store.fence(stream, dead)
    store.append(stream, [registry.new_event(ev.TaskStarted("t000", 1, "dead-engine",
                                                            dead.epoch))], 1, lease=dead)

    with started_engine(store):
        state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.SUCCEEDED
    assert lines(effects) == ["t000", "t001"]


def test_a_stale_owner_cannot_write(store: Store, effects: str) -> None:
    workflow = start_workflow(store, "test.chain", {"tasks": 2, "effects": effects})
    stream = f"workflow-{workflow}"
    stale = store.acquire_lease(stream, "stale-engine", ttl=0.3)
    store.fence(stream, stale)

    with started_engine(store):
        wait_for(store, workflow)

    from sahara_es.store import LeaseLost

    with pytest.raises(LeaseLost):
        store.append(stream, [registry.new_event(ev.CancelRequested("late"))],
                     store.stream_version(stream), lease=stale)


@contextlib.contextmanager
def started_engine(store: Store) -> Iterator[Engine]:
    running = Engine(store, EngineConfig(lease_ttl=10, sweep_interval=0.05))
    yield running.start()
    running.stop()


def wait_until(condition: Any, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_one_engine_runs_many_workflows_at_once(store: Store, engine: Engine,
                                                tmp_path: Path) -> None:
    workflows = [start_workflow(store, "test.chain", {
        "tasks": 3, "effects": str(tmp_path / f"effects-{i}"), "sleep": 0.3})
        for i in range(10)]

    states = [wait_for(store, w) for w in workflows]

    assert {s.status for s in states} == {WorkflowStatus.SUCCEEDED}
    spans = [(_first(store, w, ev.WorkflowOwned), _first(store, w, ev.WorkflowSucceeded))
             for w in workflows]
    most_at_once = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert most_at_once >= 5


def _first(store: Store, workflow: str, kind: type) -> Any:
    return next(e.metadata.occurred_at for e in store.read(f"workflow-{workflow}")
                if e.type == kind.event_type)  # type: ignore[attr-defined]


def test_an_engine_leaves_alone_a_lease_named_like_a_workflow_on_another_stream(
    store: Store, engine: Engine, effects: str
) -> None:
    foreign = new_stream("workflow")
    store.append(foreign, events(1), 0)
    store.acquire_lease(foreign, "someone-else", ttl=0.1)
    time.sleep(0.3)  # expired: an engine would take a workflow's lease now

    workflow = start_workflow(store, "test.chain", {"tasks": 2, "effects": effects})

    assert wait_for(store, workflow).status is WorkflowStatus.SUCCEEDED
    lease = store.get_lease(foreign)
    assert lease is not None and lease.owner == "someone-else"
    assert store.stream_version(foreign) == 1
