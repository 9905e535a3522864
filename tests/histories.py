"""Recorded workflow histories: their file format, and their replay against the current code.

A history file (``tests/fixtures/histories/<scenario>.json``, see the README there) holds the
events of one scenario's workflow streams (with their claim and cancel streams) and of the
cluster stream they read, each as ``sahara-es events export`` writes it, and what the engine
made of each workflow when it was recorded (``workflows``). ``replay`` rebuilds a workflow
from them, loaded in a fresh store, with the code as it is now, in the manner of Temporal's
replay tests: the current code must plan the graph the history recorded, re-plan the same
subtasks from the recorded results where it can do so without the world, fold every event
to the statuses recorded, and take at each step a decision the history shows it took.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, NoReturn

from sahara_es.cli.events import import_events
from sahara_es.cli.history import to_record
from sahara_es.engine import LeaseExpired, Spawn, TaskContext, TaskStatus, WorkflowState
from sahara_es.engine.flow import TaskSpec, build_task, plan
from sahara_es.events import DomainEvent, RecordedEvent, category_of, registry
from sahara_es.events import workflow as ev
from sahara_es.store import Store, open_store

FOLDER = Path(__file__).resolve().parent / "fixtures" / "histories"
FORMAT = 1
TASK_MODULES = ("sahara_es.plugins.fake",)
"""Modules whose import registers task types the histories name, besides the
``sahara_es.workflows`` and ``sahara_es.plugins`` entry points (all loaded)."""


def load_task_types() -> None:
    """Register every task and workflow type an engine of this checkout would know."""
    for group in ("sahara_es.workflows", "sahara_es.plugins"):
        for point in entry_points(group=group):
            importlib.import_module(point.module)
    for module in TASK_MODULES:
        importlib.import_module(module)


# -- the file --------------------------------------------------------------------------------

def expectation(state: WorkflowState, steps: list[str]) -> dict[str, Any]:
    """What a workflow's history says, as the engine folded it when it was recorded."""
    return {
        "type": state.workflow_type,
        "status": str(state.status),
        "statuses": steps,
        "tasks": {task_id: str(task.status) for task_id, task in state.tasks.items()},
        "succeeded_order": list(state.succeeded_order),
    }


def fold_with_steps(events: list[RecordedEvent], stream_id: str) -> tuple[WorkflowState,
                                                                          list[str]]:
    state = WorkflowState(stream_id)
    steps = []
    for recorded in events:
        state.fold(recorded)
        steps.append(str(state.status))
    return state, steps


def workflow_streams(store: Store, workflow_id: str) -> list[str]:
    """A workflow's own streams: its history, its tasks' claim streams, its cancel."""
    streams = [f"workflow-{workflow_id}"]
    streams += sorted(s for s in store.list_streams("taskrun")
                      if s.startswith(f"taskrun-{workflow_id}."))
    if store.stream_version(f"cancel-{workflow_id}"):
        streams.append(f"cancel-{workflow_id}")
    return streams


def write_history(path: Path, *, scenario: str, description: str, code: str,
                  store: Store, workflow_ids: list[str],
                  read_streams: Mapping[str, int]) -> None:
    """Write ``scenario``'s file: the workflows' streams whole, and of each stream they read
    (``read_streams``: stream id -> the version it had when the last workflow ended) the
    events up to that version."""
    records: list[dict[str, Any]] = []
    for stream_id, version in read_streams.items():
        records += [to_record(e) for e in store.read(stream_id, to_version=version)]
    expected: dict[str, Any] = {}
    for workflow_id in workflow_ids:
        for stream_id in workflow_streams(store, workflow_id):
            events = list(store.read(stream_id))
            records += [to_record(e) for e in events]
            if category_of(stream_id) == "workflow":
                state, steps = fold_with_steps(events, stream_id)
                if not state.status.finished:
                    raise AssertionError(f"{workflow_id} is not finished: {state.summary()}")
                expected[workflow_id] = expectation(state, steps)
    path.write_text(render({"format": FORMAT, "scenario": scenario,
                            "description": description, "recorded_with": code,
                            "workflows": expected, "events": records}))


def render(document: dict[str, Any]) -> str:
    """JSON with one workflow field and one event a line: a re-recording's diff reads
    step by step."""
    def line(value: Any) -> str:
        return json.dumps(value, sort_keys=True, default=str)

    head = [f" {line(k)}: {line(document[k])}," for k in sorted(document)
            if k not in ("workflows", "events")]
    workflows = []
    for workflow_id, expected in sorted(document["workflows"].items()):
        fields = ",\n".join(f"   {line(k)}: {line(v)}" for k, v in sorted(expected.items()))
        workflows.append(f"  {line(workflow_id)}: {{\n{fields}\n  }}")
    events = ",\n".join(f"  {line(r)}" for r in document["events"])
    return ("{\n" + "\n".join(head) + '\n "workflows": {\n' + ",\n".join(workflows)
            + '\n },\n "events": [\n' + events + "\n ]\n}\n")


