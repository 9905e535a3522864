"""Provisioning steps: the plugin's flows spawned as node steps, each outcome recorded as
the node's event in its step, under the step's timeout; the plugin's phases, and the
health check that makes a cluster Active."""

from __future__ import annotations

import time
from typing import Any

from sahara_es.engine import Flow, PermanentFailure, Spawn, Task, TaskContext, task_type
from sahara_es.engine.attempts import decide
from sahara_es.engine.flow import TaskSpec, build_task
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc
from sahara_es.infra.ssh import command_limits
from sahara_es.plugins.base import ClusterInfo, NodeInfo, Plugin
from sahara_es.provisioning.cluster import Cluster, cluster_info, plugin_of, step_limits
from sahara_es.provisioning.services import services


def start_step(cluster: Cluster, name: str, total: int, *, step_type: str = "Engine") -> str:
    """A provisioning step of this workflow (recorded once, however often the task runs);
    ``step_type`` says, as Sahara's did, whose step it is and in what (``Engine: create
    cluster``, ``Plugin: configure cluster``...)."""
    step_id = f"{cluster.ctx.workflow_id}-{cluster.ctx.task_id}"
    cluster.record(ev.ProvisioningStepStarted(step_id, name, total, step_type),
                   unless=lambda doc: any(
                       s["id"] == step_id for s in doc.get("provision_progress", [])))
    return step_id


def engine_step_type(doc: Doc) -> str:
    """The type of the engine's step that adds nodes to the cluster: it scales a cluster
    that has some (a create's retry records no step again)."""
    has_nodes = any(g.get("instances") for g in doc.get("node_groups", []))
    return "Engine: scale cluster" if has_nodes else "Engine: create cluster"


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
            Cluster(ctx, cluster_id).record(ev.ProvisioningStepProgressed(
                self.args["step"], node["name"], error is None,
                "" if error is None else str(error)[-2000:], node["node_group"]))
        if error is None:
            return {"node": node.get("name"), "result": result}
        if self.args.get("optional") and node:
            return {"node": node["name"], "failed": str(error)[-2000:]}
        if cut:
            raise PermanentFailure(cut)
        raise PermanentFailure(f"{inner_spec.type} on {node.get('name', '?')}: {error}")


def plugin_steps(cluster: Cluster, flow: Flow, *, prefix: str, name: str, plugin: Plugin,
                 info: ClusterInfo, all_optional: bool = False) -> Flow:
    """The plugin's flow with every task wrapped as a node step, ids prefixed."""
    step = start_step(cluster, name, sum(1 for s in flow.specs if s.args.get("node")),
                      step_type=f"Plugin: {prefix} cluster")
    wrapped = Flow()
    for spec in flow.specs:
        node = spec.args.get("node")
        optional = all_optional or (node is not None and plugin.can_run_without(
            info, [NodeInfo.from_dict(node)]))
        wrapped.add(f"{prefix}-{spec.id}", NodeStep({
            "cluster_id": cluster.id, "inner": spec.to_data(), "node": _node_ref(node),
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
        return self.spawn(ctx, Cluster(ctx, self.args["cluster_id"]))

    def spawn(self, ctx: TaskContext, cluster: Cluster) -> Spawn:
        """The phase's flow, for ``cluster`` as the running task holds it."""
        phase = self.args["phase"]
        doc = cluster.doc
        if self.args.get("status"):
            cluster.set_status(self.args["status"])
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
        wrapped = plugin_steps(cluster, flow, prefix=phase, name=self.args["title"],
                               plugin=plugin, info=info, all_optional=phase == "terminate")
        return Spawn({"phase": phase, "tasks": len(wrapped.specs)}, wrapped)


@task_type("cluster.activate")
class Activate(Task):
    """Check the running cluster: Active GREEN; Active YELLOW with the failed nodes listed
    when the plugin can run without them; otherwise fail, and the workflow rolls back."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster_id = self.args["cluster_id"]
        cluster = Cluster(ctx, cluster_id)
        doc = cluster.doc
        plugin = plugin_of(ctx, doc)
        info = cluster_info(ctx, doc)
        failed = failed_nodes(ctx.results)
        healthy = ClusterInfo(info.cluster_id, info.name, info.plugin_version, info.configs,
                              [n for n in info.nodes if n.name not in failed])
        with command_limits(timeout=step_limits(ctx).default, stop=ctx.cancelled):
            health = plugin.health(healthy, services(ctx).ssh.pool(cluster_id))
        lost = sorted(set(failed) | set(health.failed_nodes))
        lost_nodes = [n for n in info.nodes if n.name in lost]
        if health.status == "RED" or (lost and not plugin.can_run_without(info, lost_nodes)):
            reasons = [f"{name}: {failed.get(name, 'unhealthy')}" for name in lost]
            checks = "; ".join(f"{c.name}: {c.description}" for c in health.checks
                               if c.status != "GREEN")
            raise PermanentFailure("the cluster did not become healthy: "
                                   + "; ".join([*reasons, checks] if checks else reasons))
        status = "YELLOW" if lost else health.status
        urls = plugin.cluster_urls(info)  # Sahara's cluster ``info``: its UIs, its masters
        new_info = [ev.ResourceUpdated({"info": urls})] if urls != doc.get("info") else []
        cluster.record(*new_info, ev.ClusterHealthChecked(
            f"{ctx.workflow_id}-health", status,
            [{"name": c.name, "status": c.status, "description": c.description}
             for c in health.checks], lost))
        description = f"partially active: {', '.join(lost)} failed" if lost else ""
        cluster.set_status("Active", description)
        return {"health": status, "failed": lost}
