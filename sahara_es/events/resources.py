"""The events of the service's resources: templates, clusters, data sources, job binaries,
job templates and jobs.

Each resource lives in its own stream, ``<kind>-<id>`` (``cluster-0b3f…``). Every kind shares
the document events (created, updated, deleted, referenced, released); clusters and jobs add
the events of their lifecycle. A resource's representation is the fold of its stream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from sahara_es.events.registry import DomainEvent, registry


class Kind(enum.StrEnum):
    """A kind of resource; its value is the category of its streams."""

    NODE_GROUP_TEMPLATE = "nodegrouptemplate"
    CLUSTER_TEMPLATE = "clustertemplate"
    CLUSTER = "cluster"
    DATA_SOURCE = "datasource"
    JOB_BINARY = "jobbinary"
    JOB_TEMPLATE = "jobtemplate"
    JOB = "job"

    def stream(self, resource_id: str) -> str:
        return f"{self.value}-{resource_id}"

    @property
    def label(self) -> str:
        """How people name the kind: ``node group template``."""
        return _LABELS[self]


_LABELS = {
    Kind.NODE_GROUP_TEMPLATE: "node group template",
    Kind.CLUSTER_TEMPLATE: "cluster template",
    Kind.CLUSTER: "cluster",
    Kind.DATA_SOURCE: "data source",
    Kind.JOB_BINARY: "job binary",
    Kind.JOB_TEMPLATE: "job template",
    Kind.JOB: "job",
}


# -- every kind ----------------------------------------------------------------------------

@registry.event("ResourceCreated")
@dataclass(frozen=True)
class ResourceCreated(DomainEvent):
    kind: str
    resource_id: str
    project_id: str
    name: str
    attributes: dict[str, Any]
    """The validated representation's own fields (everything but id, project, timestamps)."""


@registry.event("ResourceUpdated")
@dataclass(frozen=True)
class ResourceUpdated(DomainEvent):
    changes: dict[str, Any]
    """Only the fields that changed, with their new values (``name`` included)."""


@registry.event("ResourceDeleted")
@dataclass(frozen=True)
class ResourceDeleted(DomainEvent):
    pass


@registry.event("ResourceReferenced")
@dataclass(frozen=True)
class ResourceReferenced(DomainEvent):
    """Another resource (``by``, a stream id) now uses this one: it can no longer be changed
    or deleted until released. Appended *before* the referring resource is created, so a
    delete that wins the race makes that creation fail instead of leaving it dangling."""

    by: str


@registry.event("ResourceReleased")
@dataclass(frozen=True)
class ResourceReleased(DomainEvent):
    by: str


# -- clusters ------------------------------------------------------------------------------

@registry.event("ClusterStatusChanged")
@dataclass(frozen=True)
class ClusterStatusChanged(DomainEvent):
    status: str
    description: str = ""


@registry.event("ClusterScaleRequested")
@dataclass(frozen=True)
class ClusterScaleRequested(DomainEvent):
    """The node groups' sizes before and after (``{name: count}``), and the groups added."""

    resize: dict[str, int]
    add_node_groups: list[dict[str, Any]] = field(default_factory=list)
    instances: dict[str, list[str]] = field(default_factory=dict)
    """Per node group, the instances to remove (a scale down naming them)."""
    previous: dict[str, int] = field(default_factory=dict)
    quota_holder: str = ""
    """Who holds the quota this scale claimed (empty when it claimed none)."""


@registry.event("ClusterRebuildRequested")
@dataclass(frozen=True)
class ClusterRebuildRequested(DomainEvent):
    """Replace the failed nodes of a partially active cluster with new ones."""

    nodes: list[str]


@registry.event("ClusterDeletionRequested")
@dataclass(frozen=True)
class ClusterDeletionRequested(DomainEvent):
    previous_status: str


@registry.event("ClusterForceDeletionRequested")
@dataclass(frozen=True)
class ClusterForceDeletionRequested(DomainEvent):
    """Delete the cluster now (``DELETE`` with ``{"force": true}``): whatever provisions or
    deletes it is cancelled without waiting for it, its services are not stopped, its
    instances are deleted. Asked again of a cluster being deleted, it supersedes that
    deletion."""

    previous_status: str


@registry.event("ClusterKeypairUpdateRequested")
@dataclass(frozen=True)
class ClusterKeypairUpdateRequested(DomainEvent):
    """Push the current public key of the cluster's key pair (``user_keypair_id``) to every
    node (``PATCH`` with ``{"update_keypair": true}``)."""

    keypair: str


@registry.event("ClusterVerificationRequested")
@dataclass(frozen=True)
class ClusterVerificationRequested(DomainEvent):
    verification_id: str


@registry.event("ClusterScaleReverted")
@dataclass(frozen=True)
class ClusterScaleReverted(DomainEvent):
    """A failed scale undone: the node groups' sizes back, the groups it added gone."""

    sizes: dict[str, int]
    removed_node_groups: list[str] = field(default_factory=list)


