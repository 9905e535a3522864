"""How workflows are written: plain Python tasks arranged in a graph.

A task is a class with ``execute`` and, when it changes the world, ``revert`` and
``reconcile``; it is registered by name so that any engine can rebuild it from the history::

    @task_type("demo.create-instance")
    class CreateInstance(Task):
        def execute(self, ctx: TaskContext) -> dict[str, str]:
            return {"id": cloud.create(self.args["name"])}

        def revert(self, ctx: TaskContext, result: dict[str, str]) -> None:
            cloud.delete(result["id"])

        def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> dict[str, str] | None:
            found = cloud.find(self.args["name"])
            return {"id": found.id} if found else None

A workflow is a function from its parameters to a ``Flow``::

    @workflow_type("demo.cluster")
    def cluster(params: dict[str, Any]) -> Flow:
        flow = Flow()
        net = flow.add("network", CreateNetwork({}))
        for i in range(params["count"]):
            flow.add(f"node-{i}", CreateInstance({"name": f"n{i}"}), requires=[net])
        return flow

The flow is recorded in ``WorkflowStarted``, so an engine resuming the workflow replays the
recorded graph, never a re-planned one. A task may also grow the graph at run time by
returning ``Spawn(result, flow)``: one subtask per node, say.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from sahara_es.events.workflow import TaskSpecData

T = TypeVar("T", bound="type[Task]")
W = TypeVar("W", bound=Callable[[dict[str, Any]], "Flow"])


class PermanentFailure(Exception):
    """A task failure that no retry can mend: the workflow rolls back at once."""


class OutcomeUnknown(PermanentFailure):
    """A task started and left no outcome, and it can neither reconcile nor safely re-run."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a task is tried (tenacity: attempts, jittered backoff, timeout).

    Only errors that may pass on are tried again: a ``PermanentFailure``, or an error whose
    class says ``retryable = False`` (``NoValidHost``, ``QuotaExceeded``...), fails the task
    at its first occurrence (``engine.attempts.decide``)."""

    attempts: int = 1
    backoff: float = 0.1
    max_backoff: float = 5.0
    timeout: float | None = None


class TaskContext:
    """What a running task may know and do: its arguments, its dependencies' results, and a
    check that the engine still owns the work before an external side effect."""

    def __init__(self, *, workflow_id: str, task_id: str, attempt: int, engine_id: str,
                 params: dict[str, Any], results: dict[str, Any],
                 lease_valid: Callable[[], bool],
                 services: Mapping[str, Any] | None = None,
                 cancelled: threading.Event | None = None,
                 stopping: threading.Event | None = None) -> None:
        self.services: Mapping[str, Any] = services or {}
        """What the engine's process was given for tasks to use (the store, an infrastructure
        provider...): the composition root decides, tasks look up by name."""
        self.workflow_id = workflow_id
        self.task_id = task_id
        self.attempt = attempt
        self.engine_id = engine_id
        self.params = params
        self.results = results
        self._lease_valid = lease_valid
        self.cancelled = cancelled or threading.Event()
        """Set once the workflow is cancelled while this attempt runs: work that can stop
        (a remote command) stops, and the attempt fails. Never set for a revert."""
        self.stopping = stopping or threading.Event()
        """Set once the engine running the task stops: a waiting task (``Task.waits``) gives
        its work back (``WorkGivenBack``) rather than hold the engine's stop until its grace
        runs out; the engine that takes the workflow over runs it again."""

    def service(self, name: str) -> Any:
        try:
            return self.services[name]
        except KeyError:
            raise PermanentFailure(f"this engine has no {name!r} service; start it with one"
                                   ) from None

    def check_lease(self) -> None:
        """Raise ``LeaseExpired`` if this engine may have lost the work (e.g. it was paused).

        Call it right before a side effect outside the store: an engine that wakes up after
        losing its lease then stops instead of doubling what the new owner does.
        """
        if not self._lease_valid():
            raise LeaseExpired(f"{self.engine_id} no longer holds {self.workflow_id}")


class WorkGivenBack(Exception):
    """A waiting task stops because its engine stops: nothing is recorded, and the engine
    that takes the workflow over (once the lease expires) runs the task again."""


class LeaseExpired(Exception):
    """The engine's lease ran out on its own clock: the work belongs to another engine now."""


