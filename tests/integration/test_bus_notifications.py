"""Sahara's cluster notifications from the feed, on a real RabbitMQ to a real listener: one
per status change, in order, and none sent again when another follower takes over from the
checkpoint (delivery is at least once: only a notification sent but not yet checkpointed when
a follower died would be)."""

from __future__ import annotations

import uuid

from sahara_es.engine.follower import GENERATION
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import resources as ev
from sahara_es.rpc.notifications import ClusterNotifications, notifier_for
from sahara_es.rpc.settings import NotificationSettings
from sahara_es.store import Store
from tests.engines import wait_until
from tests.rabbitmq import NotificationCollector, broker_url, messaging_conf


def _record(store: Store, stream: str, version: int, *events: DomainEvent,
            actor: str) -> int:
    return store.append(stream, [registry.new_event(e, Metadata(actor=actor, project_id="p1"))
                                 for e in events], version)


def _start_at_the_feed_s_end(store: Store, name: str) -> None:
    """The follower ``name`` goes on from here: the feed's history (other tests' clusters in
    a shared store) is not this test's."""
    position, page = None, store.read_feed(None)
    while page:
        position = page[-1].position
        page = store.read_feed(position)
    if position is not None:
        store.save_checkpoint(name, GENERATION, position)


def test_each_status_change_is_notified_once_across_a_takeover(store: Store) -> None:
    tag = uuid.uuid4().hex[:8]
    conf = messaging_conf(broker_url(),
                          oslo_messaging_notifications={"topics": [f"notifications-{tag}"]})
    collector = NotificationCollector(broker_url(), tag)
    notifier = notifier_for(conf, NotificationSettings(publisher_id="sahara.test"))
    cluster_id = str(uuid.uuid4())
    stream = f"cluster-{cluster_id}"
    name = f"notifications-{tag}"  # the follower's lease and checkpoint, this test's own
    _start_at_the_feed_s_end(store, name)
    try:
        version = _record(store, stream, 0, ev.ResourceCreated(
            "cluster", cluster_id, "p1", f"c{tag}", {"status": "Validating"}), actor="alice")
        version = _record(store, stream, version, ev.ClusterStatusChanged("Spawning"),
                          ev.ClusterStatusChanged("Spawning", "still"), actor="engine")
        first = ClusterNotifications(store, notifier, owner="first", name=name,
                                     poll=0.05).start()
        wait_until(lambda: len(collector.about(cluster_id)) >= 2, timeout=30)
        first.stop()
        version = _record(store, stream, version, ev.ClusterStatusChanged("Active"),
                          actor="engine")
        version = _record(store, stream, version, ev.ClusterDeletionRequested("Active"),
                          ev.ResourceDeleted(), actor="alice")
        second = ClusterNotifications(store, notifier, owner="second", name=name,
                                      poll=0.05).start()
        wait_until(lambda: len(collector.about(cluster_id)) >= 5, timeout=30)
        second.stop()
    finally:
        collector.close()

    notes = collector.about(cluster_id)
    assert [(n.event_type, n.payload["cluster_status"]) for n in notes] == [
        ("sahara.cluster.create", "Validating"),
        ("sahara.cluster.update", "Spawning"),
        ("sahara.cluster.update", "Active"),
        ("sahara.cluster.update", "Deleting"),
        ("sahara.cluster.delete", "Deleting"),
    ]
    assert {n.payload["user_id"] for n in notes} == {"alice"}
    assert {n.publisher_id for n in notes} == {"sahara.test"}
    assert (first.sent, second.sent) == (2, 3)  # the second went on from the checkpoint
