"""Read models: projections of the feed into rows, rebuilt and verified from zero."""

from sahara_es.projections.base import (
    Difference,
    NotBuilt,
    Projection,
    ProjectionRunner,
    diff,
    rebuild,
    update,
    verify,
)
from sahara_es.projections.workflows import WorkflowsProjection

PROJECTIONS: dict[str, type[Projection]] = {"workflows": WorkflowsProjection}
"""Every projection, by name."""

__all__ = [
    "PROJECTIONS",
    "Difference",
    "NotBuilt",
    "Projection",
    "ProjectionRunner",
    "WorkflowsProjection",
    "diff",
    "rebuild",
    "update",
    "verify",
]
