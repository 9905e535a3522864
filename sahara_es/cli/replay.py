"""``sahara-es replay workflow ID``: rebuild a workflow's state from its events, one by one,
and tell its story: who owned it, every task attempt, and what was reverted."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.table import Table

from sahara_es.cli.context import Context, console
from sahara_es.cli.history import print_table, short_time
from sahara_es.engine import WorkflowState
from sahara_es.events import RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store

_NEVER = datetime.max.replace(tzinfo=UTC)


@dataclass
class Attempt:
    task_id: str
    attempt: int
    engine: str | None = None
    run: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str = "running"
    error: str | None = None
    reverted: bool = False
    reverted_by: str | None = None

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return round((self.ended_at - self.started_at).total_seconds(), 6)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = self.duration
        for key in ("started_at", "ended_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


@dataclass
class Ownership:
    engine: str
    epoch: int
    version: int
    at: datetime


class Timeline:
    """Task attempts keyed by (task, attempt, engine), fed by the workflow's stream and by the
    claim streams of its offered tasks; the same fact seen in both is counted once. An attempt
    a new owner starts again after a takeover is a row of its own."""

    def __init__(self) -> None:
        self.attempts: dict[tuple[str, int, str], Attempt] = {}
        self.owners: list[Ownership] = []

    def _attempt(self, task_id: str, attempt: int, engine: str) -> Attempt:
        key = (task_id, attempt, engine)
        if key not in self.attempts:
            self.attempts[key] = Attempt(task_id, attempt, engine)
        return self.attempts[key]

    def _latest(self, task_id: str) -> Attempt | None:
        done = [a for a in self.attempts.values()
                if a.task_id == task_id and a.outcome in ("succeeded", "reconciled")]
        return max(done, key=lambda a: a.ended_at or _NEVER) if done else None

    def add(self, recorded: RecordedEvent, event: Any) -> None:
        at = recorded.metadata.occurred_at
        match event:
            case ev.WorkflowOwned():
                for attempt in self.attempts.values():
                    if attempt.ended_at is None and attempt.run is None:
                        attempt.outcome = f"cut off: {event.engine} took over"
                self.owners.append(Ownership(event.engine, event.epoch, recorded.version, at))
            case ev.TaskStarted():
                attempt = self._attempt(event.task_id, event.attempt, event.engine)
                attempt.run = attempt.run or event.run
                if attempt.started_at is None or at < attempt.started_at:
                    attempt.started_at = at
            case ev.TaskSucceeded() | ev.TaskFailed():
                attempt = self._attempt(event.task_id, event.attempt, event.engine)
                if attempt.ended_at is None:
                    attempt.ended_at = at
                    if isinstance(event, ev.TaskSucceeded):
                        attempt.outcome = "reconciled" if event.reconciled else "succeeded"
                    else:
                        attempt.outcome = "failed" if event.final else "failed, retried"
                        attempt.error = event.error
            case ev.TaskRunAbandoned():
                for attempt in self.attempts.values():
                    if attempt.run == recorded.stream_id and attempt.ended_at is None:
                        attempt.outcome, attempt.ended_at = "abandoned", at
                        attempt.error = event.reason
            case ev.TaskReverted():
                latest = self._latest(event.task_id)
                if latest is not None:
                    latest.reverted, latest.reverted_by = True, event.engine
            case ev.TaskRevertFailed() if event.final:
                latest = self._latest(event.task_id)
                if latest is not None:
                    latest.reverted_by = f"{event.engine} (revert failed: {event.error})"

    def rows(self) -> list[Attempt]:
        return sorted(self.attempts.values(),
                      key=lambda a: (a.started_at or a.ended_at or _NEVER,
                                     a.task_id, a.attempt))


@dataclass
class Replay:
    state: WorkflowState
    timeline: Timeline
    steps: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.state.summary(),
            "owners": [{**asdict(o), "at": o.at.isoformat()} for o in self.timeline.owners],
            "timeline": [a.to_dict() for a in self.timeline.rows()],
            "steps": self.steps,
        }


def replay_workflow(store: Store, workflow_id: str, until: int | None = None) -> Replay:
    """Fold ``workflow-<id>`` event by event up to ``until``, then the claim streams it names
    (up to the time of the last event folded)."""
    state = WorkflowState(f"workflow-{workflow_id}")
    timeline = Timeline()
    steps: list[dict[str, Any]] = []
    last_at: datetime | None = None
    for recorded in store.read(state.stream_id, to_version=until):
        state.fold(recorded)
        event = registry.decode(recorded)
        timeline.add(recorded, event)
        last_at = recorded.metadata.occurred_at
        data = event.to_data()
        steps.append({"version": recorded.version, "type": recorded.type,
                      "at": last_at.isoformat(), "task": data.get("task_id"),
                      "engine": recorded.metadata.engine_id, "status": str(state.status)})
    runs = sorted({a.run for a in timeline.attempts.values() if a.run})
    for run in runs:
        for recorded in store.read(run):
            if last_at is not None and recorded.metadata.occurred_at > last_at:
                break
            if registry.known(recorded.type):
                timeline.add(recorded, registry.decode(recorded))
    return Replay(state, timeline, steps)


@click.group("replay")
def replay() -> None:
    """Rebuild state from events and show how it came to be."""


@replay.command("workflow")
@click.argument("workflow_id")
@click.option("--until", type=int, help="Stop at this version: the state as it was then.")
@click.option("--steps", "show_steps", is_flag=True, help="Also print the status after each event.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def replay_workflow_command(obj: Context, workflow_id: str, until: int | None,
                            show_steps: bool, as_json: bool) -> None:
    """The workflow's timeline: task, engine, attempt, duration, outcome, revert."""
    result = replay_workflow(obj.store(), workflow_id, until)
    if result.state.version == 0:
        raise click.ClickException(f"no workflow {workflow_id}")
    if as_json:
        click.echo(json.dumps(result.to_dict(), default=str, sort_keys=True))
        return
    summary = result.state.summary()
    failure = summary["failure"]
    console.print(f"workflow {workflow_id} ({summary['type']}) at v{summary['version']}:"
                  f" [bold]{summary['status']}[/bold]"
                  + (f", failed at {failure['task_id']}: {failure['error']}" if failure else ""),
                  highlight=False)
    for owner in result.timeline.owners:
        console.print(f"  v{owner.version} {short_time(owner.at)} owned by {owner.engine}"
                      f" (epoch {owner.epoch})", highlight=False)
    if show_steps:
        steps = Table(title="steps")
        for column in ("v", "time", "event", "task", "engine", "status after"):
            steps.add_column(column)
        for step in result.steps:
            steps.add_row(str(step["version"]), step["at"][11:23], step["type"],
                          step["task"] or "", step["engine"] or "", step["status"])
        print_table(steps)
    table = Table(title="timeline")
    for column in ("task", "attempt", "engine", "started", "duration", "outcome", "reverted"):
        table.add_column(column, justify="right" if column in ("attempt", "duration") else "left",
                         no_wrap=column in ("task", "engine", "started", "duration"))
    for attempt in result.timeline.rows():
        duration = attempt.duration
        outcome = attempt.outcome + (f": {attempt.error}" if attempt.error else "")
        table.add_row(attempt.task_id, str(attempt.attempt), attempt.engine or "",
                      short_time(attempt.started_at)[11:] if attempt.started_at else "",
                      f"{duration * 1000:.1f} ms" if duration is not None else "",
                      outcome, f"yes ({attempt.reverted_by})" if attempt.reverted
                      else (attempt.reverted_by or ""))
    print_table(table)
