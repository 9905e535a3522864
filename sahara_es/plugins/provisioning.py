"""Cluster workflows: create, scale, delete and verify, as task graphs the engine runs.

Each workflow records what it does in the cluster's own stream (status changes, instances,
provisioning steps with per-node outcomes, health), so the API shows it live; the work is
in tasks whose results say how to undo them. A failed create rolls back: instances deleted,
host and quota claims released, the cluster in ``Error`` with the reason. A failed scale
returns the cluster to its previous size, ``Active``.

The plugin does not do the work: it returns flows (per-node tasks) that these workflows
spawn, each node task wrapped in ``cluster.node-step`` so that its outcome is recorded as
the node's event in the step; a worker node whose step fails is left out (the cluster is
*partially active*, health YELLOW) when the plugin says the cluster can run without it.

Workflow ids follow the cluster: ``create-<id>``, ``scale<version>-<id>``, ``delete-<id>``,
``verify-<verification id>``, so a request repeated after a crash starts nothing twice; each
carries the cluster's project, by which engines share their slots.

Bounds: every node step runs under the ``step_limits`` service's timeout for its task type
and stops when its workflow is cancelled; either way its remote commands are killed and the
step fails saying so. A delete cancels what provisions the cluster, waits for it at most
``cancel_grace``, then deletes every instance. Deleting is final: nothing creates an
instance or claims a host for a cluster being deleted (a task that was already doing it
undoes its own work when it sees the deletion), reverts leave its status alone, and nothing
is appended to a deleted cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any

from sahara_es.commands import resources
from sahara_es.commands.caller import SYSTEM
from sahara_es.commands.errors import ChangedConcurrently
from sahara_es.engine import (
    Flow,
    PermanentFailure,
    RetryPolicy,
    Spawn,
    Task,
    TaskContext,
    load_workflow,
    request_cancel,
    start_workflow,
    task_type,
    wait_for,
    workflow_type,
)
from sahara_es.engine.attempts import decide
from sahara_es.engine.flow import TaskSpec, build_task
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import CLUSTER_FINAL, META, Doc, Kind
from sahara_es.infra.base import InfraError, InfraProvider, InstanceSpec
from sahara_es.infra.placement import NodeRequest, NoValidHost, Placement, Scheduler
from sahara_es.infra.ssh import command_limits
from sahara_es.plugins.base import ClusterInfo, NodeInfo, Plugin
from sahara_es.plugins.runtime import StepLimits, ensure_cluster_key, shred_cluster_secrets
from sahara_es.store import ConcurrencyConflict, Store

log = logging.getLogger(__name__)

CREATE, SCALE, REBUILD, DELETE, VERIFY = ("cluster.create", "cluster.scale",
                                          "cluster.rebuild", "cluster.delete",
                                          "cluster.verify")
REACHABLE_TIMEOUT = 60.0


# -- the cluster's stream -------------------------------------------------------------------

def cluster_doc(store: Store, cluster_id: str) -> Doc:
    aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
    if aggregate.doc is None:
        raise PermanentFailure(f"cluster {cluster_id} does not exist")
    return aggregate.doc


class ClusterGone(PermanentFailure):
    """The cluster was deleted: nothing more is recorded about it."""


def being_deleted(doc: Doc) -> bool:
    return doc.get("status") == CLUSTER_FINAL or bool(doc[META].get("deleted"))


def step_limits(ctx: TaskContext) -> StepLimits:
    limits = ctx.services.get("step_limits")
    return limits if isinstance(limits, StepLimits) else StepLimits()


def tenant_view(ctx: TaskContext, event: DomainEvent) -> DomainEvent:
    """``event`` as the cluster's owner may read it: its texts (a status description, a
    node's failure) name none of the service's own folders."""
    provider: InfraProvider | None = ctx.services.get("provider")
    if provider is None or not dataclasses.is_dataclass(event):
        return event
    texts = {f.name: provider.tenant_view(value) for f in dataclasses.fields(event)
             if isinstance(value := getattr(event, f.name), str)}
    return dataclasses.replace(event, **texts)


def record(ctx: TaskContext, cluster_id: str, *events: DomainEvent) -> Doc:
    """Append to the cluster's stream after whatever the API appended meanwhile; never to a
    deleted cluster (``ClusterGone``): a late task cannot bring it back."""
    store: Store = ctx.service("store")
    events = tuple(tenant_view(ctx, event) for event in events)
    metadata = Metadata(actor="sahara-es", correlation_id=ctx.workflow_id,
                        causation_id=f"{ctx.workflow_id}/{ctx.task_id}",
                        engine_id=ctx.engine_id)
    for _ in range(20):
        aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
        if aggregate.doc is not None and aggregate.doc[META].get("deleted"):
            raise ClusterGone(f"cluster {cluster_id} was deleted")
        try:
            resources.append_records(store, aggregate, [
                registry.new_event(e, metadata) for e in events])
            assert aggregate.doc is not None
            return aggregate.doc
        except ChangedConcurrently:
            continue
    raise ConcurrencyConflict(f"cluster {cluster_id} kept changing")


def set_status(ctx: TaskContext, cluster_id: str, status: str, description: str = "") -> None:
    """Change the cluster's status, unless it is being deleted (Deleting is final: a create
    or scale rolled back by the deletion leaves it so)."""
    doc = cluster_doc(ctx.service("store"), cluster_id)
    if being_deleted(doc) and status != CLUSTER_FINAL:
        return
    if (doc.get("status"), doc.get("status_description", "")) != (status, description):
        record(ctx, cluster_id, ev.ClusterStatusChanged(status, description))


def start_step(ctx: TaskContext, cluster_id: str, name: str, total: int) -> str:
    """A provisioning step of this workflow (recorded once, however often the task runs)."""
    step_id = f"{ctx.workflow_id}-{ctx.task_id}"
    doc = cluster_doc(ctx.service("store"), cluster_id)
    if not any(s["id"] == step_id for s in doc.get("provision_progress", [])):
        record(ctx, cluster_id, ev.ProvisioningStepStarted(step_id, name, total))
    return step_id


def plugin_of(ctx: TaskContext, doc: Doc) -> Plugin:
    plugins: dict[str, Plugin] = ctx.service("plugins")
    try:
        return plugins[doc["plugin_name"]]
    except KeyError:
        raise PermanentFailure(f"this engine has no plugin {doc['plugin_name']}") from None


def instances_of(doc: Doc) -> list[tuple[str, Doc]]:
    return [(group["name"], instance) for group in doc.get("node_groups", [])
            for instance in group.get("instances", [])]


def cluster_info(ctx: TaskContext, doc: Doc) -> ClusterInfo:
    """The cluster's nodes as the plugin sees them, from the provider's records."""
    provider: InfraProvider = ctx.service("provider")
    processes = {g["name"]: list(g["node_processes"]) for g in doc.get("node_groups", [])}
    nodes: list[NodeInfo] = []
    for group, name in [(group, i["instance_name"]) for group, i in instances_of(doc)]:
        instance = provider.get_instance(name)
        if instance is None:
            raise PermanentFailure(f"instance {name} of cluster {doc['id']} is gone")
        nodes.append(NodeInfo(name=name, node_group=group, processes=processes[group],
                              address=instance.address, ssh_port=instance.ssh_port,
                              username=instance.username,
                              host_key=str(instance.extra.get("host_key", "")),
                              home=str(instance.extra.get("home", "")), host=instance.host))
    return ClusterInfo(doc["id"], doc["name"], doc["plugin_version"],
                       dict(doc.get("cluster_configs") or {}), nodes)


def planned_nodes(doc: Doc, sizes: dict[str, int] | None = None) -> list[Doc]:
    """The nodes each node group should have, named ``c<id>-<group>-<n>``: the existing ones
    first, then new names after the highest number in use."""
    nodes: list[Doc] = []
    for group in doc["node_groups"]:
        existing = sorted((i["instance_name"] for i in group.get("instances", [])),
                          key=_number)
        wanted = (sizes or {}).get(group["name"], group["count"])
        names = existing[:wanted]
        number = max([_number(n) for n in existing] + [0])
        while len(names) < wanted:
            number += 1
            names.append(f"c{doc['id'][:8]}-{group['name'].lower()}-{number}")
        for name in names:
            nodes.append({"name": name, "node_group": group["name"],
                          "processes": list(group["node_processes"]),
                          "flavor": group["flavor_id"], "new": name not in existing})
    return nodes


def _number(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def node_requests(ctx: TaskContext, doc: Doc, nodes: list[Doc]) -> list[NodeRequest]:
    provider: InfraProvider = ctx.service("provider")
    flavors = provider.flavors()
    spread = set(doc.get("anti_affinity") or [])
    requests = []
    for node in nodes:
        group = next((p for p in node["processes"] if p in spread), None)
        requests.append(NodeRequest(node["name"], flavors[node["flavor"]],
                                    f"{doc['id']}:{group}" if group else None))
    return requests


def _placement(data: Doc) -> Placement:
    return Placement(data["instance"], data["host"], list(data.get("alternates", [])),
                     data.get("vcpus", 0), data.get("ram_mb", 0))


def _placement_data(placement: Placement) -> Doc:
    return {"instance": placement.instance, "host": placement.host,
            "alternates": list(placement.alternates), "vcpus": placement.vcpus,
            "ram_mb": placement.ram_mb}


# -- tasks shared by the workflows --------------------------------------------------------

@task_type("cluster.place")
class PlaceNodes(Task):
    """Claim host capacity for the new nodes (Nova-style: the scheduler claims, keeps
    alternates); anti-affinity groups land on distinct hosts."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> list[Doc]:
        doc = cluster_doc(ctx.service("store"), self.args["cluster_id"])
        nodes = [n for n in self.args["nodes"] if n["new"]]
        scheduler: Scheduler = ctx.service("scheduler")
        spread = set(doc.get("anti_affinity") or [])
        avoid: dict[str, set[str]] = {}
        for group, instance in instances_of(doc):
            processes = next(g["node_processes"] for g in doc["node_groups"]
                             if g["name"] == group)
            for process in set(processes) & spread:
                if instance.get("host"):
                    avoid.setdefault(f"{doc['id']}:{process}", set()).add(instance["host"])
        try:
            if being_deleted(doc):
                raise PermanentFailure(f"cluster {doc['id']} is being deleted")
            placed = scheduler.place(node_requests(ctx, doc, nodes), avoid=avoid)
            # A deletion that looked before these claims existed cannot give them back.
            if being_deleted(cluster_doc(ctx.service("store"), doc["id"])):
                raise PermanentFailure(f"cluster {doc['id']} is being deleted")
        except BaseException as error:
            # A failed task is not reverted: give back whatever this attempt may hold.
            for node in nodes:
                release_everywhere(scheduler, node["name"])
            if isinstance(error, NoValidHost):
                raise PermanentFailure(f"no host for the cluster's nodes: {error}") from None
            raise
        return [_placement_data(p) for p in placed]

    def revert(self, ctx: TaskContext, result: list[Doc]) -> None:
        scheduler: Scheduler = ctx.service("scheduler")
        for placement in result:
            release_everywhere(scheduler, placement["instance"])


