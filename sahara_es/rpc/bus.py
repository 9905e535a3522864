"""The engines' wake-ups over oslo.messaging (RabbitMQ): ``engine/wakeups.py``'s protocols.

Each engine subscribed here runs an RPC server on the engines' topic, under its engine id, and
so hears three kinds of cast: to the topic's shared queue (one engine: "take this workflow"),
to its own queue (the owner of a workflow: "read this claim stream"; an engine that said it
has spare slots: "claim these offered tasks") and fanned out (every engine: "sweep", "look at
this cancel", "the feed moved", "these are my spare slots", and offers cast again).

Casts are hints, never truth: they are sent from one thread of their own, dropped when the
broker cannot take them at once (``retry``) or when too many wait (``queue_size``), and each
receiver checks the store before acting. What a lost cast was about is found by the engines'
sweep, which is why the sweep may be slow once this bus is attached.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import oslo_messaging  # type: ignore[import-untyped]
from oslo_config import cfg

from sahara_es.engine.wakeups import Listener, attach
from sahara_es.rpc.settings import BusSettings, register_messaging_options
from sahara_es.store import Store

log = logging.getLogger(__name__)

NAMESPACE = "sahara-es.engine"
VERSION = "1.0"


def transport_for(conf: cfg.ConfigOpts) -> oslo_messaging.Transport | None:
    """The RPC transport ``[DEFAULT] transport_url`` names; None when it names no broker
    (every process then dispatches in-process)."""
    if not names_a_broker(conf):
        return None
    return oslo_messaging.get_rpc_transport(conf)


def names_a_broker(conf: cfg.ConfigOpts) -> bool:
    """Whether ``[DEFAULT] transport_url`` names a host (its default, ``rabbit://``, names
    none: no bus)."""
    register_messaging_options(conf)
    if not conf.transport_url:
        return False
    return bool(oslo_messaging.TransportURL.parse(conf, conf.transport_url).hosts)


class EngineEndpoint:
    """What an engine answers on the bus: each cast, handed to its ``Listener``."""

    target = oslo_messaging.Target(namespace=NAMESPACE, version=VERSION)

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def workflow_ready(self, ctxt: dict[str, Any], workflow_id: str) -> None:
        self.listener.on_workflow_ready(workflow_id)

    def wake(self, ctxt: dict[str, Any]) -> None:
        self.listener.on_wake()

    def tasks_offered(self, ctxt: dict[str, Any], workflow_id: str, owner: str,
                      task_ids: list[str] | None = None) -> None:
        if owner != self.listener.engine_id:
            self.listener.on_tasks_offered(workflow_id, owner, tuple(task_ids or ()))

    def claim_moved(self, ctxt: dict[str, Any], workflow_id: str, stream_id: str) -> None:
        self.listener.on_claim_moved(workflow_id, stream_id)

    def cancel_requested(self, ctxt: dict[str, Any], workflow_id: str) -> None:
        self.listener.on_cancel_requested(workflow_id)

    def requests_recorded(self, ctxt: dict[str, Any], stream_id: str | None = None,
                          from_version: int = 0, to_version: int = 0) -> None:
        self.listener.on_requests_recorded(stream_id, from_version, to_version)

    def capacity(self, ctxt: dict[str, Any], engine_id: str, free: int) -> None:
        if engine_id != self.listener.engine_id:
            self.listener.on_capacity(engine_id, free)


SUBSCRIBE_WAIT = 5.0
"""Seconds ``subscribe`` waits for its server's queues before it returns anyway."""


@dataclass(frozen=True)
class _Cast:
    method: str
    kwargs: dict[str, Any]
    fanout: bool = False
    server: str | None = None