@dataclass
class History:
    path: Path
    scenario: str
    description: str
    workflows: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]

    @property
    def name(self) -> str:
        return self.path.name


def read_history(path: Path) -> History:
    document = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path.name}: format {document.get('format')!r}, this code reads"
                         f" {FORMAT}")
    return History(path, document["scenario"], document["description"],
                   document["workflows"], document["events"])


def history_files() -> list[Path]:
    return sorted(FOLDER.glob("*.json"))


# -- the replay ------------------------------------------------------------------------------

class ReplayMismatch(AssertionError):
    """The current code does not replay a recorded history as it happened."""


@dataclass
class Replayed:
    """What replaying one workflow found: which spawns could be re-planned offline."""

    workflow_id: str
    replanned: list[str] = field(default_factory=list)
    not_replanned: list[str] = field(default_factory=list)


def check_file(path: Path, folder: Path) -> list[Replayed]:
    """Replay a history file as the test does, in a fresh store under ``folder``."""
    load_task_types()
    history = read_history(path)
    store = open_store(f"sqlite:///{folder}/replay-{path.stem}.db", upgrade=True)
    try:
        load_into(store, history)
        decode_all(history, store)
        return [replay(store, history, workflow_id) for workflow_id in history.workflows]
    finally:
        store.close()


def load_into(store: Store, history: History) -> None:
    result = import_events(store, history.events)
    if result.conflicts or result.skipped:
        raise ReplayMismatch(f"{history.name}: the store was not fresh: {result}")


def decode_all(history: History, store: Store) -> None:
    """Every recorded event decodes with the current registry, upcasters included."""
    for record in history.events:
        stream, version = record["stream_id"], record["version"]
        recorded = next(iter(store.read(stream, version, to_version=version)))
        try:
            registry.decode(recorded)
        except Exception as error:
            raise ReplayMismatch(
                f"{history.name}: {stream} v{version} ({record['type']} schema"
                f" v{record['schema_version']}) no longer decodes: {type(error).__name__}:"
                f" {error}. Add an upcaster from that version instead of changing the"
                f" recorded type (doc/engine.rst, 'Recorded histories')") from error


def replay(store: Store, history: History, workflow_id: str) -> Replayed:
    """Rebuild ``workflow_id`` from the history loaded in ``store`` with the current code;
    ``ReplayMismatch`` naming the history and the first step that differs."""
    expected = history.workflows[workflow_id]
    stream_id = f"workflow-{workflow_id}"
    where = f"{history.name}: {stream_id}"
    replayed = Replayed(workflow_id)
    checker = _Decisions(where, replayed)
    state = WorkflowState(stream_id)
    for recorded in store.read(stream_id):
        step = f"{where} v{recorded.version} {recorded.type}"
        event = registry.decode(recorded)
        checker.before(state, recorded, event, step)
        try:
            state.fold(recorded)
        except Exception as error:
            raise ReplayMismatch(f"{step}: the current fold refuses it:"
                                 f" {type(error).__name__}: {error}") from error
        checker.after(state, event, step)
        wanted = expected["statuses"][recorded.version - 1]
        if str(state.status) != wanted:
            raise ReplayMismatch(f"{step}{_task_of(event)}: the workflow is {state.status}"
                                 f" after it, the recorded history says {wanted}")
    if state.version != len(expected["statuses"]):
        raise ReplayMismatch(f"{where}: {state.version} events, the history recorded"
                             f" {len(expected['statuses'])}")
    tasks = {task_id: str(task.status) for task_id, task in state.tasks.items()}
    if tasks != expected["tasks"]:
        first = next(t for t in sorted(set(tasks) | set(expected["tasks"]))
                     if tasks.get(t) != expected["tasks"].get(t))
        raise ReplayMismatch(f"{where}: task {first} ends {tasks.get(first, 'absent')},"
                             f" the recorded history says {expected['tasks'].get(first, 'absent')}")
    if state.succeeded_order != expected["succeeded_order"]:
        raise ReplayMismatch(f"{where}: tasks succeeded in the order {state.succeeded_order},"
                             f" the recorded history says {expected['succeeded_order']}")
    if str(state.status) != expected["status"] or not state.status.finished:
        raise ReplayMismatch(f"{where}: ends {state.status}, recorded {expected['status']}")
    return replayed


def _task_of(event: DomainEvent) -> str:
    task = event.to_data().get("task_id")
    return f" (task {task})" if task else ""


