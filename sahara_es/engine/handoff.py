"""The handoff: commands record requests; engines start the workflows they ask for.

A command (the API's ``POST /v2/clusters``, say) only appends its events. ``Handoff``
follows the global feed (a ``FeedFollower``, ``engine/follower.py``) and, for each event a
rule names, starts the workflows the rule asks for, by workflow id: the same request handled
twice starts nothing twice. Every engine runs one, on a thread, and exactly one of them is
active at a time: the holder of the ``handoff`` lease. Its checkpoint (the feed position
handled so far) is kept in the store, saved after each page under that lease, so a handoff
that dies, or pauses past its lease, leaves the next one to handle the page again: nothing
asked for is ever left unstarted, since the request is the command's own event, committed or
not at all. A wake-up (``engine/wakeups.py``) nudges it when commands were recorded.

It also mends the other gap: every ``WorkflowStarted`` it passes (whoever started it) that is
not finished and has no lease gets one (``client.adopt``), so a submitter that died between
the record and the lease orphans nothing either.

The fast path. On Cassandra the feed is relayed (``store/cassandra_feed.py``): a request
reaches it only after a relay pass. So the API's cast (``requests_recorded``) names where the
request is, a stream and its versions, and the active handoff handles those events at once
(``announced``), read from the store, on the thread that heard the cast; the feed stays the
backstop, and a lost cast only leaves the request to it. Why this neither loses, doubles nor
reorders work:

- nothing is lost: the fast path saves no checkpoint; the feed still delivers every event;
- nothing is doubled: workflows start by workflow id (``start_once``), so an event handled
  by both paths (or by two handoffs, one of which lost its lease) starts its workflows once;
  the feed path skips what this handoff handled already, to spare the store the retry;
- a stream's events are handled in stream order, as the feed hands them over: this handoff
  remembers, per stream, the highest version handled in order (``_handled``), by either path,
  and the fast path takes an event only when it is its stream's first or its predecessor was
  handled; any other is left to the feed. When the feed hands over version ``v`` of a stream,
  every earlier version was handed over before it (the feed's promise, checkpoints included),
  so the feed's handling of ``v`` vouches for those before it too. Handling is one event at a
  time (``_handling``), on either path. Across streams the feed promises no order, and rules
  read the store, so a fast-pathed request handled before an older request of another stream
  is what the feed could do too.

Forgetting a stream (the memory is bounded, a new holder starts with none) only sends its next
requests through the feed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sahara_es.engine.client import Take, adopt, start_once
from sahara_es.engine.follower import GENERATION as GENERATION
from sahara_es.engine.follower import PAGE as PAGE
from sahara_es.engine.follower import FeedFollower
from sahara_es.events import Metadata, RecordedEvent
from sahara_es.events import workflow as ev
from sahara_es.store import Store, StoreError

log = logging.getLogger(__name__)

HANDOFF = "handoff"
"""The name of the lease, and of the checkpoint, of the store's one active handoff."""
REMEMBERED_STREAMS = 50_000
"""Streams whose last handled version a handoff remembers (the least recently handled are
forgotten first): their next request may take the fast path."""


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


