"""Driving one owned workflow: the only thread that decides what happens next.

The runner folds what it records as it records it, so its state is always the fold of the
stream (plus whatever is on the wire). Tasks run on the engine's pool; ready tasks are offered
to every engine when others are alive, and the runner watches each offer's claim stream and
records the claim and the outcome in the workflow's stream.

When wake-ups carry offers (``engine/wakeups.py``), an offer is cast to the other engines and
a claimer casts to the owner when it claims and when it is done; the owner then reads a claim
stream when told, and every claim stream and the cancel stream only at the backstop
interval, when it also casts again the offers nobody claimed.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from sahara_es.engine import attempts
from sahara_es.engine.attempts import Outcome, Recorder, TaskRun
from sahara_es.engine.flow import TaskContext, build_task, reclaims, task_class
from sahara_es.engine.slots import Share
from sahara_es.engine.state import TaskState, TaskStatus, WorkflowState, WorkflowStatus
from sahara_es.engine.wakeups import Wakeups
from sahara_es.engine.writer import FencedWriter
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import workflow as ev
from sahara_es.store import ConcurrencyConflict, Lease, Store, StoreError, Unavailable

log = logging.getLogger(__name__)

CLAIM_RETRY_SECONDS = 60.0
"""How long a claim stream's write is tried again while the store cannot be reached."""


def claim_stream(workflow_id: str, task_id: str, attempt: int) -> str:
    return f"taskrun-{workflow_id}.{task_id}.{attempt}"


def cancel_stream(workflow_id: str) -> str:
    return f"cancel-{workflow_id}"


def task_contexts(state: WorkflowState, task_id: str, engine_id: str,
                  lease_valid: Callable[[], bool],
                  services: Mapping[str, Any] | None = None,
                  cancelled: threading.Event | None = None,
                  stopping: threading.Event | None = None) -> Callable[[int], TaskContext]:
    """A task's context at each attempt: the workflow's parameters and the results so far,
    the event set when the workflow is cancelled and the one set when the engine stops."""
    results = state.results()
    return lambda attempt: TaskContext(
        workflow_id=state.workflow_id, task_id=task_id, attempt=attempt, engine_id=engine_id,
        params=state.params, results=results, lease_valid=lease_valid, services=services,
        cancelled=cancelled, stopping=stopping,
    )


class ClaimRecorder:
    """Records a claimed task's events in its claim stream; a withdrawn claim stops it."""

    def __init__(self, store: Store, stream_id: str, metadata: Metadata) -> None:
        self.store, self.stream_id, self.metadata = store, stream_id, metadata
        self.version = 0

    def claim(self, engine: str, start: ev.TaskStarted) -> bool:
        """Win the task (one engine does) and record its first attempt's start with it."""
        try:
            self.record([ev.TaskClaimed(engine), start], durable=True)
            return True
        except attempts.Abandoned:
            return False

    def record(self, events: list[DomainEvent], *, durable: bool) -> None:
        # The same events (the same ids) on every try: after an unknown outcome the store
        # recognises its own events and reports the claim it did win as won.
        new = [registry.new_event(e, self.metadata) for e in events]
        deadline = time.monotonic() + CLAIM_RETRY_SECONDS
        while True:
            try:
                self.version = self.store.append(self.stream_id, new, self.version)
                return
            except ConcurrencyConflict as conflict:
                raise attempts.Abandoned(f"{self.stream_id} was withdrawn") from conflict
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


def give_up_claim(recorder: ClaimRecorder, outcome: Outcome, engine_id: str) -> None:
    """A claimed run that ended with no outcome recorded (its engine lost its own lease, or
    was stopping) says so in its claim stream, so that the owner finishes the task itself
    from the recorded intent instead of waiting on a claimer that still heartbeats. A claim
    withdrawn already (the owner took it back) needs nothing more."""
    if not outcome.abandoned:
        return
    try:
        recorder.record([ev.TaskRunAbandoned(f"{engine_id} gave the claim up: {outcome.error}")],
                        durable=True)
    except attempts.Abandoned:
        pass
    except StoreError as error:  # the owner takes it back once this engine stops
        log.warning("could not give %s up: %s", recorder.stream_id, error)