def first_difference(replanned: list[dict[str, Any]], recorded: list[dict[str, Any]]) -> str:
    for index, (mine, theirs) in enumerate(zip(replanned, recorded, strict=False)):
        if mine != theirs:
            fields = "; ".join(
                f"its {key} is {json.dumps(mine.get(key), sort_keys=True)} now, recorded"
                f" {json.dumps(theirs.get(key), sort_keys=True)}"
                for key in ("id", "type", "requires", "args") if mine.get(key) != theirs.get(key))
            return f"step {index + 1}, task {theirs.get('id')}: {fields}"
    if len(replanned) > len(recorded):
        return (f"step {len(recorded) + 1}: the current code plans an extra task"
                f" {replanned[len(recorded)]['id']}")
    return (f"step {len(replanned) + 1}: the current code no longer plans task"
            f" {recorded[len(replanned)]['id']}")


def _nested_specs(value: Any) -> Iterator[dict[str, Any]]:
    """Task specs inside a task's arguments (a node step wraps its plugin's task)."""
    if isinstance(value, dict):
        if set(value) == {"id", "type", "args", "requires"}:
            yield value
        for item in value.values():
            yield from _nested_specs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _nested_specs(item)


class _NeedsTheWorld(Exception):
    """A task being re-planned asked for a service: it reads the world, not only its
    recorded inputs, so its recorded spawn is taken as recorded."""


class _NoServices(Mapping[str, Any]):
    def __init__(self) -> None:
        self.asked = False

    def __getitem__(self, name: str) -> Any:
        self.asked = True
        raise _NeedsTheWorld(name)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __bool__(self) -> bool:
        return True  # not replaced by an empty dict: asking is what tells


