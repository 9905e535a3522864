"""``/`` (version discovery) and ``/healthz``: liveness and how far behind the read models are."""

from __future__ import annotations

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
    projections = {}
    worst = 0.0
    for read in service().reads.values():
        measured = lag(service().store, read.projection)
        projections[measured.projection] = {"lag_events": measured.events,
                                            "lag_seconds": measured.seconds,
                                            "checkpoint": measured.checkpoint}
        worst = max(worst, measured.seconds)
    projector = service().projector
    tail = service().tail
    reads = {"from": "store"} if tail is None else {
        "from": "memory" if tail.lag_seconds() <= service().max_read_lag else "store",
        "tail_lag_seconds": round(min(tail.lag_seconds(), 1e9), 3),
        "max_lag_seconds": service().max_read_lag}
    return answer(None, {
        "status": "ok",
        "store": service().store.describe().get("backend"),
        "projector": {"running_here": bool(projector and projector.active)},
        "max_lag_seconds": worst,
        "projections": projections,
        "reads": reads,
    })