class Task:
    """A step of a workflow. Subclasses set the class attributes they need."""

    type_name: ClassVar[str] = ""
    idempotent: ClassVar[bool] = False
    """Safe to run twice: a half-done attempt is re-run instead of reconciled, and the
    engine starts it without waiting for its start to be recorded."""
    retry: ClassVar[RetryPolicy] = RetryPolicy()
    revert_retry: ClassVar[RetryPolicy] = RetryPolicy(attempts=3)
    waits: ClassVar[bool] = False
    """The task mostly waits on work done elsewhere (a job running on a cluster): it takes
    none of the engine's task slots (it runs on the engine's waiting threads, one per owned
    workflow at most) and is never offered to another engine. It must check for its
    workflow's cancellation and its lease while it waits."""
    timeout: ClassVar[float | None] = None
    """How long one run of the task may take, in seconds, if its author knows better than
    the default of whatever runs it. The engine cannot stop a thread: a wrapper that can stop
    the work enforces it (a plugin's node step stops its remote commands)."""

    def __init__(self, args: dict[str, Any] | None = None) -> None:
        self.args: dict[str, Any] = dict(args or {})

    def execute(self, ctx: TaskContext) -> Any:
        raise NotImplementedError

    def revert(self, ctx: TaskContext, result: Any) -> None:
        """Undo what ``execute`` did, from the result it recorded."""

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> Any:
        """Did a started attempt (``intent``: its TaskStarted data) happen? Its result, or None.

        The default cannot tell: such a task fails as ``OutcomeUnknown`` and the workflow rolls
        back, rather than guessing.
        """
        raise OutcomeUnknown(f"{self.type_name} cannot tell whether its attempt happened")

    @property
    def reconcilable(self) -> bool:
        return type(self).reconcile is not Task.reconcile


@dataclass(frozen=True)
class Spawn:
    """A task's result that adds ``flow``'s tasks to the workflow, after the spawning task."""

    result: Any
    flow: Flow


@dataclass(frozen=True)
class TaskSpec:
    id: str
    type: str
    args: dict[str, Any]
    requires: tuple[str, ...] = ()

    def to_data(self) -> TaskSpecData:
        return {"id": self.id, "type": self.type, "args": self.args,
                "requires": list(self.requires)}

    @classmethod
    def from_data(cls, data: TaskSpecData) -> TaskSpec:
        return cls(data["id"], data["type"], dict(data["args"]), tuple(data["requires"]))


@dataclass
class Flow:
    """A graph of tasks: each names the tasks it requires (chains, fan-out, fan-in)."""

    rollback_on_cancel: bool = True
    specs: list[TaskSpec] = field(default_factory=list)

    def add(self, task_id: str, task: Task, requires: Iterable[str] = ()) -> str:
        if not type(task).type_name:
            raise ValueError(f"{type(task).__name__} is not registered with @task_type")
        if "/" in task_id or "." in task_id:
            raise ValueError(f"task id {task_id!r} may not contain '/' or '.'")
        known = {spec.id for spec in self.specs}
        if task_id in known:
            raise ValueError(f"task {task_id!r} is already in the flow")
        missing = [r for r in requires if r not in known]
        if missing:
            raise ValueError(f"task {task_id!r} requires unknown tasks {missing}")
        self.specs.append(TaskSpec(task_id, type(task).type_name, task.args, tuple(requires)))
        return task_id


# -- registries: any engine rebuilds tasks and workflows by name ---------------------------

_task_types: dict[str, type[Task]] = {}
_workflow_types: dict[str, Callable[[dict[str, Any]], Flow]] = {}
_reclaiming: set[str] = set()


def task_type(name: str) -> Callable[[T], T]:
    def register(cls: T) -> T:
        if _task_types.get(name, cls) is not cls:
            raise ValueError(f"task type {name!r} is already registered")
        cls.type_name = name
        _task_types[name] = cls
        return cls

    return register


def workflow_type(name: str, *, reclaims: bool = False) -> Callable[[W], W]:
    """Register a workflow function by name. A workflow that ``reclaims`` gives capacity back
    (a deletion): engines admit it and run its tasks beyond its project's share, so that a
    project whose share is held by hung work can still delete that work."""
    def register(fn: W) -> W:
        _workflow_types[name] = fn
        if reclaims:
            _reclaiming.add(name)
        else:
            _reclaiming.discard(name)
        return fn

    return register


def reclaims(workflow: str) -> bool:
    return workflow in _reclaiming


class UnknownType(LookupError):
    """A workflow names a task or workflow type this engine did not load."""


def task_class(type_name: str) -> type[Task] | None:
    return _task_types.get(type_name)


def build_task(spec: TaskSpec) -> Task:
    try:
        return _task_types[spec.type](spec.args)
    except KeyError:
        raise UnknownType(f"unknown task type {spec.type!r}") from None


def plan(workflow: str, params: dict[str, Any]) -> Flow:
    try:
        return _workflow_types[workflow](params)
    except KeyError:
        raise UnknownType(f"unknown workflow type {workflow!r}") from None
