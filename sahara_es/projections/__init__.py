"""Read models: projections of the feed into rows, rebuilt and verified from zero."""

from sahara_es.projections.base import (
    Difference,
    NotBuilt,
    Projection,
    ProjectionRunner,
    diff,
    rebuild,
    update,
    update_together,
    verify,
)
from sahara_es.projections.projector import Lag, Projector, ReadModel, lag
from sahara_es.projections.registry import PROJECTIONS, every_projection
from sahara_es.projections.resources import RESOURCE_PROJECTIONS, ResourceProjection
from sahara_es.projections.workflows import WorkflowsProjection

__all__ = [
    "PROJECTIONS",
    "RESOURCE_PROJECTIONS",
    "Difference",
    "Lag",
    "NotBuilt",
    "Projection",
    "ProjectionRunner",
    "Projector",
    "ReadModel",
    "ResourceProjection",
    "WorkflowsProjection",
    "diff",
    "every_projection",
    "lag",
    "rebuild",
    "update",
    "update_together",
    "verify",
]
