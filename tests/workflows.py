"""Workflows the engine tests and benchmarks run; engine processes load them with
``sahara-es engine --load tests.workflows``.

Their side effects are lines in files, so a test can count how often each really happened.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from sahara_es.engine import (
    Flow,
    PermanentFailure,
    RetryPolicy,
    Spawn,
    Task,
    TaskContext,
    task_type,
    workflow_type,
)


def append_line(path: str, line: str) -> None:
    # One O_APPEND write per line: concurrent writers from several processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []


@task_type("test.effect")
class Effect(Task):
    """Sleeps, then writes its task id to the effects file once; reverts by writing
    ``revert <id>``; reconciles by looking for its line."""

    def execute(self, ctx: TaskContext) -> dict[str, Any]:
        gate = self.args.get("gate")
        while gate and not os.path.exists(gate):  # held until the test opens the gate
            time.sleep(0.02)
        time.sleep(self.args.get("sleep", 0))
        if ctx.task_id == self.args.get("fail_at"):
            raise PermanentFailure(f"{ctx.task_id} was told to fail")
        ctx.check_lease()
        append_line(self.args["effects"], ctx.task_id)
        return {"task": ctx.task_id, "engine": ctx.engine_id}

    def revert(self, ctx: TaskContext, result: dict[str, Any]) -> None:
        if self.args.get("revert_fails"):
            raise RuntimeError(f"cannot revert {result['task']}")
        append_line(self.args["effects"], f"revert {result['task']}")

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> dict[str, Any] | None:
        if ctx.task_id in lines(self.args["effects"]):
            return {"task": ctx.task_id, "engine": "reconciled"}
        return None


@task_type("test.flaky")
class Flaky(Task):
    """Fails with a retryable error until it has been tried ``fail_times`` times."""

    retry = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)

    def execute(self, ctx: TaskContext) -> int:
        if ctx.attempt <= self.args["fail_times"]:
            raise ConnectionError(f"attempt {ctx.attempt} lost its connection")
        return ctx.attempt


@task_type("test.spawner")
class Spawner(Task):
    """One subtask per node, decided at run time."""

    def execute(self, ctx: TaskContext) -> Spawn:
        flow = Flow()
        for i in range(self.args["nodes"]):
            flow.add(f"node{i}", Effect({"effects": self.args["effects"]}))
        return Spawn({"nodes": self.args["nodes"]}, flow)


@task_type("test.noop")
class NoOp(Task):
    """Does nothing; not declared idempotent, so its start is recorded before it runs."""

    def execute(self, ctx: TaskContext) -> None:
        return None

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> dict[str, Any] | None:
        return {}


@task_type("test.noop-idempotent")
class IdempotentNoOp(NoOp):
    idempotent = True


@task_type("test.sleep")
class Sleep(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> str:
        time.sleep(self.args["seconds"])
        return ctx.engine_id


def _effect_args(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in ("effects", "sleep", "fail_at", "revert_fails", "gate")
            if k in params}


@workflow_type("test.chain")
def chain(params: dict[str, Any]) -> Flow:
    """``tasks`` effects, each requiring the previous one."""
    flow = Flow(rollback_on_cancel=params.get("rollback_on_cancel", True))
    previous: list[str] = []
    for i in range(params["tasks"]):
        previous = [flow.add(f"t{i:03d}", Effect(_effect_args(params)), requires=previous)]
    return flow


@workflow_type("test.fan-out")
def fan_out(params: dict[str, Any]) -> Flow:
    """A first task, ``tasks`` independent effects after it, and a last one after them all."""
    flow = Flow()
    args = _effect_args(params)
    first = flow.add("first", Effect(args))
    middle = [flow.add(f"m{i:03d}", Effect(args), requires=[first])
              for i in range(params["tasks"])]
    flow.add("last", Effect(args), requires=middle)
    return flow


@workflow_type("test.spawn")
def spawn(params: dict[str, Any]) -> Flow:
    flow = Flow()
    args = {"effects": params["effects"]}
    first = flow.add("prepare", Effect(args))
    spawner = flow.add("nodes", Spawner({**args, "nodes": params["nodes"]}), requires=[first])
    flow.add("finish", Effect(args), requires=[spawner])
    return flow


@workflow_type("test.flaky")
def flaky(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("flaky", Flaky({"fail_times": params["fail_times"]}))
    return flow


@workflow_type("test.noops")
def noops(params: dict[str, Any]) -> Flow:
    """``tasks`` no-op tasks, as a chain or all in parallel (the TaskFlow comparison)."""
    flow = Flow()
    task = IdempotentNoOp if params.get("idempotent") else NoOp
    previous: list[str] = []
    for i in range(params["tasks"]):
        added = flow.add(f"n{i:04d}", task(), requires=previous)
        previous = [added] if params["shape"] == "linear" else []
    return flow


@workflow_type("test.sleeps")
def sleeps(params: dict[str, Any]) -> Flow:
    """``tasks`` independent tasks that each sleep ``seconds`` (I/O-like work)."""
    flow = Flow()
    for i in range(params["tasks"]):
        flow.add(f"s{i:04d}", Sleep({"seconds": params["seconds"]}))
    return flow
