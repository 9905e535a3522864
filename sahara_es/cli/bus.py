"""The service processes on the bus (doc/bus.rst): joining it when ``[DEFAULT] transport_url``
names a broker, the API's store that announces recorded requests, and the follower that sends
Sahara's cluster notifications. oslo.messaging is imported only by processes that use it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from oslo_config import cfg

from sahara_es.cli.config import messaging_options
from sahara_es.engine.follower import FeedFollower
from sahara_es.rpc.settings import BusSettings, NotificationSettings
from sahara_es.store import Store

if TYPE_CHECKING:
    from sahara_es.rpc.bus import RabbitWakeups


def join_bus(conf: cfg.ConfigOpts, store: Store) -> RabbitWakeups | None:
    """The bus of ``[DEFAULT] transport_url``, attached to ``store``; None without one."""
    if not bus_configured(conf):
        return None
    from sahara_es.rpc.bus import join_bus as join

    return join(conf, store, BusSettings(topic=conf.bus.engine_topic,
                                         retry=conf.bus.cast_retry))


def bus_configured(conf: cfg.ConfigOpts) -> bool:
    """Whether ``[DEFAULT] transport_url`` names a broker (in a file, the environment or a
    flag)."""
    from sahara_es.rpc.bus import names_a_broker

    return names_a_broker(messaging_options(conf))


def notifications_for(conf: cfg.ConfigOpts, store: Store, *, owner: str, ttl: float,
                      poll: float) -> FeedFollower | None:
    """The follower that sends Sahara's cluster notifications, started, when
    ``enable_notifications`` is set."""
    if not conf.enable_notifications:
        return None
    from sahara_es.rpc.notifications import ClusterNotifications, notifier_for

    settings = NotificationSettings(publisher_id=conf.notification_publisher_id or "",
                                    level=conf.notification_level)
    notifier = notifier_for(messaging_options(conf), settings)
    return ClusterNotifications(store, notifier, owner=owner, level=settings.level,
                                ttl=ttl, poll=poll).start()


def announced(conf: cfg.ConfigOpts, store: Store) -> tuple[Store, RabbitWakeups | None]:
    """The API's store: with a bus, one that casts ``requests_recorded`` when a command
    records a request the engines' handoff acts on; and the bus, to close on exit."""
    bus = join_bus(conf, store)
    if bus is None:
        return store, None
    from sahara_es.provisioning.requests import CLUSTER_REQUESTS
    from sahara_es.rpc.announce import announcing

    return announcing(store, bus, CLUSTER_REQUESTS), bus
