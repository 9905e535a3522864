"""The bus's settings, importable without oslo.messaging (which only the processes that join
the bus import: it takes a while to import)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from oslo_config import cfg


@dataclass(frozen=True)
class BusSettings:
    topic: str = "sahara-es-engine"
    """The engines' topic: its shared queue, each engine's queue and its fanout exchange."""
    retry: int = 0
    """Reconnection attempts a cast makes before it is dropped (0: one attempt)."""
    queue_size: int = 10_000
    """Casts waiting to be sent; more are dropped."""


@dataclass(frozen=True)
class NotificationSettings:
    publisher_id: str = ""
    """Default: ``sahara.<host>``."""
    level: str = "INFO"
    retry: int = 3
    """Reconnection attempts before a notification counts as not sent (then tried again)."""


def register_messaging_options(conf: cfg.ConfigOpts) -> None:
    """oslo.messaging's own options (``transport_url``, ``[oslo_messaging_rabbit]``,
    ``[oslo_messaging_notifications]``...) on ``conf``; registering twice is harmless."""
    from oslo_messaging import opts  # type: ignore[import-untyped]

    for group, options in opts.list_opts():
        conf.register_opts(options, group=group)
    # Read by every RPC client but registered on the global CONF only (absent from
    # list_opts); oslo.messaging's own ConfFixture registers them the same way.
    for module, group in (("oslo_messaging._metrics.client", "oslo_messaging_metrics"),
                          ("oslo_messaging._tracing.client", "oslo_messaging_tracing")):
        conf.register_opts(getattr(importlib.import_module(module), group), group=group)