class OwningEngine(Protocol):
    """What a runner asks of the engine that owns its workflow (``engine.Engine`` is one):
    whether its lease still holds, slots on the engine's pool and the pool itself, and what
    it knows of the other engines. Declared here, so that the engine imports its runners and
    never the other way round."""

    @property
    def store(self) -> Store: ...

    @property
    def engine_id(self) -> str: ...

    @property
    def region(self) -> str | None: ...

    @property
    def stopping(self) -> threading.Event:
        """Set once the engine stops: start nothing more, hand the workflow back once idle."""
        ...

    @property
    def services(self) -> Mapping[str, Any]:
        """What tasks are given in their context (``TaskContext.services``)."""
        ...

    def lease_valid(self, lease: Lease) -> bool:
        """Whether the engine may still act under ``lease``, on its own clock."""
        ...

    def reserve_slots(self, wanted: int, share: Share) -> int:
        """Up to ``wanted`` slots of the pool for ``share``; how many were reserved."""
        ...

    def release_slots(self, count: int, share: Share) -> None: ...

    def submit(self, job: Callable[[], Outcome], done: Callable[[Outcome], None],
               share: Share) -> None:
        """Run ``job`` on a slot reserved for ``share``, then ``done`` with its outcome."""
        ...

    def submit_waiting(self, job: Callable[[], Outcome], done: Callable[[Outcome], None]
                       ) -> None:
        """Run a waiting task's ``job`` (``Task.waits``) on a waiting thread, no slot taken."""
        ...

    def others_alive(self) -> bool:
        """Whether other engines heartbeat, to whom tasks may be offered."""
        ...

    def offer_room(self) -> int:
        """How many open offers a workflow keeps."""
        ...

    @property
    def offer_delay(self) -> float:
        """Seconds after taking a workflow before its tasks are offered."""
        ...

    def cast_offers(self, workflow_id: str, task_ids: Sequence[str]) -> None:
        """Tell engines with spare slots that these tasks are offered (once stored)."""
        ...

    def announce_capacity(self) -> None:
        """Tell the other engines how many slots are free here for their offers (the slots
        this engine's own workflows wait for are not)."""
        ...

    def runs_claim(self, engine_id: str, stream_id: str) -> bool:
        """Whether a claim by ``engine_id`` may still produce an outcome."""
        ...

    def claim_began(self, stream_id: str) -> None:
        """This engine runs the claim ``stream_id`` from now on (whoever owns the workflow:
        a claim outlives the ownership it was made in)."""
        ...

    def claim_ended(self, stream_id: str) -> None: ...

    def holds_engine_lease(self) -> bool:
        """Whether this engine's own lease still holds: what a claimed task runs under."""
        ...

    @property
    def wakeups(self) -> Wakeups:
        """Where offers are cast, and whether they reach every engine."""
        ...

    @property
    def backstop_every(self) -> float:
        """With offers on the bus: seconds between two reads of every claim stream."""
        ...


@dataclass
class Offer:
    """An offered task's claim stream, as far as the owner has read it.

    The claim and its first start are recorded in the workflow at once; the rest of the run
    (failed attempts, retries, the outcome) is recorded together once the outcome is known, so
    a new owner re-reading the claim stream never records any of it twice.
    """

    stream_id: str
    attempt: int
    cursor: int = 0
    claimer: str | None = None
    started: bool = False
    intent: dict[str, Any] = field(default_factory=dict)
    rest: list[DomainEvent] = field(default_factory=list)
    outcome: ev.TaskSucceeded | ev.TaskFailed | None = None
    withdrawn: bool = False


