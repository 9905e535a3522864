"""The engine honours errors' ``retryable`` flag, on both stores: a task raising an error
that is not retryable fails after exactly one attempt (counted from the recorded events),
and the workflow rolls back saying why; a retryable one is retried under the policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sahara_es.engine import (
    Engine,
    EngineConfig,
    Flow,
    RetryPolicy,
    Task,
    TaskContext,
    WorkflowStatus,
    start_workflow,
    task_type,
    wait_for,
    workflow_type,
)
from sahara_es.engine.engine import events_of
from sahara_es.events import workflow as ev
from sahara_es.infra.placement import NoValidHost
from sahara_es.infra.ssh import ConnectFailed
from sahara_es.store import Store

ERRORS = {
    "no-valid-host": lambda: NoValidHost("nothing fits 64 vcpus and 512 GiB"),
    "connect-failed": lambda: ConnectFailed("connection refused"),
}


@task_type("rules.fail-with")
class FailWith(Task):
    """Raises the named error on every attempt up to ``fail_times``; a policy of 4 attempts."""

    retry = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.02)

    def execute(self, ctx: TaskContext) -> int:
        if ctx.attempt <= self.args["fail_times"]:
            raise ERRORS[self.args["error"]]()
        return ctx.attempt


@task_type("rules.step")
class Step(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> str:
        return ctx.task_id


@workflow_type("rules.place-then-fail")
def place_then_fail(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("before", Step())
    flow.add("place", FailWith(params), requires=["before"])
    return flow


@pytest.fixture
def engine(store: Store) -> Iterator[Engine]:
    running = Engine(store, EngineConfig(concurrency=4, lease_ttl=10, sweep_interval=0.05))
    yield running.start()
    running.stop()


def of_type(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_a_task_raising_a_non_retryable_error_fails_after_exactly_one_attempt(
        store: Store, engine: Engine) -> None:
    workflow = start_workflow(store, "rules.place-then-fail",
                              {"error": "no-valid-host", "fail_times": 9})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.ROLLED_BACK
    events = events_of(store, f"workflow-{workflow}")
    attempts = [e for e in of_type(events, ev.TaskStarted) if e.task_id == "place"]
    assert [a.attempt for a in attempts] == [1]  # the policy allowed 4
    assert of_type(events, ev.TaskRetried) == []
    (failed,) = of_type(events, ev.TaskFailed)
    assert (failed.task_id, failed.attempt, failed.retryable, failed.final) == (
        "place", 1, False, True)
    assert failed.error == ("NoValidHost: nothing fits 64 vcpus and 512 GiB"
                            " (not retried: NoValidHost is not retryable)")
    (workflow_failed,) = of_type(events, ev.WorkflowFailed)
    assert workflow_failed.error == failed.error
    assert state.failure is not None and state.failure.error == failed.error
    assert [r.task_id for r in of_type(events, ev.TaskReverted)] == ["before"]


def test_a_retryable_error_is_still_retried_under_the_policy(
        store: Store, engine: Engine) -> None:
    workflow = start_workflow(store, "rules.place-then-fail",
                              {"error": "connect-failed", "fail_times": 2})

    state = wait_for(store, workflow)

    assert state.status is WorkflowStatus.SUCCEEDED
    assert state.tasks["place"].result == 3
    events = events_of(store, f"workflow-{workflow}")
    assert [a.attempt for a in of_type(events, ev.TaskStarted) if a.task_id == "place"] == [
        1, 2, 3]
    assert [(f.attempt, f.retryable, f.final) for f in of_type(events, ev.TaskFailed)] == [
        (1, True, False), (2, True, False)]
    assert [r.next_attempt for r in of_type(events, ev.TaskRetried)] == [2, 3]
