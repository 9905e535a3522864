"""The create workflow (``cluster.create``): place, create, configure, start, activate; a
failure rolls back from what the events recorded."""

from __future__ import annotations

from typing import Any

from sahara_es.engine import Flow, Spawn, Task, TaskContext, load_workflow, task_type, workflow_type
from sahara_es.events.resources import Doc
from sahara_es.provisioning.cluster import Cluster
from sahara_es.provisioning.instances import PlaceNodes, SpawnInstances
from sahara_es.provisioning.nodes import planned_nodes
from sahara_es.provisioning.services import ensure_cluster_key, services
from sahara_es.provisioning.steps import Activate, PluginPhase

CREATE = "cluster.create"


@task_type("cluster.begin-create")
class BeginCreate(Task):
    """The nodes the cluster will have; undone last, it puts the cluster in Error with the
    reason and gives its quota back."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        doc = cluster.doc
        cluster.set_status("InfraUpdating")
        ensure_cluster_key(cluster.store, cluster_id)
        return {"nodes": planned_nodes(doc)}

    def revert(self, ctx: TaskContext, result: Doc) -> None:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        doc = cluster.doc
        services(ctx).quota.release(doc["project_id"], cluster_id)
        failure = load_workflow(cluster.store, ctx.workflow_id).failure
        reason = failure.error if failure else "cancelled"
        if doc.get("status") != "Deleting":
            cluster.set_status("Error", f"creation failed and was rolled back:"
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