class Handoff(FeedFollower):
    """Starts the workflows ``rules`` ask for, for every event of the feed, in feed order.

    ``owner``: who holds the lease (the engine's id); ``ttl``: the lease's; ``poll``: the
    pause when the feed has nothing new (``nudge`` ends it: commands were recorded);
    ``name``: the lease and checkpoint (one per store); ``take``: offered each workflow this
    handoff starts, before any engine is (``client.start_workflow``).
    """

    def __init__(self, store: Store, rules: Rules, *, owner: str, ttl: float = 10.0,
                 poll: float = 0.2, name: str = HANDOFF,
                 take: Take | None = None) -> None:
        super().__init__(store, owner=owner, name=name, ttl=ttl, poll=poll)
        self.rules = dict(rules)
        self.take = take
        self.started = 0
        """Workflows this handoff started (for tests and logs)."""
        self.fast = 0
        """Events handled by the fast path, as soon as announced (for tests and benchmarks)."""
        self._handled: OrderedDict[str, int] = OrderedDict()
        self._started_here: OrderedDict[str, None] = OrderedDict()
        """Workflows this handoff started and gave a lease (taken or offered): when their
        ``WorkflowStarted`` comes by in the feed there is nothing to adopt, and nothing to
        read to find that out."""
        self._handling = threading.Lock()

    def start(self) -> Handoff:
        super().start()
        return self

    def _home_region(self, event: RecordedEvent) -> str | None:
        """The region of the resource whose request ``event`` is: the ``region`` its creation
        recorded (the API process's that accepted it), else None (this process's)."""
        first = event if event.version == 1 else next(
            iter(self.store.read(event.stream_id, 1, to_version=1)), None)
        attributes = first.data.get("attributes") if first is not None else None
        region = attributes.get("region") if isinstance(attributes, dict) else None
        return region if isinstance(region, str) else None

    # -- the fast path (the module's doc) ---------------------------------------------------

    def announced(self, stream_id: str, from_version: int, to_version: int) -> int:
        """Handle at once the events ``from_version`` to ``to_version`` of ``stream_id`` that
        are next in their stream, if this handoff is the active one; the rest is the feed's.
        How many it handled."""
        if not self.active or from_version < 1 or to_version < from_version:
            return 0
        known = self._handled.get(stream_id)
        if from_version > 1 and (known is None or known < from_version - 1):
            return 0  # an earlier event of the stream is not handled yet: the feed's
        handled = 0
        with self._handling:
            for event in self.store.read(stream_id, from_version, to_version=to_version):
                if not self.active:
                    break
                if self._handled.get(stream_id, 0) >= event.version:
                    continue  # the feed was faster
                if event.version > 1 and self._handled.get(stream_id) != event.version - 1:
                    break
                self._start_asked(event)
                self._note(stream_id, event.version)
                handled += 1
        self.fast += handled
        if handled:
            log.debug("handoff: %s v%d-%d handled as announced", stream_id, from_version,
                      to_version)
        return handled

    def handle(self, event: RecordedEvent) -> None:
        """The feed's event: started already if the fast path handled it."""
        with self._handling:
            if self._handled.get(event.stream_id, 0) >= event.version:
                return
            self._start_asked(event)
            self._note(event.stream_id, event.version)

    def _note(self, stream_id: str, version: int) -> None:
        self._handled[stream_id] = max(version, self._handled.get(stream_id, 0))
        self._handled.move_to_end(stream_id)
        while len(self._handled) > REMEMBERED_STREAMS:
            self._handled.popitem(last=False)

    def _remember_started(self, workflow_id: str) -> None:
        self._started_here[workflow_id] = None
        while len(self._started_here) > REMEMBERED_STREAMS:
            self._started_here.popitem(last=False)

    def _start_asked(self, event: RecordedEvent) -> None:
        """Start what ``event`` asks for (idempotently), and adopt a workflow it starts."""
        if event.type == ev.WorkflowStarted.event_type and event.version == 1:
            workflow_id = event.stream_id.split("-", 1)[1]
            if workflow_id in self._started_here:
                return
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
                                   request.workflow_id, metadata=metadata,
                                   home_region=self._home_region(event), take=self.take)
            except StoreError:
                raise
            except Exception:  # it cannot be planned: retrying would stall all after it
                log.exception("handoff: %s, asked for by %s v%d, cannot start; left alone",
                              request.workflow_id, event.stream_id, event.version)
                continue
            self._remember_started(request.workflow_id)
            if first:
                self.started += 1
                lag = time.time() - event.metadata.occurred_at.timestamp()
                log.info("handoff: started %s for %s v%d (%.3f s after its request)",
                         request.workflow_id, event.stream_id, event.version, lag)
