"""The scale workflow (``cluster.scale``): nodes added and removed; a failed scale returns
the cluster to its previous size, Active."""

from __future__ import annotations

from typing import Any

from sahara_es.engine import (
    Flow,
    PermanentFailure,
    Spawn,
    Task,
    TaskContext,
    load_workflow,
    task_type,
    workflow_type,
)
from sahara_es.events import registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc, Kind
from sahara_es.provisioning.cluster import Cluster
from sahara_es.provisioning.instances import PlaceNodes, RemoveNodes, SpawnInstances
from sahara_es.provisioning.nodes import node_number, planned_nodes
from sahara_es.provisioning.services import services
from sahara_es.provisioning.steps import Activate, PluginPhase
from sahara_es.store import Store

SCALE = "cluster.scale"


@task_type("cluster.begin-scale")
class BeginScale(Task):
    """Which nodes come and go; undone last, it puts the sizes back and the cluster Active."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        doc = cluster.doc
        request = self._request(cluster.store)
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
                rest = [n for n in sorted(members, key=lambda n: -node_number(n["name"]))
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
        cluster = Cluster(ctx, self.args["cluster_id"])
        doc = cluster.doc
        if result["quota_holder"]:
            services(ctx).quota.release(doc["project_id"], result["quota_holder"])
        cluster.record(ev.ClusterScaleReverted(result["previous"], result["added_groups"]))
        failure = load_workflow(cluster.store, ctx.workflow_id).failure
        cluster.set_status(
            "Active", f"scaling failed and was undone: {failure.error if failure else ''}"[:2000])


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


@workflow_type(SCALE)
def scale_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    args = {"cluster_id": params["cluster_id"], "version": params["version"]}
    flow.add("begin", BeginScale(args))
    flow.add("plan", SpawnScale({"cluster_id": params["cluster_id"]}), requires=["begin"])
    return flow
