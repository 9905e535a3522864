"""Every projection, by name: the projector keeps each of them up to date, and
``sahara-es projections`` rebuilds, verifies and updates them."""

from __future__ import annotations

from sahara_es.projections.base import Projection
from sahara_es.projections.resources import RESOURCE_PROJECTIONS
from sahara_es.projections.workflows import WorkflowsProjection

PROJECTIONS: dict[str, type[Projection]] = {
    "workflows": WorkflowsProjection,
    **{p.name: p for p in RESOURCE_PROJECTIONS.values()},
}
"""Every projection, by name."""


def every_projection(given: list[Projection] | None = None) -> list[Projection]:
    """``given``, then one instance of each registered projection it does not name."""
    projections = list(given or [])
    named = {projection.name for projection in projections}
    return projections + [cls() for name, cls in PROJECTIONS.items() if name not in named]
