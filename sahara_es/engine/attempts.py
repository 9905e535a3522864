"""Running one task: its attempts under its retry policy, its reconcile, its revert.

The same code runs a task wherever it runs: on the workflow's owner (events go to the
workflow's stream) or on an engine that claimed it (events go to the claim stream). A
``Recorder`` is that difference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import tenacity

from sahara_es.engine.flow import (
    LeaseExpired,
    PermanentFailure,
    RetryPolicy,
    Spawn,
    Task,
    TaskContext,
    TaskSpec,
    WorkGivenBack,
)
from sahara_es.events import DomainEvent
from sahara_es.events import workflow as ev
from sahara_es.store import ConcurrencyConflict, LeaseLost


class Recorder(Protocol):
    def record(self, events: list[DomainEvent], *, durable: bool) -> None:
        """Record ``events``; with ``durable``, return only once they are stored."""


class Abandoned(Exception):
    """The engine lost the work (lease lost or claim withdrawn): stop, record nothing."""


LOST = (LeaseExpired, LeaseLost, ConcurrencyConflict, Abandoned, WorkGivenBack)


@dataclass(frozen=True)
class Outcome:
    task_id: str
    succeeded: bool
    result: Any = None
    error: str | None = None
    abandoned: bool = False


def describe(error: BaseException | None) -> str:
    return f"{type(error).__name__}: {error}" if error is not None else "unknown error"


@dataclass(frozen=True)
class RetryDecision:
    """Whether a failed attempt may be tried again, and why not when it may not."""

    retryable: bool
    reason: str = ""


def decide(error: BaseException) -> RetryDecision:
    """May another attempt of the task that raised ``error`` succeed?

    - ``PermanentFailure``: never (the task says so);
    - an error with a ``retryable`` flag (the store's, infrastructure's, quotas', SSH's,
      plugins', commands' hierarchies): the flag says. ``NoValidHost``, ``HostKeyMismatch``,
      ``QuotaExceeded``... fail at once, with no retry of the task's policy burned;
    - anything else (a ``ConnectionError``, an ``OSError``...): yes, within the task's
      ``RetryPolicy``.

    Lost work (``LOST``) is never retried either: the engine stops and records nothing.
    """
    if isinstance(error, LOST):
        return RetryDecision(False, "the engine lost the work")
    if isinstance(error, PermanentFailure):
        return RetryDecision(False, "a permanent failure")
    flag = getattr(error, "retryable", None)
    if isinstance(flag, bool) and not flag:
        return RetryDecision(False, f"{type(error).__name__} is not retryable")
    return RetryDecision(True)


def _retryable(error: BaseException) -> bool:
    return decide(error).retryable


def failure_text(error: BaseException) -> str:
    """What a failure's event records: the error's class and message, and, when its own
    flag forbade a retry, that it was not retried for that reason."""
    text = describe(error)
    if isinstance(error, (PermanentFailure, *LOST)):
        return text
    decision = decide(error)
    return text if decision.retryable else f"{text} (not retried: {decision.reason})"


def _retrying(policy: RetryPolicy, before_sleep: Callable[[tenacity.RetryCallState], None],
              attempts: int) -> tenacity.Retrying:
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(max(1, attempts))
    if policy.timeout is not None:
        stop = stop | tenacity.stop_after_delay(policy.timeout)
    return tenacity.Retrying(
        stop=stop,
        wait=tenacity.wait_exponential_jitter(multiplier=policy.backoff, max=policy.max_backoff,
                                              jitter=policy.backoff),
        retry=tenacity.retry_if_exception(_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )


@dataclass
class TaskRun:
    """One engine's turn at a task: from attempt ``first_attempt`` until an outcome."""

    spec: TaskSpec
    task: Task
    first_attempt: int
    engine: str
    epoch: int
    context: Callable[[int], TaskContext]
    recorder: Recorder
    run: str | None = None  # the claim stream, when claimed
    start_recorded: bool = False  # the owner recorded the first TaskStarted already
    intent: dict[str, Any] | None = None  # a started attempt that left no outcome

    def __post_init__(self) -> None:
        self.attempt = self.first_attempt

    def __call__(self) -> Outcome:
        try:
            if self.intent is not None and not self.task.idempotent:
                found = self.task.reconcile(self.context(self.first_attempt), self.intent)
                if found is not None:
                    return self._succeeded(self.first_attempt, found, 0.0, reconciled=True)
            return self._attempts()
        except LOST as lost:
            return Outcome(self.spec.id, False, error=describe(lost), abandoned=True)
        except Exception as error:
            return self._failed(error)

    def _attempts(self) -> Outcome:
        task_id, first = self.spec.id, self.first_attempt

        def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            attempt = first + state.attempt_number - 1
            self.recorder.record([
                ev.TaskFailed(task_id, attempt, describe(state.outcome.exception()), True,
                              self.engine, final=False),
                ev.TaskRetried(task_id, attempt + 1, state.next_action.sleep),
            ], durable=False)

        retrying = _retrying(self.task.retry, before_sleep,
                             self.task.retry.attempts - first + 1)
        for attempt in retrying:
            with attempt:
                number = self.attempt = first + attempt.retry_state.attempt_number - 1
                if number != first or not self.start_recorded:
                    self.recorder.record(
                        [ev.TaskStarted(task_id, number, self.engine, self.epoch, self.run)],
                        durable=not self.task.idempotent,
                    )
                started = time.monotonic()
                result = self.task.execute(self.context(number))
                return self._succeeded(number, result, time.monotonic() - started)
        raise AssertionError("tenacity ends with a result or an exception")

    def _succeeded(self, attempt: int, result: Any, duration: float,
                   reconciled: bool = False) -> Outcome:
        events: list[DomainEvent] = []
        if isinstance(result, Spawn):
            spawned = [
                {**spec.to_data(), "id": f"{self.spec.id}.{spec.id}",
                 "requires": [f"{self.spec.id}.{r}" for r in spec.requires]}
                for spec in result.flow.specs
            ]
            result = result.result
            events.append(ev.TasksSpawned(self.spec.id, spawned))
        events.insert(0, ev.TaskSucceeded(self.spec.id, attempt, result, self.engine,
                                          reconciled=reconciled, duration=duration))
        self.recorder.record(events, durable=False)
        return Outcome(self.spec.id, True, result=result)

    def _failed(self, error: Exception) -> Outcome:
        text = failure_text(error)
        self.recorder.record([ev.TaskFailed(
            self.spec.id, self.attempt, text, _retryable(error), self.engine,
        )], durable=False)
        return Outcome(self.spec.id, False, error=text)


def revert(spec: TaskSpec, task: Task, result: Any, attempt: int, engine: str,
           context: TaskContext, recorder: Recorder) -> Outcome:
    """Undo a succeeded task from its recorded result, retrying per ``revert_retry``."""
    recorder.record([ev.TaskReverting(spec.id, attempt, engine)], durable=True)
    policy = task.revert_retry

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        recorder.record([ev.TaskRevertFailed(spec.id, state.attempt_number,
                                             describe(state.outcome.exception()), False,
                                             engine)], durable=False)

    tried = 0
    try:
        for attempt_ in _retrying(policy, before_sleep, policy.attempts):
            with attempt_:
                tried = attempt_.retry_state.attempt_number
                task.revert(context, result)
    except LOST as lost:
        return Outcome(spec.id, False, error=describe(lost), abandoned=True)
    except Exception as error:
        # A revert failing with an error that is not retryable stops at once, like a task.
        text = failure_text(error)
        recorder.record([ev.TaskRevertFailed(spec.id, max(tried, 1), text, True, engine)],
                        durable=False)
        return Outcome(spec.id, False, error=text)
    recorder.record([ev.TaskReverted(spec.id, engine)], durable=False)
    return Outcome(spec.id, True)
