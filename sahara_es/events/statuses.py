"""The statuses of clusters and jobs, and the only transitions between them that are allowed.

As in TaskFlow (``taskflow/states.py``), a status changes only along an explicit table: each
table lists every allowed ``(from, to)`` pair with when it happens, and ``check`` refuses
anything else with ``IllegalTransition``, naming the subject, from and to. Keeping the status
as it is (a new description, say) is not a transition and is always allowed.

The tables are what the code does (``doc/provisioning.rst`` renders them):

- clusters: created ``Validating``; a create walks InfraUpdating, Spawning, Configuring,
  Starting to Active, and its rollback ends in Error; scale and rebuild go from Active to
  Scaling, then Spawning (nodes added) and Decommissioning (nodes removed), and back to
  Active whether they succeed or are undone; a delete moves any status to Deleting, which is
  final.
- jobs: created PENDING; a cancel asks TOBEKILLED, and a job no engine started is KILLED
  (``commands.edp``); RUNNING and the ends a job engine reports (SUCCEEDED, FAILED, KILLED,
  DONEWITHERROR) are Sahara's, for the EDP job engines.

Checks are made where events are appended (``commands.resources.append_records``), before
anything is written. A history already recorded is folded as it is: an event is a fact.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sahara_es.events.resources import Doc, Kind

S = TypeVar("S", bound=str)


class IllegalTransition(Exception):
    """A status change its table does not allow (never retryable: the same change would be
    refused again)."""

    retryable = False

    def __init__(self, machine: str, from_status: str | None, to_status: str | None, *,
                 subject: str = "", allowed: Iterable[str] = ()) -> None:
        self.machine = machine
        self.from_status = from_status
        self.to_status = to_status
        self.subject = subject
        where = f"{subject}: " if subject else ""
        start = "(none: created)" if from_status is None else from_status
        exits = sorted(allowed)
        hint = f"; allowed from {start}: {', '.join(exits)}" if exits else \
            f"; {start} is final" if from_status is not None else ""
        super().__init__(f"{where}illegal {machine} transition from {start} to {to_status}"
                         f"{hint}")


@dataclass(frozen=True)
class Transition(Generic[S]):
    """One allowed change; ``source`` None is the creation."""

    source: S | None
    target: S
    when: str


@dataclass(frozen=True)
class TransitionTable(Generic[S]):
    """A state machine: its statuses (in lifecycle order) and its allowed transitions."""

    machine: str
    """What changes status, for messages: ``cluster status``."""
    statuses: tuple[S, ...]
    transitions: tuple[Transition[S], ...]
    _exits: Mapping[S | None, frozenset[S]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exits: dict[S | None, set[S]] = {}
        known = set(self.statuses)
        for transition in self.transitions:
            unknown = {transition.source, transition.target} - known - {None}
            if unknown:
                raise ValueError(f"{self.machine}: unknown statuses {sorted(map(str, unknown))}")
            exits.setdefault(transition.source, set()).add(transition.target)
        object.__setattr__(self, "_exits", {k: frozenset(v) for k, v in exits.items()})

    @property
    def initial(self) -> frozenset[S]:
        """The statuses something is created in."""
        return self._exits.get(None, frozenset())

    @property
    def final(self) -> frozenset[S]:
        """The statuses nothing leaves."""
        return frozenset(s for s in self.statuses if not self._exits.get(s))

    def exits(self, status: str | None) -> frozenset[S]:
        """Where ``status`` may go (``None``: the creation's statuses)."""
        return self._exits.get(status, frozenset())  # type: ignore[arg-type]

    def allows(self, source: str | None, target: str) -> bool:
        if source is not None and source == target:
            return source in self.statuses
        return target in self.exits(source)

    def check(self, source: str | None, target: str, *, subject: str = "") -> None:
        """Refuse (``IllegalTransition``) a change from ``source`` to ``target`` the table
        does not list; keeping a known status is allowed."""
        if not self.allows(source, target):
            raise IllegalTransition(self.machine, source, target, subject=subject,
                                    allowed=self.exits(source))


# -- clusters ---------------------------------------------------------------------------------

class ClusterStatus(enum.StrEnum):
    """Sahara's cluster statuses that sahara-es sets (not Waiting or Preparing: no step of
    ours is in them)."""

    VALIDATING = "Validating"
    INFRA_UPDATING = "InfraUpdating"
    SPAWNING = "Spawning"
    CONFIGURING = "Configuring"
    STARTING = "Starting"
    ACTIVE = "Active"
    SCALING = "Scaling"
    DECOMMISSIONING = "Decommissioning"
    ERROR = "Error"
    DELETING = "Deleting"


_C = ClusterStatus


def _cluster_transitions() -> tuple[Transition[ClusterStatus], ...]:
    rows: list[tuple[ClusterStatus | None, ClusterStatus, str]] = [
        (None, _C.VALIDATING, "the cluster is created (``POST /v2/clusters``)"),
        (_C.VALIDATING, _C.INFRA_UPDATING, "the create workflow begins"),
        (_C.VALIDATING, _C.ACTIVE,
         "recorded as Active at once where no provisioning engine is attached"
         " (``ApiConfig(engines=False)``: the API's tests)"),
        (_C.INFRA_UPDATING, _C.SPAWNING, "the create's instances are being created"),
        (_C.SPAWNING, _C.CONFIGURING, "the create's plugin configure phase"),
        (_C.CONFIGURING, _C.STARTING, "the create's plugin start phase"),
        (_C.STARTING, _C.ACTIVE, "the create's health check passed"),
        (_C.ACTIVE, _C.SCALING, "a scale or a rebuild of failed nodes is asked"),
        (_C.SCALING, _C.SPAWNING, "the scale or rebuild creates its new instances"),
        (_C.SCALING, _C.DECOMMISSIONING, "a scale that only removes nodes drains them"),
        (_C.SPAWNING, _C.DECOMMISSIONING, "a scale that adds and removes drains the removed"),
        (_C.SCALING, _C.ACTIVE, "a scale changing no node ends, or a scale or rebuild is"
         " undone"),
        (_C.SPAWNING, _C.ACTIVE, "a scale or rebuild that added nodes ends, or is undone"),
        (_C.DECOMMISSIONING, _C.ACTIVE, "a scale that removed nodes ends, or is undone"),
    ]
    rows += [(status, _C.ERROR, "the create failed and was rolled back")
             for status in (_C.INFRA_UPDATING, _C.SPAWNING, _C.CONFIGURING, _C.STARTING,
                            _C.ACTIVE)]
    rows += [(status, _C.DELETING, "the cluster is deleted (``DELETE``)")
             for status in _C if status is not _C.DELETING]
    return tuple(Transition(source, target, when) for source, target, when in rows)


CLUSTER_TRANSITIONS: TransitionTable[ClusterStatus] = TransitionTable(
    "cluster status", tuple(ClusterStatus), _cluster_transitions())


def check_cluster_transition(source: str | None, target: str, *, subject: str = "") -> None:
    """``IllegalTransition`` unless a cluster may go from ``source`` to ``target``."""
    CLUSTER_TRANSITIONS.check(source, target, subject=subject)


# -- jobs (executions) ------------------------------------------------------------------------

class JobStatus(enum.StrEnum):
    """Sahara's job execution statuses (``info.status``)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    TOBEKILLED = "TOBEKILLED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    DONEWITHERROR = "DONEWITHERROR"


_J = JobStatus

_ENDS = ((_J.SUCCEEDED, "the job engine reports that it succeeded"),
         (_J.FAILED, "the job engine reports that it failed"),
         (_J.DONEWITHERROR, "the job engine reports that it ended with an error"))

JOB_TRANSITIONS: TransitionTable[JobStatus] = TransitionTable("job status", tuple(JobStatus), (
    Transition(None, _J.PENDING, "the job is run (``POST /v2/jobs``)"),
    Transition(_J.PENDING, _J.RUNNING, "a job engine started it"),
    Transition(_J.PENDING, _J.FAILED, "a job engine could not start it"),
    Transition(_J.PENDING, _J.TOBEKILLED, "it is cancelled (or deleted) before it runs"),
    Transition(_J.RUNNING, _J.TOBEKILLED, "it is cancelled (or deleted) while it runs"),
    *(Transition(_J.RUNNING, end, when) for end, when in _ENDS),
    Transition(_J.RUNNING, _J.KILLED, "the job engine reports that it was killed"),
    Transition(_J.TOBEKILLED, _J.KILLED, "killed: at once when no job engine started it"),
    Transition(_J.TOBEKILLED, _J.RUNNING, "the kill did not complete within the cancel"
               " timeout: the job runs on (``JobCancelFailed``)"),
    Transition(_J.TOBEKILLED, _J.PENDING, "the cancel of a job not started yet could not"
               " complete (``JobCancelFailed``)"),
    *(Transition(_J.TOBEKILLED, end, f"{when} before the kill landed") for end, when in _ENDS),
))


def check_job_transition(source: str | None, target: str, *, subject: str = "") -> None:
    """``IllegalTransition`` unless a job may go from ``source`` to ``target``."""
    JOB_TRANSITIONS.check(source, target, subject=subject)


# -- the status of a resource's representation ----------------------------------------------

TABLES: Mapping[Kind, TransitionTable[ClusterStatus] | TransitionTable[JobStatus]] = {
    Kind.CLUSTER: CLUSTER_TRANSITIONS,
    Kind.JOB: JOB_TRANSITIONS,
}


def status_of(kind: Kind, doc: Doc | None) -> str | None:
    """A cluster's ``status`` or a job's ``info.status``; None for other kinds."""
    if doc is None:
        return None
    if kind is Kind.CLUSTER:
        return doc.get("status")
    if kind is Kind.JOB:
        return (doc.get("info") or {}).get("status")
    return None


def check_change(kind: Kind, before: Doc | None, after: Doc | None, *,
                 subject: str = "") -> None:
    """Refuse a representation's change (``before`` → ``after``, one event's fold) that moves
    its status along no allowed transition. Kinds without a status, and events that leave
    the status alone, pass."""
    table = TABLES.get(kind)
    target = status_of(kind, after)
    if table is None or target is None:
        return
    source = status_of(kind, before)
    if before is not None and source == target:
        return
    table.check(source, target, subject=subject)
