"""The tasks shared by the workflows that add and remove nodes: place them (host claims,
alternates), create each instance and wait until it answers on SSH, delete them."""

from __future__ import annotations

import contextlib

from sahara_es.engine import Flow, PermanentFailure, Spawn, Task, TaskContext, task_type
from sahara_es.events import resources as ev
from sahara_es.events.resources import META, Doc
from sahara_es.infra.base import InfraError, InstanceSpec
from sahara_es.infra.placement import NoValidHost, Placement, Scheduler
from sahara_es.provisioning.cluster import Cluster, ClusterGone, being_deleted, instances_of
from sahara_es.provisioning.keypair import node_public_keys
from sahara_es.provisioning.nodes import node_requests
from sahara_es.provisioning.services import services
from sahara_es.provisioning.steps import engine_step_type, start_step

REACHABLE_TIMEOUT = 60.0


def _placement(data: Doc) -> Placement:
    return Placement(data["instance"], data["host"], list(data.get("alternates", [])),
                     data.get("vcpus", 0), data.get("ram_mb", 0))


def _placement_data(placement: Placement) -> Doc:
    return {"instance": placement.instance, "host": placement.host,
            "alternates": list(placement.alternates), "vcpus": placement.vcpus,
            "ram_mb": placement.ram_mb}


@task_type("cluster.place")
class PlaceNodes(Task):
    """Claim host capacity for the new nodes (Nova-style: the scheduler claims, keeps
    alternates); anti-affinity groups land on distinct hosts."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> list[Doc]:
        cluster = Cluster(ctx, self.args["cluster_id"])
        doc = cluster.doc
        nodes = [n for n in self.args["nodes"] if n["new"]]
        scheduler = services(ctx).scheduler
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
            if being_deleted(cluster.refresh()):
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
        scheduler = services(ctx).scheduler
        for placement in result:
            release_everywhere(scheduler, placement["instance"])


@task_type("cluster.spawn-instances")
class SpawnInstances(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        step_type = engine_step_type(cluster.doc)
        cluster.set_status("Spawning")
        placements: list[Doc] = ctx.results[sibling(ctx, self.args["placements_from"])]
        step = start_step(cluster, "Spawning instances", len(placements), step_type=step_type)
        nodes = {n["name"]: n for n in self.args["nodes"]}
        public_key = node_public_keys(cluster.store, cluster_id, cluster.doc)
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
        provider = services(ctx).provider
        scheduler = services(ctx).scheduler
        node, cluster_id = self.args["node"], self.args["cluster_id"]
        placement = _placement(self.args["placement"])
        errors: list[str] = []
        cluster = Cluster(ctx, cluster_id)
        if being_deleted(cluster.doc):
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
                    cluster.record(ev.ProvisioningStepProgressed(
                        self.args["step"], node["name"], False, "; ".join(errors)[-2000:],
                        node["node_group"]))
                    raise PermanentFailure(f"instance {node['name']} could not be created:"
                                           f" {'; '.join(errors)}") from None
        if being_deleted(cluster.refresh()):
            # The deletion may have looked for instances before this one existed: undo it.
            provider.delete_instance(node["name"])
            release_everywhere(scheduler, node["name"])
            raise PermanentFailure(f"cluster {cluster_id} is being deleted")
        cluster.record(
            ev.InstanceAdded(node["node_group"], node["name"], instance.address,
                             instance.host, list(placement.alternates), instance.ssh_port,
                             instance.username, str(instance.extra.get("host_key", "")),
                             str(instance.extra.get("home", ""))),
            ev.ProvisioningStepProgressed(self.args["step"], node["name"], True,
                                          f"on {instance.host}", node["node_group"]))
        return {"instance": node["name"], "host": instance.host,
                "address": instance.address, "placement": _placement_data(placement)}

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        delete_node(Cluster(ctx, self.args["cluster_id"]), self.args["node"]["node_group"],
                    result["instance"])


def sibling(ctx: TaskContext, task_id: str) -> str:
    """The id of a task spawned beside this one (spawned ids carry their parent's)."""
    parent, _, _ = ctx.task_id.rpartition(".")
    return f"{parent}.{task_id}" if parent else task_id


def release_everywhere(scheduler: Scheduler, instance: str) -> None:
    """Give back whatever the instance holds on any host (idempotent)."""
    for host in scheduler.hosts:
        scheduler.release(instance, host)


def delete_node(cluster: Cluster, node_group: str, name: str) -> None:
    """Delete the node's instance, give back its host claims, and record its removal unless
    the cluster no longer lists it or was deleted meanwhile."""
    provider = services(cluster.ctx).provider
    scheduler = services(cluster.ctx).scheduler
    provider.delete_instance(name)
    release_everywhere(scheduler, name)

    def not_listed(doc: Doc) -> bool:
        return bool(doc[META].get("deleted")) or not any(
            i["instance_name"] == name for _, i in instances_of(doc))

    with contextlib.suppress(ClusterGone):  # deleted meanwhile: nothing to record
        cluster.record(ev.InstanceRemoved(node_group, name), unless=not_listed)


@task_type("cluster.remove-nodes")
class RemoveNodes(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster = Cluster(ctx, self.args["cluster_id"])
        for node in self.args["nodes"]:
            ctx.check_lease()
            delete_node(cluster, node["node_group"], node["name"])
        return {"removed": [n["name"] for n in self.args["nodes"]]}