class WorkflowRunner:
    poll_interval = 0.1
    cancel_check_interval = 0.25
    write_linger = 0.02
    """Seconds a write nobody waits for may wait for others to share its append
    (``writer.py``)."""

    def __init__(self, engine: OwningEngine, lease: Lease, state: WorkflowState) -> None:
        self.engine = engine
        self.store = engine.store
        self.lease = lease
        self.state = state
        self.workflow_id = state.workflow_id
        self.lost = threading.Event()
        self.cancelled = threading.Event()
        """Set once the workflow's cancel is recorded: its running tasks stop what can stop."""
        self._lock = threading.RLock()
        self._done: queue.Queue[tuple[str, Outcome | None]] = queue.Queue()
        self._active: dict[str, str] = {}  # task id -> "run" | "claim" | "revert"
        self._offers: dict[str, Offer] = {}
        self._to_recover: dict[str, dict[str, Any]] = {}  # task id -> intent, awaiting a slot
        self._last_poll = 0.0
        # A workflow with nothing but its start was started a moment ago: a cancel asked
        # since is cast (and the backstop reads it), not read before its first tasks start.
        self._last_cancel_check = time.monotonic() if state.version <= 1 else 0.0
        self._moved: set[str] = set()  # claim streams a claimer said it wrote
        self._moved_lock = threading.Lock()
        self._told = engine.wakeups.carries_offers  # read claim streams when told
        self.claim_reads = 0
        """Claim stream reads made (for benchmarks)."""
        self._writer: FencedWriter | None = None
        self._unwritten: list[DomainEvent] = []
        self._first_write = True
        self._owned_at = time.monotonic()
        self.slot_demand = 0
        """Ready tasks of this workflow waiting for a slot here: not started, or offered and
        not claimed (the owner takes those back as its slots free)."""

    # -- wake-ups -------------------------------------------------------------------------

    def claim_moved(self, stream_id: str) -> None:
        """A claimer wrote ``stream_id``: read it at once."""
        with self._moved_lock:
            self._moved.add(stream_id)
        self._done.put(("wake", None))

    def wake(self) -> None:
        """Look again now (another engine has free slots)."""
        self._done.put(("wake", None))

    def look_for_cancel(self) -> None:
        self._last_cancel_check = 0.0
        self._done.put(("wake", None))

    # -- recording ------------------------------------------------------------------------

    def record(self, events: list[DomainEvent], *, durable: bool = False) -> None:
        """Fold ``events`` now; write them with the runner's next write, or at once if
        ``durable`` (and wait). A task's success thus shares an append with the next start."""
        with self._lock:
            for event in events:
                self.state.apply_event(event)
            self._unwritten.extend(events)
            future = self._flush(urgent=True) if durable else None
        if future is not None:
            future.result()

    def _write(self, events: list[DomainEvent], *, urgent: bool = True) -> Future[int]:
        """Record ``events`` and send them with what is unwritten; ``urgent``: someone waits
        for them to be durable (a task not idempotent, about to start; an offer, cast once
        stored)."""
        with self._lock:
            self.record(events)
            future = self._flush(urgent=urgent)
        assert future is not None
        return future

    def _flush(self, *, urgent: bool = False) -> Future[int] | None:
        assert self._writer is not None
        with self._lock:
            if not self._unwritten:
                return None
            # The ownership's first write leaves at once: who owns it, and its first starts,
            # are what a client waits to see.
            urgent, self._first_write = urgent or self._first_write, False
            events, self._unwritten = self._unwritten, []
            return self._writer.write(events, urgent=urgent)

    def share(self) -> Share:
        """Whose slots this workflow's next task takes: its project's, or beyond them when it
        reclaims capacity (a delete) or rolls back."""
        return Share(self.state.project,
                     reclaims(self.state.workflow_type)
                     or self.state.status is WorkflowStatus.REVERTING)

    def metadata(self) -> Metadata:
        return Metadata(engine_id=self.engine.engine_id, region=self.engine.region,
                        correlation_id=self.workflow_id)

    # -- the loop -------------------------------------------------------------------------

    def run(self) -> str:
        """Drive the workflow until it finishes, is handed back, or ownership is lost."""
        self._writer = FencedWriter(self.store, self.state.stream_id, self.state.version,
                                    self.lease, self.metadata, linger=self.write_linger)
        try:
            # A workflow with nothing but its start has nothing in flight to pick up: its
            # ownership goes in one append with its first tasks' starts (those that must not
            # act before they are durable wait for that append, as always).
            self.record([ev.WorkflowOwned(self.engine.engine_id, self.lease.epoch,
                                          self.engine.region), *self._takeover()],
                        durable=self.state.version > 1)
            self._recover()
            while not self.state.status.finished:
                if self._lost():
                    return "lost"
                if self.engine.stopping.is_set() and not self._active:
                    break
                self._check_cancel()
                with self._lock:
                    if self.engine.stopping.is_set():
                        self._poll_offers()  # start nothing more: hand back once idle
                    elif self.state.status is WorkflowStatus.RUNNING:
                        self._resume_recoveries()
                        self._advance()
                    else:
                        self._demand(0)
                        self._resume_recoveries()
                        self._roll_back()
                self._flush()
                self._drain(wait=self.poll_interval if self._offers else 0.2)
        except attempts.LOST:
            return "lost"
        finally:
            self._flush()
            self._writer.close()
        if self._writer.error is not None:
            return "lost"
        return "finished" if self.state.status.finished else "handed back"

    def _takeover(self) -> list[ev.WorkflowTakenOver]:
        """The record of a takeover by another region than the workflow's home (none when
        it stays in its region, or regions are not configured)."""
        home, region = self.state.home_region, self.engine.region
        if home is None or region is None or region == home:
            return []
        previous = self.state.owner_region or home
        if previous == region:
            return []  # an engine of this region already held it: no new handover
        return [ev.WorkflowTakenOver(self.engine.engine_id, self.lease.epoch, previous,
                                     region, home)]

    def _holds_lease(self) -> bool:
        return self.engine.lease_valid(self.lease)

    def _lost(self) -> bool:
        return (self.lost.is_set() or not self._holds_lease()
                or (self._writer is not None and self._writer.error is not None))

    def _recover(self) -> None:
        """Pick up what the previous owner left in flight."""
        if self.state.cancel_requested:
            self.cancelled.set()
        for task in self.state.tasks.values():
            if task.status is TaskStatus.OFFERED:
                self._offers[task.spec.id] = Offer(
                    claim_stream(self.workflow_id, task.spec.id, task.attempt), task.attempt)
            elif task.status is TaskStatus.RUNNING and task.run:
                self._offers[task.spec.id] = Offer(task.run, task.attempt, claimer=task.engine)
            elif task.status is TaskStatus.RUNNING:
                self._to_recover[task.spec.id] = task.intent or {}
            elif task.status is TaskStatus.FAILED and self.state.status is WorkflowStatus.RUNNING:
                self.record([ev.WorkflowFailed(task.spec.id, task.error or "failed")])

    def _check_cancel(self) -> None:
        now = time.monotonic()
        interval = self.engine.backstop_every if self._told else self.cancel_check_interval
        if self.state.cancel_requested or now - self._last_cancel_check < interval:
            return
        self._last_cancel_check = now
        requests = list(self.store.read(cancel_stream(self.workflow_id), 1, to_version=1))
        if requests:
            self.record([ev.CancelRequested(str(requests[0].data.get("reason", "")))])
            self.cancelled.set()

    def _advance(self) -> None:
        if self.state.cancel_requested:
            self._demand(0)
            self._withdraw_offers()  # and start nothing more
        else:
            ready = [t for t in self.state.ready()
                     if t.spec.id not in self._active and t.spec.id not in self._offers]
            self._start_waiting([t for t in ready if _waits(t)])
            ready = [t for t in ready if not _waits(t)]
            # Free slots here first (no claim needed); what is left is offered, up to what
            # the other engines can take soon: every open offer is a stream read at each poll.
            ready = waiting = ready[self._start_locally(ready):]
            if ready and self.engine.others_alive() and self._may_offer():
                open_offers = (sum(1 for o in self._offers.values() if o.claimer is None)
                               if self._told else len(self._offers))
                ready = ready[:max(0, self.engine.offer_room() - open_offers)]
                waiting = waiting[len(ready):]
                if ready:
                    written = self._write([ev.TasksOffered(
                        {t.spec.id: t.attempt for t in ready})])
                    written.add_done_callback(functools.partial(
                        self._cast_offers, [t.spec.id for t in ready]))
                for task in ready:
                    self._offers[task.spec.id] = Offer(
                        claim_stream(self.workflow_id, task.spec.id, task.attempt),
                        task.attempt)
            self._claim_offers()
            self._demand(len(waiting) + sum(1 for t, o in self._offers.items()
                                            if o.claimer is None and t not in self._active))
        self._poll_offers()
        if (self._active or self._offers or self._to_recover
                or self.state.status is not WorkflowStatus.RUNNING):
            return
        if self.state.cancel_requested:
            self.record([ev.WorkflowCancelled(rolled_back=False)])
        elif self.state.all_succeeded():
            self.record([ev.WorkflowSucceeded(self.state.results())])

    def _may_offer(self) -> bool:
        """Offers wait ``offer_delay`` after the workflow was taken (``EngineConfig``)."""
        return time.monotonic() - self._owned_at >= self.engine.offer_delay

    def _demand(self, slots: int) -> None:
        """Say how many slots this workflow waits for here; when that changes, the engine
        tells the others how much room it has (none, once its own work fills it: an offer
        cast to an engine that has no room left is taken back by its owner, at the cost of
        a write)."""
        changed, self.slot_demand = slots != self.slot_demand, slots
        if changed:
            self.engine.announce_capacity()

    def _start_locally(self, ready: list[TaskState]) -> int:
        share = self.share()
        taken = ready[:self.engine.reserve_slots(len(ready), share)]
        self._start_here(taken, share)
        return len(taken)

    def _start_waiting(self, ready: list[TaskState]) -> None:
        self._start_here(ready, None)

    def _start_here(self, tasks: list[TaskState], share: Share | None) -> None:
        """Record the starts of ``tasks`` (this engine's, under this lease) and run them:
        on slots reserved for ``share``, or, for waiting tasks (``None``), on none."""
        if not tasks:
            return
        written = self._write([
            ev.TaskStarted(t.spec.id, t.attempt, self.engine.engine_id, self.lease.epoch)
            for t in tasks
        ], urgent=_awaited(tasks))
        for task in tasks:
            self._submit(task, "run", self, share, start_recorded=True, after=written)

    def _resume_recoveries(self) -> None:
        """Tasks started by an engine that is gone: reconcile them, or re-run the idempotent."""
        share = self.share()
        for task_id, intent in list(self._to_recover.items()):
            task = self.state.tasks[task_id]
            if _waits(task):
                del self._to_recover[task_id]
                self._submit(task, "run", self, None, intent=intent)
                continue
            if not self.engine.reserve_slots(1, share):
                return
            del self._to_recover[task_id]
            self._submit(task, "run", self, share, intent=intent)

    def _submit(self, task: TaskState, kind: str, recorder: Recorder, share: Share | None, *,
                run: str | None = None,
                start_recorded: bool = False, intent: dict[str, Any] | None = None,
                after: Future[int] | None = None) -> None:
        # A claim runs under the engine's own lease, as any engine's claim does: it outlives
        # this ownership, and the next owner follows its claim stream to the outcome.
        lease_valid = self.engine.holds_engine_lease if kind == "claim" else self._holds_lease
        job = TaskRun(
            spec=task.spec, task=build_task(task.spec), first_attempt=task.attempt,
            engine=self.engine.engine_id, epoch=self.lease.epoch,
            context=self.context_for(task.spec.id, lease_valid, self.cancelled),
            recorder=recorder, run=run, start_recorded=start_recorded, intent=intent,
        )
        self._active[task.spec.id] = kind

        def execute() -> Outcome:
            if after is not None and not job.task.idempotent:
                try:
                    after.result()  # the start is durable before the task touches the world
                except Exception as error:
                    return Outcome(task.spec.id, False, error=attempts.describe(error),
                                   abandoned=True)
            return job()

        def done(outcome: Outcome) -> None:
            if isinstance(recorder, ClaimRecorder):
                give_up_claim(recorder, outcome, self.engine.engine_id)
                self.engine.claim_ended(recorder.stream_id)
            self._done.put((kind, outcome))

        if share is None:  # a waiting task: no slot
            self.engine.submit_waiting(execute, done)
        else:
            self.engine.submit(execute, done, share)

    def context_for(self, task_id: str, lease_valid: Callable[[], bool],
                    cancelled: threading.Event | None = None) -> Callable[[int], TaskContext]:
        with self._lock:
            return task_contexts(self.state, task_id, self.engine.engine_id, lease_valid,
                                 self.engine.services, cancelled, self.engine.stopping)

    # -- offers ---------------------------------------------------------------------------

    def _claim_offers(self) -> None:
        """The owner is an engine too: an offer nobody claimed runs here once a slot is free.
        It is withdrawn first (one write to its claim stream, where claiming it would cost a
        claim, an outcome there and reads of it), then started as any ready task is."""
        share = self.share()
        taken: list[TaskState] = []
        for task_id, offer in list(self._offers.items()):
            if offer.claimer is not None or task_id in self._active:
                continue
            if not self.engine.reserve_slots(1, share):
                break
            if self._withdraw(task_id, offer, "the owner runs it itself"):
                taken.append(self.state.tasks[task_id])
            else:
                self.engine.release_slots(1, share)
        if taken:
            self.record([ev.TaskOfferWithdrawn(t.spec.id, t.attempt) for t in taken])
            self._start_here(taken, share)

    def _withdraw(self, task_id: str, offer: Offer, reason: str) -> bool:
        """Close an offer's claim stream after what this owner read of it (no claim, and no
        outcome, is taken from it after this); whether it was as read. If its claimer wrote
        there first, that is read now and followed as any claim."""
        recorder = ClaimRecorder(self.store, offer.stream_id, self.metadata())
        recorder.version = offer.cursor
        try:
            recorder.record([ev.TaskRunAbandoned(reason)], durable=True)
        except attempts.Abandoned:
            self.claim_moved(offer.stream_id)  # claimed meanwhile: read it now
            return False
        self._offers.pop(task_id)
        return True

    def _cast_offers(self, task_ids: list[str], written: Future[int]) -> None:
        """Once the offer is in the store (never before: a claimer reads it there)."""
        if written.exception() is None:
            self.engine.cast_offers(self.workflow_id, task_ids)

    def _offers_to_read(self, force: bool) -> list[tuple[str, Offer]]:
        """Every open offer, every ``poll_interval``; when claimers tell, those they wrote at
        once and every one only at the backstop interval, when the offers nobody claimed are
        cast again (a cast may have been lost)."""
        now = time.monotonic()
        with self._moved_lock:
            moved, self._moved = self._moved, set()
        if self._told and not force:
            if now - self._last_poll >= self.engine.backstop_every:
                self._last_poll = now
                if any(o.claimer is None for o in self._offers.values()):
                    self.engine.wakeups.tasks_offered(self.workflow_id,
                                                      self.engine.engine_id)
                return list(self._offers.items())
            return [(t, o) for t, o in self._offers.items() if o.stream_id in moved]
        if not force and now - self._last_poll < self.poll_interval:
            return []
        self._last_poll = now
        return list(self._offers.items())

    def _poll_offers(self, force: bool = False) -> None:
        for task_id, offer in self._offers_to_read(force):
            self.claim_reads += 1
            for recorded in self.store.read(offer.stream_id, offer.cursor + 1):
                offer.cursor = recorded.version
                self._follow(task_id, offer, registry.decode(recorded))
            if offer.outcome is not None:
                self.record(offer.rest)
                del self._offers[task_id]
                if (isinstance(offer.outcome, ev.TaskFailed)
                        and self.state.status is WorkflowStatus.RUNNING):
                    self.record([ev.WorkflowFailed(task_id, offer.outcome.error)])
            elif offer.withdrawn:
                del self._offers[task_id]
                if offer.claimer is not None:  # the claimer gave it up: finish it here
                    self._to_recover[task_id] = offer.intent
                elif self.state.tasks[task_id].status is TaskStatus.OFFERED:
                    # an owner before this one withdrew it and stopped before saying so
                    self.record([ev.TaskOfferWithdrawn(task_id, offer.attempt)])
            elif (offer.claimer is not None and task_id not in self._active
                    and not self.engine.runs_claim(offer.claimer, offer.stream_id)):
                self._take_back(task_id, offer)

    def _follow(self, task_id: str, offer: Offer, event: DomainEvent) -> None:
        match event:
            case ev.TaskClaimed():
                offer.claimer = event.engine
            case ev.TaskStarted() if not offer.started:
                offer.started, offer.intent = True, event.to_data()
                if self.state.tasks[task_id].status is TaskStatus.OFFERED:
                    self.record([event])
            case ev.TaskRunAbandoned():
                offer.withdrawn = True
            case ev.TaskSucceeded() | ev.TaskFailed(final=True):
                offer.rest.append(event)
                offer.outcome = event
            case _:
                if isinstance(event, ev.TaskStarted):
                    offer.intent = event.to_data()
                offer.rest.append(event)

    def _take_back(self, task_id: str, offer: Offer) -> None:
        """The claimer stopped heartbeating (or is this engine, in an ownership that ended):
        refuse its outcome, and finish the task here."""
        if self._withdraw(task_id, offer, f"{offer.claimer} stopped heartbeating"):
            self._to_recover[task_id] = offer.intent

    def _withdraw_offers(self) -> None:
        for task_id, offer in list(self._offers.items()):
            if offer.claimer is None and task_id not in self._active:
                self._withdraw(task_id, offer, "the workflow is rolling back")

    # -- outcomes and rollback ------------------------------------------------------------

    def _drain(self, wait: float) -> None:
        try:
            item = self._done.get(timeout=wait)
        except queue.Empty:
            return
        while True:
            kind, outcome = item
            if outcome is None:  # a wake-up: the loop looks again
                try:
                    item = self._done.get_nowait()
                except queue.Empty:
                    return
                continue
            self._active.pop(outcome.task_id, None)
            if outcome.abandoned and kind != "claim":
                self.lost.set()
            elif kind == "claim" and self._told:
                offer = self._offers.get(outcome.task_id)
                if offer is not None:
                    self.claim_moved(offer.stream_id)
            elif kind == "claim":
                self._poll_offers(force=True)
            elif kind == "run" and not outcome.succeeded:
                if self.state.status is WorkflowStatus.RUNNING:
                    self.record([ev.WorkflowFailed(outcome.task_id, outcome.error or "")])
            elif kind == "revert" and not outcome.succeeded:
                self.record([ev.WorkflowRollbackFailed(outcome.task_id, outcome.error or "")])
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return

    def _roll_back(self) -> None:
        """Revert succeeded tasks one by one, latest first, once nothing else runs."""
        self._withdraw_offers()
        self._poll_offers()
        if self._active or self._offers or self._to_recover:
            return
        pending = self.state.to_revert()
        if pending:
            task = pending[0]
            share = self.share()
            if not self.engine.reserve_slots(1, share):
                return
            self._active[task.spec.id] = "revert"
            context = self.context_for(task.spec.id, self._holds_lease)(task.attempt)
            self.engine.submit(
                lambda: attempts.revert(task.spec, build_task(task.spec), task.result,
                                        task.attempt, self.engine.engine_id, context, self),
                lambda outcome: self._done.put(("revert", outcome)),
                share,
            )
        elif self.state.cancel_requested and self.state.failure is None:
            self.record([ev.WorkflowCancelled(rolled_back=True)])
        else:
            reverted = [t for t in reversed(self.state.succeeded_order)
                        if self.state.tasks[t].status is TaskStatus.REVERTED]
            self.record([ev.WorkflowRolledBack(reverted)])


def _awaited(tasks: Sequence[TaskState]) -> bool:
    """Whether any of ``tasks`` waits for its start to be durable before it runs."""
    return any(not getattr(task_class(t.spec.type), "idempotent", False) for t in tasks)


def _waits(task: TaskState) -> bool:
    found = task_class(task.spec.type)
    return found is not None and found.waits
