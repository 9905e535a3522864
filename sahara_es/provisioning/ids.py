"""The workflow ids of a cluster's requests, one rule each, written once: the handoff starts
each workflow by its id, so a request repeated after a crash starts nothing twice, and a
delete finds what still provisions the cluster by the same rules.

These ids are in stored histories: a rule never changes.
"""

from __future__ import annotations


def create_id(cluster_id: str) -> str:
    """The cluster's create workflow."""
    return f"create-{cluster_id}"


def scale_id(version: int, cluster_id: str) -> str:
    """The scale asked for by the cluster's event ``version`` (its ``ClusterScaleRequested``)."""
    return f"scale{version}-{cluster_id}"


def rebuild_id(version: int, cluster_id: str) -> str:
    """The rebuild asked for by the cluster's event ``version``."""
    return f"rebuild{version}-{cluster_id}"


def delete_id(cluster_id: str) -> str:
    """The cluster's delete workflow."""
    return f"delete-{cluster_id}"


def verify_id(verification_id: str) -> str:
    """A verification's workflow (the verification's own id is unique)."""
    return f"verify-{verification_id}"
