"""The rebuild workflow (``cluster.rebuild``): a partially active cluster's failed nodes
replaced."""

from __future__ import annotations

from typing import Any

from sahara_es.engine import Flow, Spawn, Task, TaskContext, load_workflow, task_type, workflow_type
from sahara_es.events.resources import Doc
from sahara_es.provisioning.cluster import Cluster, instances_of
from sahara_es.provisioning.instances import PlaceNodes, RemoveNodes, SpawnInstances
from sahara_es.provisioning.nodes import planned_nodes
from sahara_es.provisioning.steps import Activate, PluginPhase

REBUILD = "cluster.rebuild"


@task_type("cluster.begin-rebuild")
class BeginRebuild(Task):
    """The failed nodes to replace, and their replacements; undone last, it leaves the
    cluster Active (still partially) with the reason."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        doc = Cluster(ctx, self.args["cluster_id"]).doc
        failed = set(self.args["nodes"])
        removed = [{"name": i["instance_name"], "node_group": group}
                   for group, i in instances_of(doc) if i["instance_name"] in failed]
        kept = {**doc, "node_groups": [
            {**g, "instances": [i for i in g.get("instances", [])
                                if i["instance_name"] not in failed]}
            for g in doc["node_groups"]]}
        return {"removed": removed, "added": [n for n in planned_nodes(kept) if n["new"]]}

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        cluster = Cluster(ctx, self.args["cluster_id"])
        failure = load_workflow(cluster.store, ctx.workflow_id).failure
        cluster.set_status("Active", f"rebuilding failed nodes failed:"
                                     f" {failure.error if failure else ''}"[:2000])


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
