"""Sahara's cluster notifications, sent through oslo.messaging's Notifier.

One follower of the feed (``ClusterNotifications``, a ``FeedFollower`` under the
``notifications`` lease, one active per store) folds each cluster's stream as it passes and
sends, for every change of a cluster's status, what Sahara sent
(``sahara/utils/notification/sender.py``): event type ``sahara.cluster.create`` when it is
created, ``sahara.cluster.update`` when its status changes, ``sahara.cluster.delete`` when it
is gone, at ``[DEFAULT] notification_level`` from ``[DEFAULT] notification_publisher_id``,
with the payload ``{cluster_id, cluster_name, cluster_status, project_id, user_id}`` (the user
who created the cluster, as Sahara's engine acted in that user's context).

Delivery is at least once, and in order per cluster: the checkpoint is saved (under the lease)
after each notification sent, so a follower that stops between a send and its save, or loses
its lease meanwhile, makes the next one send that one notification again; nothing is skipped,
since the checkpoint never passes a notification the broker did not take.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import OrderedDict
from typing import Any

import oslo_messaging  # type: ignore[import-untyped]
from oslo_config import cfg

from sahara_es.engine.follower import FeedFollower
from sahara_es.events import RecordedEvent, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import Kind
from sahara_es.rpc.settings import NotificationSettings
from sahara_es.store import Store

log = logging.getLogger(__name__)

NOTIFICATIONS = "notifications"
"""The follower's lease and checkpoint."""
EVENT_TYPE = "sahara.cluster.{}"
CLUSTER_STREAM = f"{Kind.CLUSTER.value}-"
REMEMBERED = 1024
"""Clusters whose folded state is kept between their events (others are read again)."""


def default_publisher_id() -> str:
    return f"sahara.{socket.gethostname()}"


class NotSent(Exception):
    """The broker did not take a notification: the follower tries it again."""


class _SendFailures(logging.Handler):
    """oslo.messaging's Notifier logs a driver's failure instead of raising it: this notes
    that log on the sending thread, so that the checkpoint never passes an unsent one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self.local, "watching", False):
            self.local.failed = True


_failures = _SendFailures()
logging.getLogger("oslo_messaging.notify.notifier").addHandler(_failures)


def notifier_for(conf: cfg.ConfigOpts, settings: NotificationSettings
                 ) -> oslo_messaging.Notifier:
    """A Notifier on ``[oslo_messaging_notifications]``'s transport (default: the RPC one)
    and topics, with its driver, else ``messagingv2``."""
    transport = oslo_messaging.get_notification_transport(conf)
    configured = bool(conf.oslo_messaging_notifications.driver)
    return oslo_messaging.Notifier(
        transport, publisher_id=settings.publisher_id or default_publisher_id(),
        driver=None if configured else "messagingv2", retry=settings.retry)


def change_of(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    """Which of Sahara's notifications a cluster's event makes, if any."""
    if before is None:
        return "create" if after is not None else None
    if after is None or after[ev.META].get("deleted"):
        return "delete" if not before[ev.META].get("deleted") else None
    if after.get("status") != before.get("status"):
        return "update"
    return None


class ClusterNotifications(FeedFollower):
    """Sends a notification for every change of a cluster's status in the feed."""

    def __init__(self, store: Store, notifier: oslo_messaging.Notifier, *, owner: str,
                 level: str = "INFO", ttl: float = 10.0, poll: float = 0.2,
                 name: str = NOTIFICATIONS) -> None:
        super().__init__(store, owner=owner, name=name, ttl=ttl, poll=poll,
                         save_after_acting=True)
        self.notifier = notifier
        self.level = level.lower()
        self.sent = 0
        """Notifications sent by this follower (for tests and logs)."""
        # stream -> (version folded, the cluster, its creator)
        self._clusters: OrderedDict[str, tuple[int, dict[str, Any] | None, str | None]] = \
            OrderedDict()

    def start(self) -> ClusterNotifications:
        super().start()
        return self

    def handle(self, event: RecordedEvent) -> bool:
        if not event.stream_id.startswith(CLUSTER_STREAM):
            return False
        version, before, creator = self._before(event)
        if version >= event.version:
            return False  # folded already (a page handled again)
        after = ev.evolve(before, registry.decode(event), stream_id=event.stream_id,
                          occurred_at=event.metadata.occurred_at.isoformat())
        if event.version == 1:
            creator = event.metadata.actor
        change = change_of(before, after)
        if change is not None:
            self._send(change, after or before or {}, creator)
        self._remember(event.stream_id, event.version, after, creator)
        return change is not None

    def _before(self, event: RecordedEvent) -> tuple[int, dict[str, Any] | None, str | None]:
        known = self._clusters.get(event.stream_id)
        if known is not None and known[0] >= event.version - 1:
            return known  # the state just before, or after it (a page handled again)
        doc: dict[str, Any] | None = None
        creator: str | None = None
        version = 0
        if event.version > 1:
            for recorded in self.store.read(event.stream_id, 1, to_version=event.version - 1):
                doc = ev.evolve(doc, registry.decode(recorded), stream_id=recorded.stream_id,
                                occurred_at=recorded.metadata.occurred_at.isoformat())
                if recorded.version == 1:
                    creator = recorded.metadata.actor
                version = recorded.version
        return version, doc, creator

    def _remember(self, stream_id: str, version: int, doc: dict[str, Any] | None,
                  creator: str | None) -> None:
        self._clusters[stream_id] = (version, doc, creator)
        self._clusters.move_to_end(stream_id)
        while len(self._clusters) > REMEMBERED:
            self._clusters.popitem(last=False)

    def _send(self, change: str, cluster: dict[str, Any], creator: str | None) -> None:
        user = creator if creator and not creator.startswith("project:") else None
        payload = {
            "cluster_id": cluster.get("id"),
            "cluster_name": cluster.get("name"),
            "cluster_status": cluster.get("status"),
            "project_id": cluster.get("project_id"),
            "user_id": user,
        }
        context = {"project_id": cluster.get("project_id"), "user_id": user}
        _failures.local.watching, _failures.local.failed = True, False
        try:
            getattr(self.notifier, self.level)(context, EVENT_TYPE.format(change), payload)
        finally:
            _failures.local.watching = False
        if _failures.local.failed:
            raise NotSent(f"sahara.cluster.{change} of {payload['cluster_id']} not sent")
        self.sent += 1