@task_type("cluster.spawn-instances")
class SpawnInstances(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        cluster_id = self.args["cluster_id"]
        set_status(ctx, cluster_id, "Spawning")
        placements: list[Doc] = ctx.results[sibling(ctx, self.args["placements_from"])]
        step = start_step(ctx, cluster_id, "Spawning instances", len(placements))
        nodes = {n["name"]: n for n in self.args["nodes"]}
        _, public_key = ensure_cluster_key(ctx.service("store"), cluster_id)
        flow = Flow()
        for placement in placements:
            node = nodes[placement["instance"]]
            flow.add(f"instance-{node['name']}", CreateInstance({
                "cluster_id": cluster_id, "node": node, "placement": placement,
                "public_key": public_key, "step": step}))
        return Spawn({"instances": len(placements)}, flow)


@task_type("cluster.create-instance")
class CreateInstance(Task):
    """One node: create it on its claimed host, or on an alternate when that fails; wait
    until it answers on SSH; record it in the cluster."""

    idempotent = True  # the provider creates by name: a second run finds the first's

    def execute(self, ctx: TaskContext) -> Doc:
        provider: InfraProvider = ctx.service("provider")
        scheduler: Scheduler = ctx.service("scheduler")
        node, cluster_id = self.args["node"], self.args["cluster_id"]
        placement = _placement(self.args["placement"])
        errors: list[str] = []
        store: Store = ctx.service("store")
        if being_deleted(cluster_doc(store, cluster_id)):
            raise PermanentFailure(f"cluster {cluster_id} is being deleted")
        while True:
            ctx.check_lease()
            try:
                instance = provider.create_instance(InstanceSpec(
                    name=node["name"], flavor=node["flavor"],
                    public_key=self.args["public_key"], host=placement.host,
                    metadata={"cluster": cluster_id, "node_group": node["node_group"]}))
                provider.wait_reachable(instance, REACHABLE_TIMEOUT)
                break
            except InfraError as error:
                errors.append(f"{placement.host}: {error}")
                with contextlib.suppress(InfraError):
                    provider.delete_instance(node["name"])
                try:
                    placement = scheduler.retry_on_alternate(placement)
                except NoValidHost:
                    record(ctx, cluster_id, ev.ProvisioningStepProgressed(
                        self.args["step"], node["name"], False, "; ".join(errors)[-2000:],
                        node["node_group"]))
                    raise PermanentFailure(f"instance {node['name']} could not be created:"
                                           f" {'; '.join(errors)}") from None
        if being_deleted(cluster_doc(store, cluster_id)):
            # The deletion may have looked for instances before this one existed: undo it.
            provider.delete_instance(node["name"])
            release_everywhere(scheduler, node["name"])
            raise PermanentFailure(f"cluster {cluster_id} is being deleted")
        record(ctx, cluster_id,
               ev.InstanceAdded(node["node_group"], node["name"], instance.address,
                                instance.host, list(placement.alternates), instance.ssh_port,
                                instance.username, str(instance.extra.get("host_key", "")),
                                str(instance.extra.get("home", ""))),
               ev.ProvisioningStepProgressed(self.args["step"], node["name"], True,
                                             f"on {instance.host}", node["node_group"]))
        return {"instance": node["name"], "host": instance.host,
                "address": instance.address, "placement": _placement_data(placement)}

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        delete_node(ctx, self.args["cluster_id"], self.args["node"]["node_group"],
                    result["instance"])


def sibling(ctx: TaskContext, task_id: str) -> str:
    """The id of a task spawned beside this one (spawned ids carry their parent's)."""
    parent, _, _ = ctx.task_id.rpartition(".")
    return f"{parent}.{task_id}" if parent else task_id


def release_everywhere(scheduler: Scheduler, instance: str) -> None:
    """Give back whatever the instance holds on any host (idempotent)."""
    for host in scheduler.hosts:
        scheduler.release(instance, host)


def delete_node(ctx: TaskContext, cluster_id: str, node_group: str, name: str) -> None:
    provider: InfraProvider = ctx.service("provider")
    scheduler: Scheduler = ctx.service("scheduler")
    provider.delete_instance(name)
    release_everywhere(scheduler, name)
    doc = cluster_doc(ctx.service("store"), cluster_id)
    if not doc[META].get("deleted") and any(i["instance_name"] == name
                                            for _, i in instances_of(doc)):
        with contextlib.suppress(ClusterGone):  # deleted meanwhile: nothing to record
            record(ctx, cluster_id, ev.InstanceRemoved(node_group, name))


@task_type("cluster.node-step")
class NodeStep(Task):
    """A plugin's per-node task, with its outcome recorded as the node's event in a step. A
    node that may be left out (``optional``) fails softly: the task succeeds, saying so.

    The inner task runs under its step timeout (``step_limits``), its retries included, and
    stops when the workflow is cancelled: its remote commands are killed either way, and the
    step fails with "step <title> on node <name> timed out after <n> s" (or "was stopped")."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        inner_spec = TaskSpec.from_data(self.args["inner"])
        inner = build_task(inner_spec)
        node = self.args.get("node") or {}
        cluster_id = self.args["cluster_id"]
        seconds = step_limits(ctx).timeout(inner_spec.type, inner.timeout)
        deadline = time.monotonic() + seconds
        where = (f"step {self.args.get('title') or inner_spec.type} on node"
                 f" {node.get('name', '?')}")
        attempts = max(1, inner.retry.attempts)
        error: Exception | None = None
        cut: str | None = None  # why the step was cut off, if it was
        result: Any = None
        for _ in range(attempts):
            try:
                with command_limits(timeout=deadline - time.monotonic(), stop=ctx.cancelled):
                    result = inner.execute(ctx)
                error = None
                break
            except Exception as failure:  # a node's failure is its outcome
                error = failure
                if not decide(failure).retryable:  # HostKeyMismatch, a PermanentFailure...
                    break
            finally:
                if ctx.cancelled.is_set():
                    cut = f"{where} was stopped: the cluster's work was cancelled"
                elif time.monotonic() >= deadline:
                    cut = f"{where} timed out after {seconds:g} s"
            if cut:
                break
        if cut and error is not None:
            error = PermanentFailure(cut)
        if node:
            record(ctx, cluster_id, ev.ProvisioningStepProgressed(
                self.args["step"], node["name"], error is None,
                "" if error is None else str(error)[-2000:], node["node_group"]))
        if error is None:
            return {"node": node.get("name"), "result": result}
        if self.args.get("optional") and node:
            return {"node": node["name"], "failed": str(error)[-2000:]}
        if cut:
            raise PermanentFailure(cut)
        raise PermanentFailure(f"{inner_spec.type} on {node.get('name', '?')}: {error}")


def plugin_steps(ctx: TaskContext, cluster_id: str, flow: Flow, *, prefix: str, name: str,
                 plugin: Plugin, info: ClusterInfo, all_optional: bool = False) -> Flow:
    """The plugin's flow with every task wrapped as a node step, ids prefixed."""
    step = start_step(ctx, cluster_id, name,
                      sum(1 for s in flow.specs if s.args.get("node")))
    wrapped = Flow()
    for spec in flow.specs:
        node = spec.args.get("node")
        optional = all_optional or (node is not None and plugin.can_run_without(
            info, [NodeInfo.from_dict(node)]))
        wrapped.add(f"{prefix}-{spec.id}", NodeStep({
            "cluster_id": cluster_id, "inner": spec.to_data(), "node": _node_ref(node),
            "step": step, "title": name, "optional": optional}),
            requires=[f"{prefix}-{r}" for r in spec.requires])
    return wrapped


def _node_ref(node: Doc | None) -> Doc | None:
    return None if node is None else {"name": node["name"],
                                      "node_group": node["node_group"]}


def failed_nodes(results: dict[str, Any]) -> dict[str, str]:
    return {r["node"]: r["failed"] for r in results.values()
            if isinstance(r, dict) and r.get("failed") and r.get("node")}


@task_type("cluster.plugin-phase")
class PluginPhase(Task):
    """Set the status and spawn the plugin's flow for one phase (configure, start...)."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        cluster_id, phase = self.args["cluster_id"], self.args["phase"]
        store = ctx.service("store")
        doc = cluster_doc(store, cluster_id)
        if self.args.get("status"):
            set_status(ctx, cluster_id, self.args["status"])
        plugin = plugin_of(ctx, doc)
        info = cluster_info(ctx, doc)
        failed = set(failed_nodes(ctx.results))
        if failed:
            info = ClusterInfo(info.cluster_id, info.name, info.plugin_version, info.configs,
                               [n for n in info.nodes if n.name not in failed])
        names = set(self.args.get("nodes") or [])
        chosen = [n for n in info.nodes if n.name in names]
        flow = {
            "configure": lambda: plugin.configure(info),
            "start": lambda: plugin.start(info),
            "scale": lambda: plugin.scale(info, chosen),
            "decommission": lambda: plugin.decommission(info, chosen),
            "terminate": lambda: plugin.on_terminate(info),
        }[phase]()
        wrapped = plugin_steps(ctx, cluster_id, flow, prefix=phase, name=self.args["title"],
                               plugin=plugin, info=info,
                               all_optional=phase == "terminate")
        return Spawn({"phase": phase, "tasks": len(wrapped.specs)}, wrapped)


@task_type("cluster.activate")
class Activate(Task):
    """Check the running cluster: Active GREEN; Active YELLOW with the failed nodes listed
    when the plugin can run without them; otherwise fail, and the workflow rolls back."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(ctx.service("store"), cluster_id)
        plugin = plugin_of(ctx, doc)
        info = cluster_info(ctx, doc)
        failed = failed_nodes(ctx.results)
        healthy = ClusterInfo(info.cluster_id, info.name, info.plugin_version, info.configs,
                              [n for n in info.nodes if n.name not in failed])
        with command_limits(timeout=step_limits(ctx).default, stop=ctx.cancelled):
            health = plugin.health(healthy, ctx.service("ssh").pool(cluster_id))
        lost = sorted(set(failed) | set(health.failed_nodes))
        lost_nodes = [n for n in info.nodes if n.name in lost]
        if health.status == "RED" or (lost and not plugin.can_run_without(info, lost_nodes)):
            reasons = [f"{name}: {failed.get(name, 'unhealthy')}" for name in lost]
            checks = "; ".join(f"{c.name}: {c.description}" for c in health.checks
                               if c.status != "GREEN")
            raise PermanentFailure("the cluster did not become healthy: "
                                   + "; ".join([*reasons, checks] if checks else reasons))
        status = "YELLOW" if lost else health.status
        record(ctx, cluster_id, ev.ClusterHealthChecked(
            f"{ctx.workflow_id}-health", status,
            [{"name": c.name, "status": c.status, "description": c.description}
             for c in health.checks], lost))
        description = f"partially active: {', '.join(lost)} failed" if lost else ""
        set_status(ctx, cluster_id, "Active", description)
        return {"health": status, "failed": lost}


# -- create --------------------------------------------------------------------------------

@task_type("cluster.begin-create")
class BeginCreate(Task):
    """The nodes the cluster will have; undone last, it puts the cluster in Error with the
    reason and gives its quota back."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(ctx.service("store"), cluster_id)
        set_status(ctx, cluster_id, "InfraUpdating")
        ensure_cluster_key(ctx.service("store"), cluster_id)
        return {"nodes": planned_nodes(doc)}

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        cluster_id = self.args["cluster_id"]
        store = ctx.service("store")
        doc = cluster_doc(store, cluster_id)
        ctx.service("quota").release(doc["project_id"], cluster_id)
        failure = load_workflow(store, ctx.workflow_id).failure
        reason = failure.error if failure else "cancelled"
        if doc.get("status") != "Deleting":
            set_status(ctx, cluster_id, "Error", f"creation failed and was rolled back:"
                                                 f" {reason}"[:2000])


@task_type("cluster.spawn-create")
class SpawnCreate(Task):
    """Place, create, configure, start, activate: the nodes are known only once the first
    task ran, so the rest of the graph is spawned from its result."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        cluster_id = self.args["cluster_id"]
        nodes = ctx.results["begin"]["nodes"]
        flow = Flow()
        args = {"cluster_id": cluster_id, "nodes": nodes}
        flow.add("place", PlaceNodes(args))
        flow.add("instances", SpawnInstances({**args, "placements_from": "place"}),
                 requires=["place"])
        flow.add("configure", PluginPhase({"cluster_id": cluster_id, "phase": "configure",
                                           "status": "Configuring",
                                           "title": "Configuring nodes"}),
                 requires=["instances"])
        flow.add("start", PluginPhase({"cluster_id": cluster_id, "phase": "start",
                                       "status": "Starting", "title": "Starting services"}),
                 requires=["configure"])
        flow.add("activate", Activate({"cluster_id": cluster_id}), requires=["start"])
        return Spawn({"nodes": len(nodes)}, flow)


@workflow_type(CREATE)
def create_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("begin", BeginCreate({"cluster_id": params["cluster_id"]}))
    flow.add("plan", SpawnCreate({"cluster_id": params["cluster_id"]}), requires=["begin"])
    return flow


# -- scale ---------------------------------------------------------------------------------

@task_type("cluster.begin-scale")
class BeginScale(Task):
    """Which nodes come and go; undone last, it puts the sizes back and the cluster Active."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(ctx.service("store"), cluster_id)
        request = self._request(ctx.service("store"))
        current = {n["name"]: n for n in planned_nodes(
            {**doc, "node_groups": [{**g, "count": len(g.get("instances", []))}
                                    for g in doc["node_groups"]]})}
        removed: list[Doc] = []
        named = {name for names in request.instances.values() for name in names}
        for group in doc["node_groups"]:
            members = [n for n in current.values() if n["node_group"] == group["name"]]
            surplus = len(members) - group["count"]
            if surplus > 0:
                chosen = [n for n in members if n["name"] in named][:surplus]
                rest = [n for n in sorted(members, key=lambda n: -_number(n["name"]))
                        if n not in chosen]
                removed += chosen + rest[:surplus - len(chosen)]
        added = [n for n in planned_nodes(doc) if n["new"]]
        return {"added": added, "removed": removed, "previous": request.previous,
                "added_groups": [g["name"] for g in request.add_node_groups],
                "quota_holder": request.quota_holder}

    def _request(self, store: Store) -> ev.ClusterScaleRequested:
        stream = Kind.CLUSTER.stream(self.args["cluster_id"])
        version = self.args["version"]
        for event in store.read(stream, version, to_version=version):
            fact = registry.decode(event)
            if isinstance(fact, ev.ClusterScaleRequested):
                return fact
        raise PermanentFailure(f"{stream} v{version} is not a scale request")

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(ctx.service("store"), cluster_id)
        if result["quota_holder"]:
            ctx.service("quota").release(doc["project_id"], result["quota_holder"])
        record(ctx, cluster_id, ev.ClusterScaleReverted(result["previous"],
                                                        result["added_groups"]))
        failure = load_workflow(ctx.service("store"), ctx.workflow_id).failure
        set_status(ctx, cluster_id, "Active",
                   f"scaling failed and was undone: {failure.error if failure else ''}"[:2000])


@task_type("cluster.spawn-scale")
class SpawnScale(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        cluster_id = self.args["cluster_id"]
        plan = ctx.results["begin"]
        flow = Flow()
        last: list[str] = []
        if plan["added"]:
            args = {"cluster_id": cluster_id, "nodes": plan["added"]}
            flow.add("place", PlaceNodes(args))
            flow.add("instances", SpawnInstances({**args, "placements_from": "place"}),
                     requires=["place"])
            flow.add("grow", PluginPhase({
                "cluster_id": cluster_id, "phase": "scale", "title": "Adding nodes",
                "nodes": [n["name"] for n in plan["added"]]}), requires=["instances"])
            last = ["grow"]
        if plan["removed"]:
            flow.add("drain", PluginPhase({
                "cluster_id": cluster_id, "phase": "decommission", "status": "Decommissioning",
                "title": "Decommissioning nodes",
                "nodes": [n["name"] for n in plan["removed"]]}), requires=last)
            flow.add("shrink", RemoveNodes({"cluster_id": cluster_id,
                                            "nodes": plan["removed"]}), requires=["drain"])
            last = ["shrink"]
        flow.add("activate", Activate({"cluster_id": cluster_id}), requires=last)
        return Spawn({"added": len(plan["added"]), "removed": len(plan["removed"])}, flow)


@task_type("cluster.remove-nodes")
class RemoveNodes(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        for node in self.args["nodes"]:
            ctx.check_lease()
            delete_node(ctx, self.args["cluster_id"], node["node_group"], node["name"])
        return {"removed": [n["name"] for n in self.args["nodes"]]}


@workflow_type(SCALE)
def scale_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    args = {"cluster_id": params["cluster_id"], "version": params["version"]}
    flow.add("begin", BeginScale(args))
    flow.add("plan", SpawnScale({"cluster_id": params["cluster_id"]}), requires=["begin"])
    return flow


# -- rebuild -------------------------------------------------------------------------------

@task_type("cluster.begin-rebuild")
class BeginRebuild(Task):
    """The failed nodes to replace, and their replacements; undone last, it leaves the
    cluster Active (still partially) with the reason."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        doc = cluster_doc(ctx.service("store"), self.args["cluster_id"])
        failed = set(self.args["nodes"])
        removed = [{"name": i["instance_name"], "node_group": group}
                   for group, i in instances_of(doc) if i["instance_name"] in failed]
        kept = {**doc, "node_groups": [
            {**g, "instances": [i for i in g.get("instances", [])
                                if i["instance_name"] not in failed]}
            for g in doc["node_groups"]]}
        return {"removed": removed, "added": [n for n in planned_nodes(kept) if n["new"]]}

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        failure = load_workflow(ctx.service("store"), ctx.workflow_id).failure
        set_status(ctx, self.args["cluster_id"], "Active",
                   f"rebuilding failed nodes failed: {failure.error if failure else ''}"[:2000])


@task_type("cluster.spawn-rebuild")
class SpawnRebuild(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        cluster_id = self.args["cluster_id"]
        plan = ctx.results["begin"]
        flow = Flow()
        flow.add("remove", RemoveNodes({"cluster_id": cluster_id, "nodes": plan["removed"]}))
        args = {"cluster_id": cluster_id, "nodes": plan["added"]}
        flow.add("place", PlaceNodes(args), requires=["remove"])
        flow.add("instances", SpawnInstances({**args, "placements_from": "place"}),
                 requires=["place"])
        flow.add("grow", PluginPhase({
            "cluster_id": cluster_id, "phase": "scale", "title": "Rebuilding nodes",
            "nodes": [n["name"] for n in plan["added"]]}), requires=["instances"])
        flow.add("activate", Activate({"cluster_id": cluster_id}), requires=["grow"])
        return Spawn({"rebuilt": len(plan["added"])}, flow)


@workflow_type(REBUILD)
def rebuild_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("begin", BeginRebuild({"cluster_id": params["cluster_id"],
                                    "nodes": params.get("nodes") or []}))
    flow.add("plan", SpawnRebuild({"cluster_id": params["cluster_id"]}), requires=["begin"])
    return flow


# -- delete --------------------------------------------------------------------------------

@task_type("cluster.stop-provisioning")
class StopProvisioning(Task):
    """A cluster deleted while it is being created or scaled: cancel that first (its running
    node steps stop, their remote commands killed) and let it roll back, for at most
    ``cancel_grace``; then the deletion goes on whatever is left running, and deleting the
    instances ends it (the late tasks of a cancelled workflow see the deletion and undo
    their own work; see ``being_deleted``)."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        store: Store = ctx.service("store")
        cluster_id = self.args["cluster_id"]
        cancelled = []
        for workflow_id in provisioning_workflows(store, cluster_id):
            state = load_workflow(store, workflow_id)
            if state.version and not state.status.finished:
                request_cancel(store, workflow_id, "the cluster is being deleted")
                cancelled.append(workflow_id)
        deadline = time.monotonic() + step_limits(ctx).cancel_grace
        stopped, left = [], []
        for workflow_id in cancelled:
            try:
                wait_for(store, workflow_id, timeout=max(0.0, deadline - time.monotonic()))
                stopped.append(workflow_id)
            except TimeoutError:
                log.warning("%s did not stop within the grace: deleting %s anyway",
                            workflow_id, cluster_id)
                left.append(workflow_id)
        return {"stopped": stopped, "left_running": left}


def provisioning_workflows(store: Store, cluster_id: str) -> list[str]:
    ids = [f"create-{cluster_id}"]
    for event in store.read(Kind.CLUSTER.stream(cluster_id)):
        if event.type == ev.ClusterScaleRequested.event_type:
            ids.append(f"scale{event.version}-{cluster_id}")
        elif event.type == ev.ClusterRebuildRequested.event_type:
            ids.append(f"rebuild{event.version}-{cluster_id}")
    return ids


@task_type("cluster.terminate")
class Terminate(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn | Doc:
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(ctx.service("store"), cluster_id)
        provider: InfraProvider = ctx.service("provider")
        if not instances_of(doc) or any(provider.get_instance(i["instance_name"]) is None
                                         for _, i in instances_of(doc)):
            return {"skipped": "no complete set of instances to stop services on"}
        return PluginPhase({"cluster_id": cluster_id, "phase": "terminate",
                            "title": "Stopping services"}).execute(ctx)


@task_type("cluster.finish-delete")
class FinishDelete(Task):
    """Delete every instance, give back the hosts and the quota, and end the cluster."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        store: Store = ctx.service("store")
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(store, cluster_id)
        names = [i["instance_name"] for _, i in instances_of(doc)]
        names += [n["name"] for n in planned_nodes(doc)]  # half-made, never recorded
        provider: InfraProvider = ctx.service("provider")
        scheduler: Scheduler = ctx.service("scheduler")
        for name in dict.fromkeys(names):
            ctx.check_lease()
            provider.delete_instance(name)
            release_everywhere(scheduler, name)
        for holder in [cluster_id, *doc[ev.META].get("quota_holders", [])]:
            ctx.service("quota").release(doc["project_id"], holder)
        ctx.service("ssh").forget(cluster_id)
        shred_cluster_secrets(store, cluster_id)  # its private key: unreadable from now on
        aggregate = resources.load(store, Kind.CLUSTER, cluster_id)
        if aggregate.exists:
            resources.finish_delete(store, aggregate, SYSTEM)
        return {"deleted": names}


@workflow_type(DELETE, reclaims=True)
def delete_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow(rollback_on_cancel=False)
    args = {"cluster_id": params["cluster_id"]}
    flow.add("stop", StopProvisioning(args))
    flow.add("terminate", Terminate(args), requires=["stop"])
    flow.add("finish", FinishDelete(args), requires=["terminate"])
    return flow


# -- verify --------------------------------------------------------------------------------

@task_type("cluster.check-health")
class CheckHealth(Task):
    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        doc = cluster_doc(ctx.service("store"), cluster_id)
        plugin = plugin_of(ctx, doc)
        with command_limits(timeout=step_limits(ctx).default, stop=ctx.cancelled):
            health = plugin.health(cluster_info(ctx, doc),
                                   ctx.service("ssh").pool(cluster_id))
        record(ctx, cluster_id, ev.ClusterHealthChecked(
            self.args["verification_id"], health.status,
            [{"name": c.name, "status": c.status, "description": c.description}
             for c in health.checks], list(health.failed_nodes)))
        return health.to_dict()


@workflow_type(VERIFY)
def verify_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("check", CheckHealth(dict(params)))
    return flow


# -- starting them -------------------------------------------------------------------------

def start_once(store: Store, workflow: str, params: dict[str, Any], workflow_id: str, *,
               project: str | None = None) -> str:
    """Start the workflow for ``project`` (engines share their slots between projects)
    unless it was started already (a repeated request)."""
    with contextlib.suppress(ConcurrencyConflict):
        start_workflow(store, workflow, params, workflow_id=workflow_id,
                       metadata=Metadata(actor="sahara-es", project_id=project,
                                         correlation_id=workflow_id))
    return workflow_id
