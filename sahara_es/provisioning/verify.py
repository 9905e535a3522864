"""The verify workflow (``cluster.verify``): the plugin's health check, recorded."""

from __future__ import annotations

from typing import Any

from sahara_es.engine import Flow, RetryPolicy, Task, TaskContext, task_type, workflow_type
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc
from sahara_es.infra.ssh import command_limits
from sahara_es.provisioning.cluster import Cluster, cluster_info, plugin_of, step_limits
from sahara_es.provisioning.services import services

VERIFY = "cluster.verify"


@task_type("cluster.check-health")
class CheckHealth(Task):
    idempotent = True
    retry = RetryPolicy(attempts=2, backoff=1.0)

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        doc = cluster.doc
        plugin = plugin_of(ctx, doc)
        with command_limits(timeout=step_limits(ctx).default, stop=ctx.cancelled):
            health = plugin.health(cluster_info(ctx, doc),
                                   services(ctx).ssh.pool(cluster_id))
        cluster.record(ev.ClusterHealthChecked(
            self.args["verification_id"], health.status,
            [{"name": c.name, "status": c.status, "description": c.description}
             for c in health.checks], list(health.failed_nodes)))
        return health.to_dict()


@workflow_type(VERIFY)
def verify_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("check", CheckHealth(dict(params)))
    return flow
