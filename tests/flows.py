"""Running a plugin's flow without an engine, for tests of the plugin alone (real nodes, real
services): each task in dependency order, in this thread, with a context naming the services.
The engine's own behaviour (concurrency, retries, takeover) is tested with the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sahara_es.engine import Flow, Spawn
from sahara_es.engine.flow import TaskContext, build_task
from sahara_es.infra.ssh import SSHPool
from sahara_es.plugins.base import SERVICES


class FixedAccess:
    """The ``ssh`` service for one pool, whatever the cluster."""

    def __init__(self, pool: SSHPool) -> None:
        self._pool = pool

    def pool(self, cluster_id: str) -> SSHPool:
        return self._pool


@dataclass(frozen=True)
class NodeServices:
    """What a plugin's tasks use (``plugins.base.PluginServices``): SSH to the nodes."""

    ssh: FixedAccess


def plugin_services(pool: SSHPool) -> dict[str, Any]:
    """The services a plugin's tasks find on their context: ``pool`` for every cluster."""
    return {SERVICES: NodeServices(FixedAccess(pool))}


def run_flow(flow: Flow, services: dict[str, Any], params: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    """Run every task of ``flow`` (and what they spawn) once; the results by task id."""
    results: dict[str, Any] = {}
    pending = list(flow.specs)
    while pending:
        ready = [s for s in pending if all(r in results for r in s.requires)]
        assert ready, f"a cycle or a missing task among {[s.id for s in pending]}"
        for spec in ready:
            pending.remove(spec)
            context = TaskContext(workflow_id="test", task_id=spec.id, attempt=1,
                                  engine_id="test", params=params or {}, results=results,
                                  lease_valid=lambda: True, services=services)
            result = build_task(spec).execute(context)
            if isinstance(result, Spawn):
                pending.extend(result.flow.specs)
                result = result.result
            results[spec.id] = result
    return results
