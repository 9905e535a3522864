"""An engine: owns workflows by lease, runs their tasks, claims tasks other engines offer.

Three kinds of thread: a heartbeat that renews the engine's and its workflows' leases, a
sweep that takes over workflows whose lease expired (or was never taken) and claims offered
tasks, and one runner per owned workflow; tasks run on a bounded pool shared by all.

The pool is shared fairly between projects (``engine/slots.py``): one project holds at most
``project_share`` of the slots and of ``max_workflows``; the sweep admits workflows and
claims offered tasks round-robin by project. A workflow that reclaims capacity (a delete) is
admitted beyond its project's part, and its tasks, like a rollback's, run beyond its share.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sahara_es.engine.attempts import Outcome, TaskRun
from sahara_es.engine.flow import build_task, reclaims
from sahara_es.engine.runner import (
    ClaimRecorder,
    WorkflowRunner,
    cancel_stream,
    claim_stream,
    give_up_claim,
    task_contexts,
)
from sahara_es.engine.slots import UNLIMITED, Share, Slots, round_robin
from sahara_es.engine.state import FINISHING_EVENTS, TaskStatus, WorkflowState
from sahara_es.engine.state import WORKFLOW_PREFIX as WORKFLOW_PREFIX  # importable from here too
from sahara_es.engine.wakeups import Wakeups, wakeups_of
from sahara_es.events import Metadata, RecordedEvent, registry
from sahara_es.events import workflow as ev
from sahara_es.store import Lease, LeaseHeld, LeaseLost, LeaseState, Store, StoreError

if TYPE_CHECKING:
    from sahara_es.engine.handoff import Handoff, Rules

log = logging.getLogger(__name__)

ENGINE_PREFIX = "engine-"


def engine_lease_resource(engine_id: str, region: str | None) -> str:
    """An engine's heartbeat lease: ``engine-<id>``, and ``@<region>`` after it when the
    engine serves a region, so that every engine knows which regions still have engines."""
    return f"{ENGINE_PREFIX}{engine_id}" + (f"@{region}" if region else "")


def engine_lease_region(lease: Lease) -> str | None:
    _, at, region = lease.resource.rpartition("@")
    return region if at else None


@dataclass(frozen=True)
class EngineConfig:
    engine_id: str = ""
    region: str | None = None
    concurrency: int = 8
    """Tasks this engine runs at once, across all its workflows."""
    max_workflows: int = 64
    lease_ttl: float = 10.0
    sweep_interval: float = 0.2
    sweep_interval_with_bus: float = 2.0
    """The sweep's interval when a message bus carries wake-ups between processes
    (``engine/wakeups.py``): the sweep is then only the backstop for lost ones; so is an
    owner's reading of its offers' claim streams and its workflows' cancel streams."""
    lease_margin: float = 0.2
    """Fraction of the TTL this engine gives up early, on its own clock, to stay clear of
    the moment another engine may take the lease."""
    project_share: float = 0.5
    """The part of the slots, and of ``max_workflows``, one project may hold (at least one):
    a project whose tasks hang cannot stall the others' work."""
    reclaim_slots: int = 2
    """Slots beyond ``concurrency`` only reclaiming work (deletes, rollbacks) uses, when the
    others are all taken."""
    offer_delay: float = 0.5
    """Seconds an owner waits, after taking a workflow, before offering its tasks to other
    engines. Workflows tend to arrive together, and the room the others announced just
    before is then mostly taken by their own arrivals: an offer nobody claims costs its
    owner a write to take back. Against tasks of seconds or minutes it delays no help."""
    region_takeover_grace: float = 30.0
    """Seconds after a workflow's lease expired before an engine of another region takes it
    over, once no engine of its home region is alive (doc/regions.rst): a region cut off
    for less than this keeps its work. Without a ``region`` it plays no part."""

    @property
    def project_slots(self) -> int:
        return max(1, int(self.concurrency * self.project_share))

    @property
    def project_workflows(self) -> int:
        return max(1, int(self.max_workflows * self.project_share))