@registry.event("InstanceAdded")
@dataclass(frozen=True)
class InstanceAdded(DomainEvent):
    node_group: str
    instance_name: str
    management_ip: str
    host: str | None = None
    alternates: list[str] = field(default_factory=list)
    """The hosts the scheduler kept in reserve for it, had this one failed."""
    ssh_port: int = 22
    username: str = ""
    host_key: str = ""
    home: str = ""


@registry.event("InstanceRemoved")
@dataclass(frozen=True)
class InstanceRemoved(DomainEvent):
    node_group: str
    instance_name: str


@registry.event("ProvisioningStepStarted")
@dataclass(frozen=True)
class ProvisioningStepStarted(DomainEvent):
    step_id: str
    step_name: str
    total: int
    step_type: str = ""


@registry.event("ProvisioningStepProgressed")
@dataclass(frozen=True)
class ProvisioningStepProgressed(DomainEvent):
    """One node's outcome in a step (Sahara's per-instance event)."""

    step_id: str
    instance_name: str
    successful: bool
    event_info: str = ""
    node_group: str = ""


@registry.event("ClusterHealthChecked")
@dataclass(frozen=True)
class ClusterHealthChecked(DomainEvent):
    verification_id: str
    status: str
    """GREEN, YELLOW or RED."""
    checks: list[dict[str, Any]]
    failed_nodes: list[str] = field(default_factory=list)


@registry.event("ClusterKeyGenerated", version=2)
@dataclass(frozen=True)
class ClusterKeyGenerated(DomainEvent):
    """The cluster's management key pair, in ``clusterkey-<cluster id>``: the one place the
    private key is kept, sealed with the data key of ``key_owner`` (the cluster's stream, see
    ``sahara_es.commands.secrets``), never in clear; deleting the cluster deletes that data
    key, and the private key with it. No representation shows it.

    Version 1 carried the private key in clear (``private_key``); its upcaster moves it to
    ``legacy_private_key``, which only events written before version 2 fill: those stay
    readable by whoever reads the events, delete or not (doc/security.rst)."""

    sealed_private_key: str
    public_key: str
    key_owner: str
    legacy_private_key: str = field(default="", repr=False)

    def to_data(self) -> dict[str, Any]:
        data = super().to_data()
        if not data["legacy_private_key"]:
            del data["legacy_private_key"]  # new events never carry a key in clear
        return data


@registry.upcaster("ClusterKeyGenerated", from_version=1)
def _cluster_key_v1(data: dict[str, Any]) -> dict[str, Any]:
    return {"sealed_private_key": "", "public_key": data["public_key"], "key_owner": "",
            "legacy_private_key": data["private_key"]}


# -- jobs (executions) -----------------------------------------------------------------------

@registry.event("JobStatusChanged")
@dataclass(frozen=True)
class JobStatusChanged(DomainEvent):
    status: str
    description: str = ""
    engine_job_id: str | None = None


@registry.event("JobCancelRequested")
@dataclass(frozen=True)
class JobCancelRequested(DomainEvent):
    previous_status: str


@registry.event("JobCancelFailed")
@dataclass(frozen=True)
class JobCancelFailed(DomainEvent):
    """The job did not stop within the cancel timeout: it runs on (``RUNNING``) and may be
    cancelled again."""

    reason: str


@registry.event("JobLogsCaptured")
@dataclass(frozen=True)
class JobLogsCaptured(DomainEvent):
    """The last bytes of the job's output, as its job engine read them."""

    stdout: str
    stderr: str


# -- the representation: the fold of a resource's stream ------------------------------------

Doc = dict[str, Any]
META = "_meta"
"""Fields of a representation that are the service's own, never shown: kind, deleted,
references held by other resources."""

CLUSTER_FINAL = "Deleting"


