"""The handoff: commands record requests; engines start the workflows they ask for.

A command (the API's ``POST /v2/clusters``, say) only appends its events. ``Handoff``
follows the global feed and, for each event a rule names, starts the workflows the rule
asks for, by workflow id: the same request handled twice starts nothing twice. Every engine
runs one, on a thread, and exactly one of them is active at a time: the holder of the
``handoff`` lease. Its checkpoint (the feed position handled so far) is kept in the store,
saved after each page under that lease, so a handoff that dies, or pauses past its lease,
leaves the next one to handle the page again: nothing asked for is ever left unstarted, since
the request is the command's own event, committed or not at all.

It also mends the other gap: every ``WorkflowStarted`` it passes (whoever started it) that is
not finished and has no lease gets one (``client.adopt``), so a submitter that died between
the record and the lease orphans nothing either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sahara_es.engine.client import adopt, start_once
from sahara_es.events import Metadata, RecordedEvent
from sahara_es.events import workflow as ev
from sahara_es.store import Lease, LeaseHeld, LeaseLost, Store, StoreError

log = logging.getLogger(__name__)

HANDOFF = "handoff"
"""The name of the lease, and of the checkpoint, of the store's one active handoff."""
GENERATION = 1
"""The checkpoint is kept as a projection's is (``Store.save_checkpoint``), in this one
generation: the handoff is never rebuilt, it only goes on."""
PAGE = 500


@dataclass(frozen=True)
class WorkflowRequest:
    """A workflow an event asks for: started once, by ``workflow_id``, for ``project``."""

    workflow_type: str
    params: dict[str, Any]
    workflow_id: str
    project: str | None = None


LEFT_ALONE = ("_handoff", "record-only")
"""Where ``leave_alone`` marks a resource: a unique name (project, kind) per resource id."""


def leave_alone(store: Store, resource_id: str) -> None:
    """No engine is to act on this resource's requests (a cluster, a job): the API that
    took them has no engines behind it and only records them."""
    store.reserve_name(*LEFT_ALONE, resource_id, resource_id)


def left_alone(store: Store, resource_id: str) -> bool:
    return store.name_owner(*LEFT_ALONE, resource_id) is not None


Rule = Callable[[Store, RecordedEvent], Iterable[WorkflowRequest]]
"""What an event (of the type it is registered for) asks for: none, one or more workflows.
Rules may read the store; they must decide the same way when asked again."""
Rules = Mapping[str, Rule]


class Handoff:
    """Starts the workflows ``rules`` ask for, for every event of the feed, in feed order.

    ``owner``: who holds the lease (the engine's id); ``ttl``: the lease's; ``poll``: the
    pause when the feed has nothing new; ``name``: the lease and checkpoint (one per store).
    """

    def __init__(self, store: Store, rules: Rules, *, owner: str, ttl: float = 10.0,
                 poll: float = 0.2, name: str = HANDOFF) -> None:
        self.store = store
        self.rules = dict(rules)
        self.owner = owner
        self.ttl = ttl
        self.poll = poll
        self.name = name
        self.started = 0
        """Workflows this handoff started (for tests and logs)."""
        self._lease: Lease | None = None
        self._lease_until = 0.0
        self._renewed = 0.0
        self._position: tuple[int, str | None] | None = None  # (epoch, position)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Handoff:
        self._thread = threading.Thread(target=self._loop, name=f"{self.owner} handoff",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop, and let another engine's handoff take over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        lease, self._lease, self._lease_until = self._lease, None, 0.0
        if lease is not None:
            try:
                self.store.release_lease(lease)
            except StoreError as error:
                log.warning("could not release the handoff lease: %s", error)

    @property
    def active(self) -> bool:
        """Whether this handoff may still act under its lease, on its own clock."""
        return time.monotonic() < self._lease_until

    def _loop(self) -> None:
        while not self._stop.is_set():
            pause = self.poll
            try:
                if not self._hold_lease():
                    pause = max(self.poll, self.ttl / 4)  # another's: look again now and then
                elif not self.run_once():
                    pause = 0.0  # more of the feed is waiting
            except LeaseLost as error:
                self._lease_until = 0.0
                log.warning("handoff %s: another took over: %s", self.owner, error)
            except StoreError as error:
                log.warning("handoff: %s", error)
            except Exception:
                log.exception("handoff failed; trying again")
            self._stop.wait(pause)

    def _hold_lease(self) -> bool:
        sent = time.monotonic()
        if self.active and sent - self._renewed < self.ttl / 4:
            return True  # renewed a moment ago: no write on every poll
        self._renewed = sent
        try:
            lease = self.store.acquire_lease(self.name, self.owner, self.ttl)
        except (LeaseHeld, LeaseLost):
            self._lease_until = 0.0
            return False
        if self._lease is None or self._lease.epoch != lease.epoch:
            # A new ownership: fence the checkpoint first, so that a former owner paused
            # before its save cannot move it back afterwards (a position is saved only by
            # whoever handled everything before it, so a late save could only make pages be
            # handled twice, never skipped).
            position = self.store.checkpoint(self.name, GENERATION)
            if position is not None:
                self.store.save_checkpoint(self.name, GENERATION, position, fence=lease)
            self._position = (lease.epoch, position)
        self._lease = lease
        # Trusted for half its TTL from when the request left, as the projector's.
        self._lease_until = sent + min(self.ttl / 2, lease.expires_at - time.time())
        return True

    # -- the work -------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Handle one page of the feed from the checkpoint, then save it; whether the feed
        was read to its end."""
        assert self._lease is not None and self._position is not None
        epoch, position = self._position
        batch = self.store.read_feed(position, limit=PAGE)
        for event in batch:
            if not self.active or self._stop.is_set():
                return True  # the page is handled again by whoever holds the lease next
            self.handle(event)
        if batch:
            self.store.save_checkpoint(self.name, GENERATION, batch[-1].position,
                                       fence=self._lease)
            self._position = (epoch, batch[-1].position)
        return len(batch) < PAGE

    def handle(self, event: RecordedEvent) -> None:
        """Start what ``event`` asks for (idempotently), and adopt a workflow it starts."""
        if event.type == ev.WorkflowStarted.event_type and event.version == 1:
            workflow_id = event.stream_id.split("-", 1)[1]
            if adopt(self.store, workflow_id):
                log.warning("workflow %s was started without a lease: offered now",
                            workflow_id)
            return
        rule = self.rules.get(event.type)
        if rule is None:
            return
        try:
            requests = list(rule(self.store, event))
        except StoreError:
            raise  # the page is handled again
        except Exception:  # a bad event must not stall every request after it
            log.exception("handoff: %s v%d asks for nothing it can say; left alone",
                          event.stream_id, event.version)
            return
        for request in requests:
            metadata = Metadata(actor="sahara-es", project_id=request.project,
                                correlation_id=request.workflow_id,
                                causation_id=f"{event.stream_id}/{event.version}")
            try:
                first = start_once(self.store, request.workflow_type, request.params,
                                   request.workflow_id, metadata=metadata)
            except StoreError:
                raise
            except Exception:  # it cannot be planned: retrying would stall all after it
                log.exception("handoff: %s, asked for by %s v%d, cannot start; left alone",
                              request.workflow_id, event.stream_id, event.version)
                continue
            if first:
                self.started += 1
                lag = time.time() - event.metadata.occurred_at.timestamp()
                log.info("handoff: started %s for %s v%d (%.3f s after its request)",
                         request.workflow_id, event.stream_id, event.version, lag)