class _Decisions:
    """Checks, event by event, that the current code would have taken the step recorded."""

    def __init__(self, where: str, replayed: Replayed) -> None:
        self.where = where
        self.replayed = replayed
        self.owned = 0  # the ownership (count of WorkflowOwned) each task last started in
        self.started_in: dict[str, int] = {}
        self.just_succeeded: tuple[str, Any, RecordedEvent] | None = None

    def fail(self, step: str, why: str) -> NoReturn:
        raise ReplayMismatch(f"{step}: {why}")

    def before(self, state: WorkflowState, recorded: RecordedEvent, event: DomainEvent,
               step: str) -> None:
        match event:
            case ev.WorkflowStarted():
                self._check_plan(event, step)
            case ev.WorkflowOwned():
                self.owned += 1
            case ev.TasksOffered():
                ready_ids = {t.spec.id for t in state.ready()}
                for task_id in event.attempts:
                    if task_id not in ready_ids:
                        self.fail(step, f"task {task_id} was offered, the current code does"
                                        f" not find it ready ({_status(state, task_id)})")
            case ev.TaskOfferWithdrawn():
                if self._task(state, event.task_id, step).status is not TaskStatus.OFFERED:
                    self.fail(step, f"the offer of task {event.task_id} was withdrawn, the"
                                    " current code finds it not offered"
                                    f" ({_status(state, event.task_id)})")
            case ev.TaskStarted():
                task = self._task(state, event.task_id, step)
                ready = task.spec.id in {t.spec.id for t in state.ready()}
                rerun = (task.status is TaskStatus.RUNNING
                         and self.started_in.get(task.spec.id, -1) < self.owned)
                if not (ready or task.status is TaskStatus.OFFERED or rerun):
                    self.fail(step, f"task {event.task_id} attempt {event.attempt} started,"
                                    " the current code would not start it"
                                    f" ({_status(state, event.task_id)})")
                self.started_in[task.spec.id] = self.owned
            case ev.TaskSucceeded() | ev.TaskFailed():
                task = self._task(state, event.task_id, step)
                if task.status is not TaskStatus.RUNNING:
                    self.fail(step, f"an outcome of task {event.task_id}, which the current"
                                    f" code holds {task.status}, not running")
            case ev.TasksSpawned():
                self._check_spawn(state, event, step)
            case ev.TaskReverting():
                pending = state.to_revert()
                if not pending or pending[0].spec.id != event.task_id:
                    first = pending[0].spec.id if pending else "nothing"
                    self.fail(step, f"task {event.task_id} is reverted, the current code"
                                    f" reverts {first} first")
            case ev.WorkflowSucceeded():
                if not state.all_succeeded():
                    left = [t for t, s in state.tasks.items()
                            if s.status is not TaskStatus.SUCCEEDED]
                    self.fail(step, f"the current code finds tasks not succeeded: {left}")
            case ev.WorkflowRolledBack():
                if state.to_revert():
                    self.fail(step, "the current code still has tasks to revert:"
                                    f" {[t.spec.id for t in state.to_revert()]}")
                reverted = [t for t in reversed(state.succeeded_order)
                            if state.tasks[t].status is TaskStatus.REVERTED]
                if list(event.reverted) != reverted:
                    self.fail(step, f"recorded reverted {event.reverted}, the current code"
                                    f" finds {reverted}")
        self.just_succeeded = ((event.task_id, event.result, recorded)
                               if isinstance(event, ev.TaskSucceeded) else None)

    def after(self, state: WorkflowState, event: DomainEvent, step: str) -> None:
        if isinstance(event, ev.TaskStarted | ev.TasksSpawned):
            specs = ([state.tasks[event.task_id].spec] if isinstance(event, ev.TaskStarted)
                     else [state.tasks[t["id"]].spec for t in event.tasks])
            for spec in specs:
                self._buildable(spec.to_data(), step)

    def _task(self, state: WorkflowState, task_id: str, step: str) -> Any:
        if task_id not in state.tasks:
            self.fail(step, f"task {task_id} is in no graph the current code rebuilt")
        return state.tasks[task_id]

    def _buildable(self, spec: dict[str, Any], step: str) -> None:
        for data in [spec, *_nested_specs(spec["args"])]:
            try:
                build_task(TaskSpec.from_data(data))
            except Exception as error:
                self.fail(step, f"task {data['id']} of type {data['type']!r} cannot be built"
                                f" by the current code: {type(error).__name__}: {error}")

    def _check_plan(self, event: ev.WorkflowStarted, step: str) -> None:
        try:
            flow = plan(event.workflow_type, dict(event.params))
        except Exception as error:
            self.fail(step, f"the current code cannot plan {event.workflow_type} from the"
                            f" recorded params: {type(error).__name__}: {error}")
        replanned = [dict(s.to_data()) for s in flow.specs]
        recorded = [dict(t) for t in event.tasks]
        if replanned != recorded:
            self.fail(step, f"the current code plans another graph: "
                            f"{first_difference(replanned, recorded)}")
        if flow.rollback_on_cancel != event.rollback_on_cancel:
            self.fail(step, f"rollback_on_cancel is now {flow.rollback_on_cancel}, recorded"
                            f" {event.rollback_on_cancel}")

    def _check_spawn(self, state: WorkflowState, event: ev.TasksSpawned, step: str) -> None:
        """Re-run the spawning task on its recorded inputs, without the world: a task that
        plans from its arguments and its requirements' results alone (the create's and the
        scale's plan) must spawn the graph recorded; one that asks for a service (or checks
        its lease before a side effect) is skipped, its spawn taken as recorded."""
        if self.just_succeeded is None or self.just_succeeded[0] != event.parent:
            self.fail(step, f"subtasks of {event.parent} spawned, not right after its success")
        _, recorded_result, _ = self.just_succeeded
        task_state = state.tasks[event.parent]
        task = build_task(task_state.spec)
        services = _NoServices()
        results = {k: v for k, v in state.results().items() if k != event.parent}
        ctx = TaskContext(workflow_id=state.workflow_id, task_id=event.parent,
                          attempt=task_state.attempt, engine_id="replay", params=state.params,
                          results=results, lease_valid=lambda: False, services=services)
        try:
            result = task.execute(ctx)
        except (_NeedsTheWorld, LeaseExpired):
            self.replayed.not_replanned.append(event.parent)
            return
        except Exception as error:
            if services.asked:
                self.replayed.not_replanned.append(event.parent)
                return
            self.fail(step, f"the current code cannot re-plan {event.parent}"
                            f" ({task_state.spec.type}) from its recorded inputs:"
                            f" {type(error).__name__}: {error}")
        if not isinstance(result, Spawn):
            self.fail(step, f"the current code's {task_state.spec.type} spawns nothing now")
        replanned = [
            {**spec.to_data(), "id": f"{event.parent}.{spec.id}",
             "requires": [f"{event.parent}.{r}" for r in spec.requires]}
            for spec in result.flow.specs
        ]
        recorded = [dict(t) for t in event.tasks]
        if replanned != recorded:
            self.fail(step, f"the current code spawns other subtasks of {event.parent}: "
                            f"{first_difference(replanned, recorded)}")
        if json.loads(json.dumps(result.result)) != recorded_result:
            self.fail(step, f"{event.parent}'s result would now be {result.result!r}, recorded"
                            f" {recorded_result!r}")
        self.replayed.replanned.append(event.parent)


def _status(state: WorkflowState, task_id: str) -> str:
    task = state.tasks.get(task_id)
    if task is None:
        return "not in the graph"
    waiting = [r for r in task.spec.requires if not state.done(r)]
    return f"{task.status}" + (f", waiting for {waiting}" if waiting else "")
