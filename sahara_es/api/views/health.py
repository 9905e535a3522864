"""``/`` (version discovery) and ``/healthz``: liveness and how far behind the read models are."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from sahara_es.api.service import service
from sahara_es.api.versions import discovery
from sahara_es.api.views.common import answer
from sahara_es.projections import lag

blueprint = Blueprint("health", __name__)


@blueprint.get("/")
def versions() -> Response:
    return answer(None, discovery(request.host_url))


@blueprint.get("/healthz")
def health() -> Response:
    """``?probe=1`` (a balancer's check, every second or so): this process answers, and
    where its GETs read; nothing asked of the store, so that a check costs the same however
    busy the engines keep the store and the feed."""
    if request.args.get("probe") == "1":
        return answer(None, {"status": "ok", "reads": _reads()})
    projections = {}
    worst = 0.0
    for read in service().reads.values():
        measured = lag(service().store, read.projection)
        projections[measured.projection] = {"lag_events": measured.events,
                                            "lag_seconds": measured.seconds,
                                            "checkpoint": measured.checkpoint}
        worst = max(worst, measured.seconds)
    projector = service().projector
    return answer(None, {
        "status": "ok",
        "store": service().store.describe().get("backend"),
        "projector": {"running_here": bool(projector and projector.active)},
        "max_lag_seconds": worst,
        "projections": projections,
        "reads": _reads(),
    })


def _reads() -> dict[str, Any]:
    """Where this process's GETs read (doc/api-processes.rst)."""
    tail = service().tail
    if tail is None:
        return {"from": "store"}
    return {"from": "memory" if tail.lag_seconds() <= service().max_read_lag else "store",
            "tail_lag_seconds": round(min(tail.lag_seconds(), 1e9), 3),
            "max_lag_seconds": service().max_read_lag}