def evolve(doc: Doc | None, event: DomainEvent, *, stream_id: str, occurred_at: str) -> Doc | None:
    """A resource's representation after one of its events. ``doc`` is not mutated.

    The one fold of resources: the command side's aggregate and the read models both use it,
    so what a command returns is exactly what a read shows.
    """
    if isinstance(event, ResourceCreated):
        attributes = dict(event.attributes)
        new: Doc = {"id": event.resource_id, "name": event.name,
                    "project_id": event.project_id, **attributes,
                    "created_at": occurred_at, "updated_at": None,
                    META: {"kind": event.kind, "stream": stream_id, "used_by": {},
                           "deleted": False, "uses": new_uses(attributes, [])}}
        new.pop("uses", None)
        if not event.name:
            del new["name"]
        return new
    if doc is None:
        return None
    new = {**doc, META: {**doc[META], "used_by": dict(doc[META]["used_by"])}}
    meta = new[META]
    match event:
        case ResourceUpdated():
            changes = dict(event.changes)
            meta["uses"] = new_uses(changes, meta["uses"])
            changes.pop("uses", None)
            new.update(changes)
        case ResourceDeleted():
            meta["deleted"] = True
        case ResourceReferenced():
            meta["used_by"][event.by] = occurred_at
            return new
        case ResourceReleased():
            meta["used_by"].pop(event.by, None)
            return new
        case ClusterStatusChanged():
            new.update(status=event.status, status_description=event.description)
        case ClusterScaleRequested():
            groups = [dict(g) for g in new.get("node_groups", [])]
            for group in groups:
                if group["name"] in event.resize:
                    group["count"] = event.resize[group["name"]]
            new["node_groups"] = groups + [dict(g) for g in event.add_node_groups]
            new.update(status="Scaling", status_description="")
            if event.quota_holder:
                new[META] = {**new[META], "quota_holders": [
                    *new[META].get("quota_holders", []), event.quota_holder]}
        case ClusterRebuildRequested():
            new.update(status="Scaling",
                       status_description=f"rebuilding {', '.join(event.nodes)}")
        case ClusterDeletionRequested():
            new.update(status=CLUSTER_FINAL, status_description="")
        case ClusterForceDeletionRequested():
            new.update(status=CLUSTER_FINAL, status_description="deleting by force")
            meta["forced"] = True
        case ClusterVerificationRequested():
            new["verification"] = {"id": event.verification_id, "status": "CHECKING",
                                   "checks": []}
        case ClusterScaleReverted():
            groups = [dict(g) for g in new.get("node_groups", [])
                      if g["name"] not in event.removed_node_groups]
            for group in groups:
                if group["name"] in event.sizes:
                    group["count"] = event.sizes[group["name"]]
            new["node_groups"] = groups
        case InstanceAdded():
            groups = [dict(g) for g in new.get("node_groups", [])]
            for group in groups:
                if group["name"] == event.node_group:
                    kept = [i for i in group.get("instances", [])
                            if i["instance_name"] != event.instance_name]
                    group["instances"] = [*kept, {
                        "id": event.instance_name, "instance_id": event.instance_name,
                        "instance_name": event.instance_name,
                        "management_ip": event.management_ip,
                        "internal_ip": event.management_ip, "host": event.host,
                        "created_at": occurred_at}]
            new["node_groups"] = groups
        case InstanceRemoved():
            groups = [dict(g) for g in new.get("node_groups", [])]
            for group in groups:
                if group["name"] == event.node_group:
                    group["instances"] = [i for i in group.get("instances", [])
                                          if i["instance_name"] != event.instance_name]
            new["node_groups"] = groups
        case ProvisioningStepStarted():
            new["provision_progress"] = [*new.get("provision_progress", []), {
                "id": event.step_id, "cluster_id": new["id"], "step_name": event.step_name,
                "step_type": event.step_type, "total": event.total, "successful": None,
                "created_at": occurred_at, "updated_at": None, "events": []}]
        case ProvisioningStepProgressed():
            steps = []
            for step in new.get("provision_progress", []):
                if step["id"] == event.step_id:
                    step = {**step, "updated_at": occurred_at, "events": [*step["events"], {
                        "id": f"{event.step_id}.{len(step['events']) + 1}",
                        "step_id": event.step_id, "instance_name": event.instance_name,
                        "instance_id": event.instance_name, "node_group_id": event.node_group,
                        "event_info": event.event_info, "successful": event.successful,
                        "created_at": occurred_at}]}
                    outcomes = [e["successful"] for e in step["events"]]
                    if not all(outcomes):
                        step["successful"] = False
                    elif len(outcomes) >= step["total"]:
                        step["successful"] = True
                steps.append(step)
            new["provision_progress"] = steps
        case ClusterHealthChecked():
            new["verification"] = {"id": event.verification_id, "cluster_id": new["id"],
                                   "status": event.status, "checks": event.checks}
            new["health"] = event.status
            new["failed_nodes"] = list(event.failed_nodes)
        case JobStatusChanged():
            info = {**new.get("info", {}), "status": event.status}
            if event.description:
                info["status_description"] = event.description
            new["info"] = info
            if event.engine_job_id:
                new["engine_job_id"] = event.engine_job_id
            if event.status == "RUNNING" and not new.get("start_time"):
                new["start_time"] = occurred_at
            if event.status in JOB_FINAL:
                new["end_time"] = occurred_at
        case JobCancelRequested():
            new["info"] = {**new.get("info", {}), "status": "TOBEKILLED"}
        case JobCancelFailed():
            status = "RUNNING" if new.get("engine_job_id") else "PENDING"
            new["info"] = {**new.get("info", {}), "status": status,
                           "status_description": event.reason}
        case JobLogsCaptured():
            new["logs"] = {"stdout": event.stdout, "stderr": event.stderr,
                           "captured_at": occurred_at}
    new["updated_at"] = occurred_at
    return new


def new_uses(fields: Doc, before: list[str]) -> list[str]:
    """The streams a resource pins (``uses`` in its created or updated fields)."""
    return list(fields.get("uses", before))


JOB_FINAL = frozenset({"SUCCEEDED", "FAILED", "KILLED", "DONEWITHERROR"})


def public(doc: Doc) -> Doc:
    """The representation a client sees: without the service's own fields."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}
