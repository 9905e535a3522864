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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sahara_es.engine.client import adopt, start_once
from sahara_es.engine.follower import GENERATION as GENERATION
from sahara_es.engine.follower import PAGE as PAGE
from sahara_es.engine.follower import FeedFollower
from sahara_es.events import Metadata, RecordedEvent
from sahara_es.events import workflow as ev
from sahara_es.store import Store, StoreError

log = logging.getLogger(__name__)

HANDOFF = "handoff"
"""The name of the lease, and of the checkpoint, of the store's one active handoff."""


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
    ``name``: the lease and checkpoint (one per store).
    """

    def __init__(self, store: Store, rules: Rules, *, owner: str, ttl: float = 10.0,
                 poll: float = 0.2, name: str = HANDOFF) -> None:
        super().__init__(store, owner=owner, name=name, ttl=ttl, poll=poll)
        self.rules = dict(rules)
        self.started = 0
        """Workflows this handoff started (for tests and logs)."""

    def start(self) -> Handoff:
        super().start()
        return self

    def _home_region(self, event: RecordedEvent) -> str | None:
        """The region of the resource whose request ``event`` is: the ``region`` its creation
        recorded (the API process's that accepted it), else None (this process's)."""
        first = next(iter(self.store.read(event.stream_id, 1, to_version=1)), None)
        attributes = first.data.get("attributes") if first is not None else None
        region = attributes.get("region") if isinstance(attributes, dict) else None
        return region if isinstance(region, str) else None

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
                                   request.workflow_id, metadata=metadata,
                                   home_region=self._home_region(event))
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