class RabbitWakeups:
    """``Wakeups`` over an oslo.messaging transport (``transport_for``)."""

    remote = True
    carries_offers = True

    def __init__(self, transport: oslo_messaging.Transport,
                 settings: BusSettings | None = None) -> None:
        self.transport = transport
        self.settings = settings or BusSettings()
        self._target = oslo_messaging.Target(topic=self.settings.topic, namespace=NAMESPACE,
                                             version=VERSION)
        self._client = oslo_messaging.get_rpc_client(transport, self._target)
        self._servers: dict[str, oslo_messaging.rpc.server.RPCServer] = {}
        self._servers_lock = threading.Lock()
        self._queue: queue.Queue[_Cast | None] = queue.Queue(self.settings.queue_size)
        self._sender = threading.Thread(target=self._send, name="bus casts", daemon=True)
        self._sender.start()
        self.casts: Counter[str] = Counter()
        """Casts sent, and dropped, by method (for benchmarks and tests)."""

    # -- listening ------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Listen for ``listener``: once this returns, its queues take casts (a cast made
        before a queue exists reaches nobody, and is found only by the sweep). The server
        starts on a thread, since it waits for a broker that is away; that wait is given
        ``SUBSCRIBE_WAIT`` seconds here, and the rest happens in the background."""
        target = oslo_messaging.Target(topic=self.settings.topic, server=listener.engine_id)
        server = oslo_messaging.get_rpc_server(
            self.transport, target, [EngineEndpoint(listener)],
            access_policy=oslo_messaging.DefaultRPCAccessPolicy)
        with self._servers_lock:
            self._servers[listener.engine_id] = server
        starting = threading.Thread(target=server.start, name=f"bus {listener.engine_id}",
                                    daemon=True)
        starting.start()
        starting.join(SUBSCRIBE_WAIT)

    def unsubscribe(self, listener: Listener) -> None:
        with self._servers_lock:
            server = self._servers.pop(listener.engine_id, None)
        if server is not None:
            try:
                server.stop()
                server.wait()
            except Exception:  # never started (the broker was away): nothing to stop
                log.debug("bus server of %s: not stopped cleanly", listener.engine_id,
                          exc_info=True)

    def close(self) -> None:
        """Stop sending and listening, and drop the transport's connections."""
        with self._servers_lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            try:
                server.stop()
                server.wait()
            except Exception:
                log.debug("bus server not stopped cleanly", exc_info=True)
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1)
        self._sender.join(5)
        self.transport.cleanup()

    # -- casting --------------------------------------------------------------------------

    def _cast(self, cast: _Cast) -> None:
        try:
            self._queue.put_nowait(cast)
        except queue.Full:
            self.casts[f"dropped {cast.method}"] += 1

    def _send(self) -> None:
        while (cast := self._queue.get()) is not None:
            prepared = self._client.prepare(fanout=cast.fanout, server=cast.server,
                                            retry=self.settings.retry)
            try:
                prepared.cast({}, cast.method, **cast.kwargs)
                self.casts[cast.method] += 1
            except Exception as error:  # the broker is away: the sweep finds the work
                self.casts[f"dropped {cast.method}"] += 1
                log.warning("cast %s dropped: %s", cast.method, error)

    def workflow_ready(self, workflow_id: str) -> None:
        self._cast(_Cast("workflow_ready", {"workflow_id": workflow_id}))

    def wake_all(self) -> None:
        self._cast(_Cast("wake", {}, fanout=True))

    def tasks_offered(self, workflow_id: str, owner: str, engine_id: str | None = None,
                      task_ids: Sequence[str] = ()) -> None:
        self._cast(_Cast("tasks_offered", {"workflow_id": workflow_id, "owner": owner,
                                           "task_ids": list(task_ids)},
                         fanout=engine_id is None, server=engine_id))

    def claim_moved(self, owner: str, workflow_id: str, stream_id: str) -> None:
        if owner:
            self._cast(_Cast("claim_moved", {"workflow_id": workflow_id,
                                             "stream_id": stream_id}, server=owner))

    def cancel_requested(self, workflow_id: str) -> None:
        self._cast(_Cast("cancel_requested", {"workflow_id": workflow_id}, fanout=True))

    def requests_recorded(self, stream_id: str | None = None, from_version: int = 0,
                          to_version: int = 0) -> None:
        where = {"stream_id": stream_id, "from_version": from_version,
                 "to_version": to_version} if stream_id is not None else {}
        self._cast(_Cast("requests_recorded", where, fanout=True))

    def capacity(self, engine_id: str, free: int) -> None:
        self._cast(_Cast("capacity", {"engine_id": engine_id, "free": free}, fanout=True))


def join_bus(conf: cfg.ConfigOpts, store: Store, settings: BusSettings | None = None
             ) -> RabbitWakeups | None:
    """The bus ``[DEFAULT] transport_url`` names, attached to ``store`` (what engines and
    clients on it cast through); None, and nothing attached, when it names none."""
    transport = transport_for(conf)
    if transport is None:
        return None
    bus = RabbitWakeups(transport, settings)
    attach(store, bus)
    return bus