class Engine:
    """``handoff``: the rules by which this engine's handoff (``engine/handoff.py``) starts
    the workflows commands' events ask for; one engine's handoff is active at a time. None:
    this engine only runs workflows. ``wakeups``: where it hears of work at once and casts
    what others should hear (default: what the store has attached, else in-process)."""

    def __init__(self, store: Store, config: EngineConfig | None = None, *,
                 services: Mapping[str, Any] | None = None,
                 handoff: Rules | None = None, wakeups: Wakeups | None = None) -> None:
        self.config = config or EngineConfig()
        self.store = store
        self.services: dict[str, Any] = {"store": store, **(services or {})}
        self.engine_id = self.config.engine_id or f"engine-{uuid.uuid4().hex[:8]}"
        self.region = self.config.region
        self.stopping = threading.Event()
        self._stopped = threading.Event()
        self._pool = ThreadPoolExecutor(self.config.concurrency + self.config.reclaim_slots,
                                        thread_name_prefix=f"{self.engine_id} task")
        self._waiting = ThreadPoolExecutor(self.config.max_workflows,
                                           thread_name_prefix=f"{self.engine_id} waiting")
        self.slots = Slots(self.config.concurrency, self.config.project_slots,
                           self.config.reclaim_slots)
        self._valid_until: dict[str, tuple[int, float]] = {}  # resource -> (epoch, until)
        self.engine_lease: Lease | None = None
        self._runners: dict[str, tuple[WorkflowRunner, threading.Thread]] = {}
        self._runners_lock = threading.Lock()
        self._taking: set[str] = set()
        self._finished: set[str] = set()
        self._workflows: dict[str, Share] = {}  # workflow id -> its project, reclaiming
        self._not_workflows: set[str] = set()
        self._views: dict[str, WorkflowState] = {}
        self._claiming: set[str] = set()
        self._claim_cancels: dict[str, tuple[threading.Event, int]] = {}  # per workflow
        self._claims_lock = threading.Lock()
        self._live_engines: set[str] = set()
        self._live_regions: set[str | None] = set()
        self._homes: dict[str, str | None] = {}  # workflow id -> its home region
        self._threads: list[threading.Thread] = []
        self._handoff_rules = handoff
        self.handoff: Handoff | None = None
        self.wakeups = wakeups or wakeups_of(store)
        self._wake = threading.Event()
        self._looking = threading.RLock()  # the sweep and the wake-ups that look for work
        self.stats: Counter[str] = Counter()
        """Wake-ups heard and what came of them, by name (for benchmarks and tests)."""
        self._capacity: dict[str, tuple[int, float]] = {}  # others' free slots, when said
        self._capacity_lock = threading.Lock()
        self._announced = (-1, 0.0)  # the free slots this engine last said, when

    @property
    def sweep_every(self) -> float:
        """Seconds between two sweeps: slower when wake-ups reach every engine."""
        if self.wakeups.remote:
            return self.config.sweep_interval_with_bus
        return self.config.sweep_interval

    @property
    def backstop_every(self) -> float:
        """Seconds between two reads of what wake-ups announce, when they reach every engine
        (offers' claim streams, cancel streams)."""
        return self.config.sweep_interval_with_bus

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Engine:
        self._renew_engine_lease()
        for target, name in ((self._heartbeat, "heartbeat"), (self._sweep_loop, "sweep")):
            thread = threading.Thread(target=target, name=f"{self.engine_id} {name}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._handoff_rules is not None:
            from sahara_es.engine.handoff import Handoff  # it starts workflows: client, engine

            self.handoff = Handoff(self.store, self._handoff_rules, owner=self.engine_id,
                                   ttl=self.config.lease_ttl, poll=self.sweep_every,
                                   take=self.take_started).start()
        self.wakeups.subscribe(self)
        log.info("engine %s started (concurrency %d)", self.engine_id, self.config.concurrency)
        return self

    def stop(self, grace: float = 30.0) -> None:
        """Stop taking work; let running tasks finish; hand every workflow back."""
        self.stopping.set()
        self._wake.set()
        try:
            self.wakeups.unsubscribe(self)
        except Exception:  # the bus is gone: nothing to leave
            log.warning("could not leave the bus", exc_info=True)
        if self.handoff is not None:
            self.handoff.stop()
        deadline = time.monotonic() + grace
        for _, thread in list(self._runners.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
        self._stopped.set()
        for thread in self._threads:
            thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._waiting.shutdown(wait=False, cancel_futures=True)
        if self.engine_lease is not None:
            try:
                self.store.delete_lease(self.engine_lease)
            except StoreError as error:
                log.warning("could not release the engine lease: %s", error)

    def wait(self) -> None:
        self._stopped.wait()

    # -- slots and the pool ---------------------------------------------------------------

    def reserve_slots(self, wanted: int, share: Share = UNLIMITED) -> int:
        return self.slots.reserve(wanted, share)

    def release_slots(self, count: int, share: Share = UNLIMITED) -> None:
        self.slots.release(count, share)

    def submit(self, job: Callable[[], Outcome], done: Callable[[Outcome], None],
               share: Share = UNLIMITED) -> None:
        """Run ``job`` on a slot reserved by the caller for ``share``; the slot is free again
        before ``done``."""
        def finished(future: Future[Outcome]) -> None:
            self.release_slots(1, share)
            self.announce_capacity()
            error = future.exception()
            if error is not None:  # a bug, not a task failure (those are outcomes)
                log.error("task job failed", exc_info=error)
                return
            done(future.result())

        self._pool.submit(job).add_done_callback(finished)

    def submit_waiting(self, job: Callable[[], Outcome], done: Callable[[Outcome], None]
                       ) -> None:
        """Run a waiting task (``Task.waits``): on the waiting threads, no slot taken."""
        def finished(future: Future[Outcome]) -> None:
            error = future.exception()
            if error is not None:
                log.error("waiting task failed", exc_info=error)
                return
            done(future.result())

        self._waiting.submit(job).add_done_callback(finished)

    # -- leases ---------------------------------------------------------------------------

    def lease_valid(self, lease: Lease) -> bool:
        """Whether this engine may still act under ``lease``, on its own clock: until a margin
        before the lease could expire for the others. Keyed by epoch, so work left over from
        an earlier ownership of the same resource never passes for the current one."""
        epoch, until = self._valid_until.get(lease.resource, (0, 0.0))
        return epoch == lease.epoch and time.monotonic() < until

    def _trust(self, lease: Lease, sent: float) -> None:
        self._valid_until[lease.resource] = (
            lease.epoch, sent + self.config.lease_ttl * (1 - self.config.lease_margin))

    def _renew_engine_lease(self) -> None:
        sent = time.monotonic()
        resource = engine_lease_resource(self.engine_id, self.region)
        if self.engine_lease is None:
            self.engine_lease = self.store.acquire_lease(resource, self.engine_id,
                                                         self.config.lease_ttl)
        else:
            self.engine_lease = self.store.renew_lease(self.engine_lease, self.config.lease_ttl)
        self._trust(self.engine_lease, sent)

    def _heartbeat(self) -> None:
        while not self._stopped.wait(self.config.lease_ttl / 4):
            try:
                self._renew_engine_lease()
            except LeaseLost:
                log.warning("engine lease lost: taking it again")
                self.engine_lease = None
            except StoreError as error:
                log.warning("engine lease: %s", error)
            for workflow_id, (runner, _) in list(self._runners.items()):
                sent = time.monotonic()
                try:
                    runner.lease = self.store.renew_lease(runner.lease, self.config.lease_ttl)
                    self._trust(runner.lease, sent)
                except LeaseLost:
                    log.warning("lost %s", workflow_id)
                    runner.lost.set()
                except StoreError as error:
                    log.warning("could not renew %s: %s", workflow_id, error)

    def others_alive(self) -> bool:
        return bool(self._live_engines - {self.engine_id})

    @property
    def offer_delay(self) -> float:
        return self.config.offer_delay

    def offer_room(self) -> int:
        """Open offers a workflow keeps. Offers on the bus are pulled: as many as the other
        engines said lately they have free slots (an offer nobody takes costs a claim when
        the owner runs it itself). Otherwise twice the slots of the other live engines
        (assuming each runs as many tasks as this one), so that none of them waits for work."""
        if self.wakeups.carries_offers:
            recent = time.monotonic() - 2 * self.backstop_every
            return sum(free for engine_id, (free, said) in list(self._capacity.items())
                       if said >= recent and engine_id in self._live_engines)
        return 2 * self.config.concurrency * len(self._live_engines - {self.engine_id})

    def spare_slots(self) -> int:
        """Free slots that this engine's own workflows do not wait for: what others' offers
        may have (a task run here by its owner costs no claim)."""
        demand = sum(min(runner.slot_demand, self.slots.room_for(runner.share()))
                     for runner, _ in list(self._runners.values()) if runner.slot_demand)
        return max(0, self.slots.free - demand)

    def cast_offers(self, workflow_id: str, task_ids: Sequence[str]) -> None:
        """Cast each offered task to one engine that said it has a spare slot, as many to each
        as it said (counted down here until it says again), so that claimers do not race for
        the same tasks; without such figures (offers not on the bus), to every engine. What
        no engine has room for is left to the owner, which claims it as its slots free."""
        if not self.wakeups.carries_offers:
            self.wakeups.tasks_offered(workflow_id, self.engine_id)
            return
        left = list(task_ids)
        recent = time.monotonic() - 2 * self.backstop_every
        with self._capacity_lock:
            for engine_id, (free, said) in sorted(self._capacity.items(),
                                                  key=lambda item: -item[1][0]):
                if not left:
                    break
                if free <= 0 or said < recent or engine_id not in self._live_engines:
                    continue
                given, left = left[:free], left[free:]
                self._capacity[engine_id] = (free - len(given), said)
                self.wakeups.tasks_offered(workflow_id, self.engine_id, engine_id, given)

    def announce_capacity(self, *, force: bool = False) -> None:
        """Tell the others how many spare slots are here (when offers are on the bus): at
        most every 50 ms unless the number changed to or from none, or ``force``."""
        if not self.wakeups.carries_offers or self.stopping.is_set():
            return
        free, now = self.spare_slots(), time.monotonic()
        last, said = self._announced
        if force or (free != last and ((free == 0) != (last == 0) or now - said >= 0.05)):
            self._announced = (free, now)
            self.wakeups.capacity(self.engine_id, free)

    def runs_claim(self, engine_id: str, stream_id: str) -> bool:
        """Whether a claim by ``engine_id`` may still produce an outcome: another engine that
        still heartbeats, or this one running it now."""
        if engine_id == self.engine_id:
            return stream_id in self._claiming
        return engine_id in self._live_engines

    def claim_began(self, stream_id: str) -> None:
        self._claiming.add(stream_id)

    def claim_ended(self, stream_id: str) -> None:
        self._claiming.discard(stream_id)

    def holds_engine_lease(self) -> bool:
        return self.engine_lease is not None and self.lease_valid(self.engine_lease)

    # -- the sweep ------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        while not self.stopping.is_set():
            self._wake.wait(self.sweep_every)
            self._wake.clear()
            if self.stopping.is_set():
                return
            try:
                self.sweep()
            except StoreError as error:
                log.warning("sweep: %s", error)
            except Exception:  # the sweep must outlive any one bad record
                log.exception("sweep failed; sweeping again")

    def sweep(self) -> None:
        with self._looking:
            self._sweep()

    def _sweep(self) -> None:
        self.stats["sweeps"] += 1
        self.announce_capacity(force=True)  # a lost announcement is said again
        now = time.time()
        leases = list(self.store.list_leases())
        engines = [lease for lease in leases if lease.resource.startswith(ENGINE_PREFIX)]
        self._live_engines = {lease.owner for lease in engines if not lease.expired(now)}
        self._live_regions = {engine_lease_region(lease) for lease in engines
                              if not lease.expired(now)}
        for lease in engines:
            if now - lease.expires_at > 10 * self.config.lease_ttl:
                self.store.delete_lease(lease)  # an engine long dead: forget it
        # What this engine remembers of workflows no longer listed (their leases were
        # deleted once finished) is forgotten too, so its memory follows the work in progress.
        listed = {lease.resource[len(WORKFLOW_PREFIX):] for lease in leases
                  if lease.resource.startswith(WORKFLOW_PREFIX)}
        self._finished &= listed
        self._workflows = {k: v for k, v in self._workflows.items() if k in listed}
        self._homes = {k: v for k, v in self._homes.items() if k in listed}
        self._not_workflows &= listed
        for gone in self._views.keys() - listed:
            del self._views[gone]
        to_take: list[Lease] = []
        to_claim: list[str] = []
        for lease in leases:
            if not lease.resource.startswith(WORKFLOW_PREFIX) or self.stopping.is_set():
                continue
            workflow_id = lease.resource[len(WORKFLOW_PREFIX):]
            if (workflow_id in self._finished or workflow_id in self._runners
                    or workflow_id in self._taking or workflow_id in self._not_workflows):
                continue
            if not self._is_workflow(workflow_id):
                continue
            if lease.expired(now):
                if self._cast_lately(lease, now):
                    continue  # the engine its workflow_ready reached is taking it
                if self._may_take(workflow_id, lease, now):
                    to_take.append(lease)
            elif lease.owner != self.engine_id and self._may_claim(workflow_id):
                to_claim.append(workflow_id)
        for lease in round_robin(to_take, lambda lease: self._share_of(lease.resource).project):
            if self._admits(self._share_of(lease.resource)) and self._begin_taking(lease):
                self.stats["took on sweep"] += 1
        for workflow_id in round_robin(to_claim, lambda w: self._workflows[w].project):
            self._claim_offered(workflow_id)
        self._check_claimed_cancels()

    def _may_take(self, workflow_id: str, expired: Lease, now: float) -> bool:
        """Whether this engine may take the expired lease of ``workflow_id``: at once when
        the workflow is of its region (or regions are not configured); a workflow of another
        region only when that region has no live engine left, ``region_takeover_grace``
        after its lease expired."""
        home = self._homes.get(workflow_id)
        if self.region is None or home is None or home == self.region:
            return True
        if home in self._live_regions:
            return False  # its own region's engines will take it
        return now - expired.expires_at >= self.config.region_takeover_grace

    def _cast_lately(self, lease: Lease, now: float) -> bool:
        """Whether a sweep leaves this free lease alone for now: released (a new workflow
        offered, or one handed back) less than a sweep interval ago, while wake-ups reach
        every engine. Its ``workflow_ready`` cast went to one engine, which takes it; an
        engine whose sweep happened to fall in between would otherwise take every workflow
        of a burst at once, however busy it is. A lost cast only leaves it to the next sweep
        (the backstop); a lease that ran out (its holder died) is taken at once."""
        return (self.wakeups.remote and lease.state is LeaseState.RELEASED
                and now - lease.expires_at < self.sweep_every)

    def _may_claim(self, workflow_id: str) -> bool:
        """Whether this engine claims tasks ``workflow_id`` offers: those of its region, and
        of a region whose engines are all gone (the workflow was taken over)."""
        home = self._homes.get(workflow_id)
        return (self.region is None or home is None or home == self.region
                or home not in self._live_regions)

    def _begin_taking(self, lease: Lease) -> bool:
        workflow_id = lease.resource[len(WORKFLOW_PREFIX):]
        with self._runners_lock:
            if workflow_id in self._runners or workflow_id in self._taking:
                return False
            self._taking.add(workflow_id)
        threading.Thread(target=self._take_and_run, args=(lease,),
                         name=f"{self.engine_id} {workflow_id}", daemon=True).start()
        return True

    def _share_of(self, resource: str) -> Share:
        return self._workflows[resource.removeprefix(WORKFLOW_PREFIX)]

    def _admits(self, share: Share) -> bool:
        """Room for one more workflow of ``share``: within ``max_workflows`` and the project's
        part of it; reclaiming ones are admitted up to as many again, each project within its
        part of those."""
        with self._runners_lock:
            owned = list(self._runners) + list(self._taking)
        if len(owned) >= (2 if share.reclaims else 1) * self.config.max_workflows:
            return False
        if share.project is None:
            return True
        same = sum(1 for w in owned if self._workflows.get(w) == share)
        return same < self.config.project_workflows

    def _is_workflow(self, workflow_id: str, started: RecordedEvent | None = None) -> bool:
        """Whether ``workflow-<id>`` begins with WorkflowStarted: a lease of that name on any
        other stream is someone else's business, never to be taken or fenced. Its project and
        type are remembered with it (they decide its share). ``started``: its first event,
        known already (not read again)."""
        if workflow_id in self._workflows:
            return True
        first = ([started] if started is not None else
                 list(self.store.read(f"{WORKFLOW_PREFIX}{workflow_id}", 1, to_version=1)))
        if first and first[0].type == ev.WorkflowStarted.event_type:
            self._homes[workflow_id] = first[0].data.get("home_region")
            self._workflows[workflow_id] = Share(
                first[0].metadata.project_id, reclaims(str(first[0].data["workflow_type"])))
            return True
        if first:
            log.warning("workflow-%s is not a workflow: ignored", workflow_id)
            self._not_workflows.add(workflow_id)
        return False

    def _take_and_run(self, expired: Lease) -> None:
        """On its own thread, so that a sweep starts many takeovers at once."""
        workflow_id = expired.resource[len(WORKFLOW_PREFIX):]
        runner = None
        try:
            runner = self._take(workflow_id, expired)
            if runner is not None:
                with self._runners_lock:
                    self._runners[workflow_id] = (runner, threading.current_thread())
        except StoreError as error:
            log.warning("could not take %s: %s", workflow_id, error)
        finally:
            with self._runners_lock:
                self._taking.discard(workflow_id)
        if runner is not None:
            self._run(runner)

    def _take(self, workflow_id: str, expired: Lease) -> WorkflowRunner | None:
        """Take a workflow whose lease is free. One held before may have finished without
        deleting its lease (its last event says so: nothing to take); its stream is fenced
        once taken, so that the previous owner cannot append any more. One never held (a
        new workflow, offered at epoch 0) is taken at epoch 1: nobody could have appended
        under an earlier epoch, so no fence is written (as in ``take_started``)."""
        stream = f"{WORKFLOW_PREFIX}{workflow_id}"
        if expired.epoch > 0:
            version = self.store.stream_version(stream)
            last = list(self.store.read(stream, version, to_version=version)) if version else []
            if last and last[0].type in FINISHING_EVENTS:
                self._finished.add(workflow_id)  # its owner stopped before deleting the lease
                self.store.delete_lease(expired)
                return None
        sent = time.monotonic()
        try:
            lease = self.store.acquire_lease(stream, self.engine_id, self.config.lease_ttl)
        except LeaseHeld:
            return None
        self._trust(lease, sent)
        if lease.epoch != 1:
            self.store.fence(stream, lease)  # from here on, the previous owner cannot append
        state = WorkflowState(stream)
        for event in self.store.read(stream):
            state.fold(event)
        if not state.started:
            self.store.release_lease(lease)
            return None
        if state.status.finished:
            self._finished.add(workflow_id)
            self.store.delete_lease(lease)
            return None
        return WorkflowRunner(self, lease, state)

    def _run(self, runner: WorkflowRunner) -> None:
        workflow_id = runner.workflow_id
        try:
            outcome = runner.run()
        except Exception:
            log.exception("runner of %s failed", workflow_id)
            outcome = "crashed"
        log.info("%s: %s on %s", workflow_id, outcome, self.engine_id)
        try:
            if outcome == "finished":
                self._finished.add(workflow_id)
                self.store.delete_lease(runner.lease)  # the sweep no longer lists it
            elif outcome in ("handed back", "crashed"):
                self.store.release_lease(runner.lease)  # another engine takes it at once
                with self._runners_lock:
                    del self._runners[workflow_id]
                self.wakeups.workflow_ready(workflow_id)
                return
        except StoreError as error:
            log.warning("could not release %s: %s", workflow_id, error)
        with self._runners_lock:
            del self._runners[workflow_id]

    # -- wake-ups (engine/wakeups.py: Listener) -------------------------------------------

    def on_workflow_ready(self, workflow_id: str) -> None:
        self.stats["heard workflow_ready"] += 1
        if self.stopping.is_set():
            return
        stream = f"{WORKFLOW_PREFIX}{workflow_id}"
        with self._looking:
            if (workflow_id in self._runners or workflow_id in self._taking
                    or workflow_id in self._finished or workflow_id in self._not_workflows):
                return
            lease = self.store.get_lease(stream)
            if lease is None or not lease.expired(time.time()):
                self.stats["workflow_ready: taken already"] += 1
                return  # taken already, or finished
            if not self._is_workflow(workflow_id):
                return
            if not self._may_take(workflow_id, lease, time.time()):
                return
            if not self._admits(self._share_of(stream)):
                self.stats["workflow_ready: no room"] += 1
                self.wakeups.wake_all()  # no room here: let another engine sweep now
                return
            if self._begin_taking(lease):
                self.stats["took on workflow_ready"] += 1

    def on_wake(self) -> None:
        self.stats["heard wake"] += 1
        self._wake.set()

    def on_tasks_offered(self, workflow_id: str, owner: str,
                         task_ids: Sequence[str] = ()) -> None:
        self.stats["heard tasks_offered"] += 1
        if self.stopping.is_set() or owner == self.engine_id:
            return
        with self._looking:
            if workflow_id in self._runners or not self._is_workflow(workflow_id):
                return
            if not self._may_claim(workflow_id):
                return
            self._claim_offered(workflow_id, task_ids)

    def on_claim_moved(self, workflow_id: str, stream_id: str) -> None:
        self.stats["heard claim_moved"] += 1
        owned = self._runners.get(workflow_id)
        if owned is not None:
            owned[0].claim_moved(stream_id)

    def on_cancel_requested(self, workflow_id: str) -> None:
        self.stats["heard cancel_requested"] += 1
        owned = self._runners.get(workflow_id)
        if owned is not None:
            owned[0].look_for_cancel()
        with self._claims_lock:
            watched = self._claim_cancels.get(workflow_id)
        if watched is not None and not watched[0].is_set() and \
                list(self.store.read(cancel_stream(workflow_id), 1, to_version=1)):
            watched[0].set()

    def on_capacity(self, engine_id: str, free: int) -> None:
        self.stats["heard capacity"] += 1
        if engine_id == self.engine_id:
            return
        with self._capacity_lock:
            before = self._capacity.get(engine_id, (0, 0.0))[0]
            self._capacity[engine_id] = (free, time.monotonic())
        if free > before:  # owners with tasks waiting may offer them now
            for runner, _ in list(self._runners.values()):
                runner.wake()

    def on_requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                             to_version: int = 0) -> None:
        self.stats["heard requests_recorded"] += 1
        if self.handoff is None:
            return
        if stream_id is not None and not self.stopping.is_set():
            try:
                handled = self.handoff.announced(stream_id, from_version, to_version)
                self.stats["requests handled as announced"] += handled
                if handled == to_version - from_version + 1:
                    return  # the feed, read at its pause, passes them: no need to hurry it
            except StoreError as error:  # the feed has them too
                log.warning("announced %s v%d-%d: %s", stream_id, from_version, to_version,
                            error)
        self.handoff.nudge()

    # -- taking what this engine's handoff starts -------------------------------------------

    def take_started(self, workflow_id: str, started: RecordedEvent) -> bool:
        """Run a workflow this engine's handoff has just recorded, if it may: of its region,
        room for it, and no other live engine said lately it has more free slots (so that the
        handoff's engine does not gather every workflow). Whether it took it (else the handoff
        offers it, as any submitter does).

        Its lease is taken by one write. When that lease is the stream's first (epoch 1), no
        fence is written: no earlier epoch exists whose holder could append, and the
        runner's first append fences the stream. Nor is anything read: the runner begins with
        ``started``, the ``WorkflowStarted`` just recorded (by ``client.start_workflow``, at
        version 1 of a stream that was empty). Only an engine that ran the whole workflow
        between that append and this lease (and deleted its lease, so that this one is at
        epoch 1 again) could have added to the stream; then the runner's first append,
        expected after version 1, fails and the runner stops (a start is recorded before its
        task runs, or the task is idempotent). A lease at any other epoch is fenced and the
        stream read, as on every takeover."""
        stream = f"{WORKFLOW_PREFIX}{workflow_id}"
        if self.stopping.is_set() or not self._most_free():
            return False
        with self._looking:
            if not self._is_workflow(workflow_id, started):
                return False
            home = self._homes.get(workflow_id)
            if self.region is not None and home is not None and home != self.region:
                return False
            if not self._admits(self._share_of(stream)):
                return False
            with self._runners_lock:
                if workflow_id in self._runners or workflow_id in self._taking:
                    return False
                self._taking.add(workflow_id)
        try:
            runner = self._take_started(stream, started)
        except StoreError as error:
            log.warning("could not take %s: %s", workflow_id, error)
            runner = None
        with self._runners_lock:
            self._taking.discard(workflow_id)
            if runner is None:
                return False
            thread = threading.Thread(target=self._run, args=(runner,),
                                      name=f"{self.engine_id} {workflow_id}", daemon=True)
            self._runners[workflow_id] = (runner, thread)
        thread.start()
        self.stats["took as started"] += 1
        return True

    def _take_started(self, stream: str, started: RecordedEvent) -> WorkflowRunner | None:
        sent = time.monotonic()
        try:
            lease = self.store.acquire_lease(stream, self.engine_id, self.config.lease_ttl)
        except LeaseHeld:
            return None  # adopted and taken meanwhile
        self._trust(lease, sent)
        state = WorkflowState(stream)
        try:
            if lease.epoch != 1:
                self.store.fence(stream, lease)
            if lease.epoch == 1:
                state.fold(started)
            else:
                for event in self.store.read(stream):
                    state.fold(event)
            if state.status.finished:
                self.store.delete_lease(lease)
                return None
        except StoreError:
            with contextlib.suppress(StoreError):
                self.store.release_lease(lease)
            raise
        if not state.started:
            self.store.release_lease(lease)
            return None
        return WorkflowRunner(self, lease, state)

    def _most_free(self) -> bool:
        """Whether no other live engine said lately it has more spare slots than this one."""
        free = self.spare_slots()
        recent = time.monotonic() - 2 * self.backstop_every
        return all(said <= free for engine_id, (said, when) in list(self._capacity.items())
                   if when >= recent and engine_id in self._live_engines)

    # -- claiming other engines' offers ---------------------------------------------------

    def _view(self, workflow_id: str) -> WorkflowState:
        stream = f"{WORKFLOW_PREFIX}{workflow_id}"
        view = self._views.setdefault(workflow_id, WorkflowState(stream))
        for event in self.store.read(stream, view.version + 1):
            view.fold(event)
        if view.status.finished:
            self._views.pop(workflow_id)
        return view

    def _claim_offered(self, workflow_id: str, first: Sequence[str] = ()) -> None:
        """Claim offered tasks of ``workflow_id`` for spare slots: ``first`` (those the
        owner cast to this engine), then any."""
        share = self._workflows[workflow_id]
        room = self.spare_slots()
        if room <= 0 and not share.reclaims:
            return
        view = self._view(workflow_id)
        offered = [t for t in view.tasks.values() if t.status is TaskStatus.OFFERED]
        random.shuffle(offered)  # engines claiming at once mostly try different tasks
        offered.sort(key=lambda t: t.spec.id not in first)
        for task in offered:
            stream = claim_stream(workflow_id, task.spec.id, task.attempt)
            if room <= 0 and not share.reclaims:
                break
            if stream in self._claiming or not self.reserve_slots(1, share):
                continue
            room -= 1
            recorder = ClaimRecorder(self.store, stream, Metadata(
                engine_id=self.engine_id, region=self.region, correlation_id=workflow_id))
            start = ev.TaskStarted(task.spec.id, task.attempt, self.engine_id, 0, run=stream)
            self.claim_began(stream)  # before the claim: an owner must never see it orphaned
            if not recorder.claim(self.engine_id, start):
                self.claim_ended(stream)
                self.release_slots(1, share)
                continue
            self.stats["claimed"] += 1
            owner = view.owner or ""
            self.wakeups.claim_moved(owner, workflow_id, stream)
            job = TaskRun(spec=task.spec, task=build_task(task.spec), first_attempt=task.attempt,
                          engine=self.engine_id, epoch=0, recorder=recorder, run=stream,
                          start_recorded=True,
                          context=task_contexts(view, task.spec.id, self.engine_id,
                                                self.holds_engine_lease, self.services,
                                                self._claim_cancel(workflow_id)))
            self.submit(job, functools.partial(self._claimed_done, workflow_id, recorder,
                                               owner), share)
        self.announce_capacity()

    def _claim_cancel(self, workflow_id: str) -> threading.Event:
        """The event a claimed task of ``workflow_id`` sees set once the workflow is
        cancelled (the sweep looks, as the owner does, while any such task runs here)."""
        with self._claims_lock:
            cancelled, count = self._claim_cancels.get(workflow_id, (threading.Event(), 0))
            self._claim_cancels[workflow_id] = (cancelled, count + 1)
            return cancelled

    def _claimed_done(self, workflow_id: str, recorder: ClaimRecorder, owner: str,
                      outcome: Outcome) -> None:
        give_up_claim(recorder, outcome, self.engine_id)
        self.claim_ended(recorder.stream_id)
        self.wakeups.claim_moved(owner, workflow_id, recorder.stream_id)
        with self._claims_lock:
            cancelled, count = self._claim_cancels.pop(workflow_id, (threading.Event(), 1))
            if count > 1:
                self._claim_cancels[workflow_id] = (cancelled, count - 1)

    def _check_claimed_cancels(self) -> None:
        with self._claims_lock:
            watched = [(w, e) for w, (e, _) in self._claim_cancels.items() if not e.is_set()]
        for workflow_id, cancelled in watched:
            if list(self.store.read(cancel_stream(workflow_id), 1, to_version=1)):
                cancelled.set()



def events_of(store: Store, stream_id: str) -> list[Any]:
    """A stream's events as domain objects (for tests and tools)."""
    return [registry.decode(e) for e in store.read(stream_id)]
