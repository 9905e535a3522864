"""The engine's retry decision (``engine/attempts.py``): errors that say they are not
retryable fail their task at once, with no retry of its policy burned; the others keep the
policy's retries and backoff."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from sahara_es.commands.errors import ChangedConcurrently, Conflict, Invalid
from sahara_es.engine import PermanentFailure, RetryPolicy, Task, TaskContext
from sahara_es.engine.attempts import Abandoned, TaskRun, decide, failure_text, revert
from sahara_es.engine.flow import LeaseExpired, TaskSpec
from sahara_es.events import DomainEvent
from sahara_es.events import workflow as ev
from sahara_es.events.statuses import IllegalTransition
from sahara_es.infra.base import CapacityExhausted, InfraError
from sahara_es.infra.local import InstanceUnreachable
from sahara_es.infra.placement import NoValidHost
from sahara_es.infra.quotas import QuotaExceeded
from sahara_es.infra.ssh import (
    CommandsFailed,
    ConnectFailed,
    HostKeyMismatch,
    Node,
    RemoteCommandTimeout,
)
from sahara_es.store import (
    ClaimRejected,
    ConcurrencyConflict,
    LeaseLost,
    NameTaken,
    Unavailable,
)

NODE = Node("127.0.0.2", 22, "u", "ssh-ed25519 AAAA", name="n1")

NOT_RETRYABLE = [
    NoValidHost("no host fits 4 vcpus"),
    HostKeyMismatch("127.0.0.2 answers with another key"),
    QuotaExceeded("p1", "cores", 8, 2, 10),
    CapacityExhausted("no address left"),
    InfraError("refusing to remove privileged user root"),
    ClaimRejected("host:h1:vcpus would be overcommitted"),
    NameTaken("taken", owner_id="x"),
    Invalid("bad"),
    Conflict("cluster is Deleting"),
    IllegalTransition("cluster status", "Deleting", "Active"),
    CommandsFailed({NODE: HostKeyMismatch("changed key")}, {}),
]

RETRYABLE = [
    ConnectFailed("no session after 5 tries"),
    RemoteCommandTimeout(NODE, "sleep 9", 1.0, "", ""),
    InstanceUnreachable("no answer on ssh yet"),
    Unavailable("the store did not answer"),
    ChangedConcurrently("changed meanwhile"),
    CommandsFailed({NODE: ConnectFailed("down")}, {}),
    ConnectionError("reset by peer"),  # no flag: the policy decides
    RuntimeError("something odd"),
]


@pytest.mark.parametrize("error", NOT_RETRYABLE, ids=lambda e: type(e).__name__)
def test_errors_flagged_not_retryable_are_not_retried(error: Exception) -> None:
    decision = decide(error)
    assert not decision.retryable
    assert decision.reason == f"{type(error).__name__} is not retryable"
    assert failure_text(error) == (f"{type(error).__name__}: {error} (not retried:"
                                   f" {type(error).__name__} is not retryable)")


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: type(e).__name__)
def test_retryable_and_unflagged_errors_keep_the_policy(error: Exception) -> None:
    assert decide(error).retryable
    assert failure_text(error) == f"{type(error).__name__}: {error}"


def test_permanent_failures_and_lost_work_are_never_retried() -> None:
    assert not decide(PermanentFailure("no capacity")).retryable
    assert failure_text(PermanentFailure("no capacity")) == "PermanentFailure: no capacity"
    for lost in (LeaseExpired("x"), LeaseLost("x"), ConcurrencyConflict("x"), Abandoned("x")):
        assert not decide(lost).retryable  # retryable as a store write, not as a task


# -- a task's attempts, with the events they record ------------------------------------------

class Memory:
    """A recorder that keeps what a task run records."""

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def record(self, events: list[DomainEvent], *, durable: bool) -> None:
        self.events.extend(events)


class Raises(Task):
    """Raises ``errors[attempt - 1]`` (the last one again after), then succeeds if told."""

    retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)
    revert_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=3, backoff=0.001,
                                                      max_backoff=0.002)

    def __init__(self, errors: list[Exception], succeed_after: bool = False) -> None:
        super().__init__({})
        self.errors = errors
        self.succeed_after = succeed_after
        self.calls = 0

    def execute(self, ctx: TaskContext) -> Any:
        self.calls += 1
        if self.calls > len(self.errors) and self.succeed_after:
            return "done"
        raise self.errors[min(self.calls, len(self.errors)) - 1]

    def revert(self, ctx: TaskContext, result: Any) -> None:
        self.execute(ctx)


def context(attempt: int = 1) -> TaskContext:
    return TaskContext(workflow_id="w", task_id="t", attempt=attempt, engine_id="e",
                       params={}, results={}, lease_valid=lambda: True)


def run(task: Raises) -> tuple[Any, list[DomainEvent]]:
    memory = Memory()
    outcome = TaskRun(spec=TaskSpec("t", "test.raises", {}), task=task, first_attempt=1,
                      engine="e", epoch=1, context=context, recorder=memory)()
    return outcome, memory.events


def of_type(events: list[DomainEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_a_task_failing_not_retryable_fails_after_one_attempt_saying_why() -> None:
    task = Raises([NoValidHost("nothing fits 64 vcpus")])

    outcome, events = run(task)

    assert task.calls == 1
    assert not outcome.succeeded and not outcome.abandoned
    assert len(of_type(events, ev.TaskStarted)) == 1
    assert of_type(events, ev.TaskRetried) == []
    (failed,) = of_type(events, ev.TaskFailed)
    assert (failed.attempt, failed.retryable, failed.final) == (1, False, True)
    assert failed.error == ("NoValidHost: nothing fits 64 vcpus"
                            " (not retried: NoValidHost is not retryable)")
    assert outcome.error == failed.error  # what WorkflowFailed records


def test_a_retryable_error_keeps_the_retries_and_backoff() -> None:
    task = Raises([ConnectFailed("refused"), ConnectFailed("refused")], succeed_after=True)

    outcome, events = run(task)

    assert outcome.succeeded and outcome.result == "done"
    assert task.calls == 3
    assert [(f.attempt, f.retryable, f.final) for f in of_type(events, ev.TaskFailed)] == [
        (1, True, False), (2, True, False)]
    retried = of_type(events, ev.TaskRetried)
    assert [r.next_attempt for r in retried] == [2, 3]
    assert all(r.delay > 0 for r in retried)


def test_a_retryable_error_then_a_non_retryable_one_stops_there() -> None:
    task = Raises([ConnectFailed("refused"), HostKeyMismatch("another server's key")])

    outcome, events = run(task)

    assert task.calls == 2
    assert [(f.attempt, f.retryable, f.final) for f in of_type(events, ev.TaskFailed)] == [
        (1, True, False), (2, False, True)]
    assert "HostKeyMismatch is not retryable" in (outcome.error or "")


def test_retries_run_out_on_a_retryable_error_as_before() -> None:
    task = Raises([ConnectionError("reset")])

    outcome, events = run(task)

    assert task.calls == 3
    assert [(f.attempt, f.retryable, f.final) for f in of_type(events, ev.TaskFailed)] == [
        (1, True, False), (2, True, False), (3, True, True)]
    assert outcome.error == "ConnectionError: reset"


def test_a_revert_failing_not_retryable_stops_at_once() -> None:
    task = Raises([QuotaExceeded("p1", "ram_mb", 4096, 0, 8192)])
    memory = Memory()

    outcome = revert(TaskSpec("t", "test.raises", {}), task, None, 1, "e", context(), memory)

    assert task.calls == 1 and not outcome.succeeded
    (failed,) = of_type(memory.events, ev.TaskRevertFailed)
    assert (failed.attempt, failed.final) == (1, True)
    assert "QuotaExceeded is not retryable" in failed.error


def test_a_revert_failing_retryably_uses_its_retries() -> None:
    task = Raises([ConnectFailed("refused")])
    memory = Memory()

    outcome = revert(TaskSpec("t", "test.raises", {}), task, None, 1, "e", context(), memory)

    assert task.calls == 3 and not outcome.succeeded
    assert [(f.attempt, f.final) for f in of_type(memory.events, ev.TaskRevertFailed)] == [
        (1, False), (2, False), (3, True)]
