"""The delete workflows. ``cluster.delete``: what provisions the cluster cancelled (for at
most ``cancel_grace``), its services stopped, every instance deleted, claims, quota and
name given back. ``cluster.force-delete`` (Sahara's force delete): what provisions or
deletes the cluster cancelled without waiting for it, no service stopped, every instance
deleted and everything given back all the same. Deleting is final."""

from __future__ import annotations

import logging
import time
from typing import Any

from sahara_es.commands import resources
from sahara_es.commands.caller import SYSTEM
from sahara_es.engine import (
    Flow,
    RetryPolicy,
    Spawn,
    Task,
    TaskContext,
    load_workflow,
    request_cancel,
    task_type,
    wait_for,
    workflow_type,
)
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc, Kind
from sahara_es.provisioning import ids
from sahara_es.provisioning.cluster import Cluster, instances_of, step_limits
from sahara_es.provisioning.instances import release_everywhere
from sahara_es.provisioning.keypair import update_keypair_id
from sahara_es.provisioning.nodes import planned_nodes
from sahara_es.provisioning.services import engine_store, services, shred_cluster_secrets
from sahara_es.provisioning.steps import PluginPhase
from sahara_es.store import Store

log = logging.getLogger(__name__)

DELETE = "cluster.delete"
FORCE_DELETE = "cluster.force-delete"


def force_delete_id(cluster_id: str) -> str:
    """The cluster's force delete workflow (one: forcing it again changes nothing)."""
    return f"forcedelete-{cluster_id}"


@task_type("cluster.stop-provisioning")
class StopProvisioning(Task):
    """A cluster deleted while it is being created or scaled: cancel that first (its running
    node steps stop, their remote commands killed) and let it roll back, for at most
    ``cancel_grace``; then the deletion goes on whatever is left running, and deleting the
    instances ends it (the late tasks of a cancelled workflow see the deletion and undo
    their own work; see ``being_deleted``)."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        store = engine_store(ctx)
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
    workflows = [ids.create_id(cluster_id)]
    for event in store.read(Kind.CLUSTER.stream(cluster_id)):
        if event.type == ev.ClusterScaleRequested.event_type:
            workflows.append(ids.scale_id(event.version, cluster_id))
        elif event.type == ev.ClusterRebuildRequested.event_type:
            workflows.append(ids.rebuild_id(event.version, cluster_id))
        elif event.type == ev.ClusterKeypairUpdateRequested.event_type:
            workflows.append(update_keypair_id(event.version, cluster_id))
    return workflows


@task_type("cluster.terminate")
class Terminate(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn | Doc:
        cluster = Cluster(ctx, self.args["cluster_id"])
        doc = cluster.doc
        provider = services(ctx).provider
        if not instances_of(doc) or any(provider.get_instance(i["instance_name"]) is None
                                         for _, i in instances_of(doc)):
            return {"skipped": "no complete set of instances to stop services on"}
        return PluginPhase({"cluster_id": cluster.id, "phase": "terminate",
                            "title": "Stopping services"}).spawn(ctx, cluster)


@task_type("cluster.finish-delete")
class FinishDelete(Task):
    """Delete every instance, give back the hosts and the quota, and end the cluster."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        store = cluster.store
        doc = cluster.doc
        names = [i["instance_name"] for _, i in instances_of(doc)]
        names += [n["name"] for n in planned_nodes(doc)]  # half-made, never recorded
        provider = services(ctx).provider
        scheduler = services(ctx).scheduler
        for name in dict.fromkeys(names):
            ctx.check_lease()
            provider.delete_instance(name)
            release_everywhere(scheduler, name)
        for holder in [cluster_id, *doc[ev.META].get("quota_holders", [])]:
            services(ctx).quota.release(doc["project_id"], holder)
        services(ctx).ssh.forget(cluster_id)
        shred_cluster_secrets(store, cluster_id)  # its private key: unreadable from now on
        aggregate = cluster.reload()  # as it is now, after all this
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


@task_type("cluster.supersede")
class Supersede(Task):
    """A force delete: cancel whatever provisions the cluster, and its deletion if one is
    under way (stuck, say, stopping services on nodes that no longer answer), without
    waiting for any of them. Their late tasks see the cluster being deleted and undo their
    own work (``being_deleted``); deleting the instances ends whatever still runs there."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        store = engine_store(ctx)
        cluster_id = self.args["cluster_id"]
        cancelled = []
        for workflow_id in [*provisioning_workflows(store, cluster_id),
                            ids.delete_id(cluster_id)]:
            state = load_workflow(store, workflow_id)
            if state.version and not state.status.finished:
                request_cancel(store, workflow_id, "the cluster is being deleted by force")
                cancelled.append(workflow_id)
        return {"cancelled": cancelled}


@task_type("cluster.force-finish-delete")
class ForceFinishDelete(FinishDelete):
    """``FinishDelete``, tried again when the deletion it superseded appends meanwhile."""

    retry = RetryPolicy(attempts=5, backoff=0.5)


@workflow_type(FORCE_DELETE, reclaims=True)
def force_delete_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow(rollback_on_cancel=False)
    args = {"cluster_id": params["cluster_id"]}
    flow.add("supersede", Supersede(args))
    flow.add("finish", ForceFinishDelete(args), requires=["supersede"])
    return flow
