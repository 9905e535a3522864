"""A plugin whose node processes do next to nothing: each node step is one short command over
SSH. For measuring the orchestration alone ("excluding boot") and for testing the cluster
workflows; what Sahara's own ``fake`` plugin was for, and compatible with it: name ``fake``,
version ``0.1``, Hadoop 1's processes (``namenode`` and ``datanode`` as HDFS, ``jobtracker``
and ``tasktracker`` as MapReduce), so Sahara's API test suites' templates work unchanged.
A cluster has exactly one namenode and at most one jobtracker (its masters, never scaled).

Cluster configs make it fail on purpose (``{"Fake": {"fail_configure": "<node name, its
<group>-<n> end, or a process>", "fail_start": "…"}}``), so tests can see a rollback and a
partially active cluster; ``configure_seconds`` makes each node's configuration (or only the
nodes ``slow_configure`` names, the same way) take that long: one remote ``sleep``, which the
service's step timeout cuts off however long the tenant asked for.
"""

from __future__ import annotations

from typing import Any

from sahara_es.edp.base import JobEngine
from sahara_es.edp.shell import ShellJobEngine
from sahara_es.edp.storage import StoragePolicy
from sahara_es.engine import Flow, PermanentFailure, Task, TaskContext, task_type
from sahara_es.infra.ssh import SSHPool
from sahara_es.plugins.base import (
    ClusterInfo,
    Health,
    HealthCheck,
    NodeInfo,
    Plugin,
    Topology,
    plugin_services,
)

MARK = "fake-service"

MASTERS = ("namenode", "jobtracker")
"""One of each at most (a namenode always): the cluster is down without them."""


def _named(cluster: dict[str, Any], config: str, node: dict[str, Any]) -> bool:
    wanted = str(cluster.get("configs", {}).get("Fake", {}).get(config, ""))
    return bool(wanted) and (node["name"] == wanted or node["name"].endswith(f"-{wanted}")
                             or wanted in node["processes"])


def _fails(cluster: dict[str, Any], step: str, node: dict[str, Any]) -> bool:
    return _named(cluster, f"fail_{step}", node)


@task_type("fake.configure-node")
class ConfigureNode(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> str:
        cluster, node = self.args["cluster"], self.args["node"]
        if _fails(cluster, "configure", node):
            raise PermanentFailure(f"configuring {node['name']} failed (as configured)")
        pool: SSHPool = plugin_services(ctx).ssh.pool(cluster["cluster_id"])
        target = NodeInfo.from_dict(node).ssh_node()
        pool.put_file(target, "fake.conf", f"processes={','.join(node['processes'])}\n")
        fake = cluster.get("configs", {}).get("Fake", {})
        seconds = float(fake.get("configure_seconds", 0))
        if fake.get("slow_configure") and not _named(cluster, "slow_configure", node):
            seconds = 0
        if seconds:  # a configuration that takes a while, for tests that act meanwhile
            pool.run(target, f"sleep {seconds}", timeout=seconds + 60)
        return "configured"


@task_type("fake.start-node")
class StartNode(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> str:
        cluster, node = self.args["cluster"], self.args["node"]
        if _fails(cluster, "start", node):
            raise PermanentFailure(f"starting {node['name']} failed (as configured)")
        pool: SSHPool = plugin_services(ctx).ssh.pool(cluster["cluster_id"])
        pool.run(NodeInfo.from_dict(node).ssh_node(), f"echo running > {MARK}")
        return "running"


@task_type("fake.stop-node")
class StopNode(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> str:
        cluster, node = self.args["cluster"], self.args["node"]
        pool: SSHPool = plugin_services(ctx).ssh.pool(cluster["cluster_id"])
        pool.run(NodeInfo.from_dict(node).ssh_node(), f"rm -f {MARK}")
        return "stopped"


class FakePlugin(Plugin):
    name = "fake"
    title = "Fake plugin"
    description = "Nodes that run nothing; provisioning is orchestration only."

    def versions(self) -> list[str]:
        return ["0.1"]

    def node_processes(self, version: str) -> dict[str, list[str]]:
        return {"HDFS": ["namenode", "datanode"], "MapReduce": ["tasktracker", "jobtracker"]}

    def topology(self, version: str) -> Topology:
        return Topology({"namenode": (1, 1), "jobtracker": (0, 1), "datanode": (0, None),
                         "tasktracker": (0, None)})

    def labels(self) -> dict[str, dict[str, Any]]:
        """Sahara's fake plugin was hidden (from dashboards: it stays usable)."""
        return {**super().labels(), "hidden": {"status": True, "mutable": True}}

    def edp_job_types(self, version: str) -> list[str]:
        return ["Shell"]

    def get_edp_engine(self, cluster: ClusterInfo, job_type: str, ssh: SSHPool, *,
                       storage_policy: StoragePolicy | None = None) -> JobEngine | None:
        """Shell jobs run for real on the namenode's node (the nodes are real, only their
        services are fake)."""
        if job_type != "Shell":
            return None
        namenodes = cluster.with_process("namenode")
        others = [n for n in cluster.nodes if n not in namenodes]
        return ShellJobEngine(ssh, [n.job_node() for n in [*namenodes, *others]])

    def _per_node(self, cluster: ClusterInfo, nodes: list[NodeInfo], task: type[Task],
                  prefix: str, after: list[str] | None = None) -> Flow:
        flow = Flow()
        data = cluster.to_dict()
        for node in nodes:
            flow.add(f"{prefix}-{node.name}", task({"cluster": data, "node": node.to_dict()}),
                     requires=after or [])
        return flow

    def configure(self, cluster: ClusterInfo) -> Flow:
        return self._per_node(cluster, cluster.nodes, ConfigureNode, "configure")

    def start(self, cluster: ClusterInfo) -> Flow:
        return self._per_node(cluster, cluster.nodes, StartNode, "start")

    def scale(self, cluster: ClusterInfo, added: list[NodeInfo]) -> Flow:
        flow = self._per_node(cluster, added, ConfigureNode, "configure")
        data = cluster.to_dict()
        for node in added:
            flow.add(f"start-{node.name}", StartNode({"cluster": data, "node": node.to_dict()}),
                     requires=[f"configure-{node.name}"])
        return flow

    def decommission(self, cluster: ClusterInfo, removed: list[NodeInfo]) -> Flow:
        return self._per_node(cluster, removed, StopNode, "stop")

    def on_terminate(self, cluster: ClusterInfo) -> Flow:
        return self._per_node(cluster, cluster.nodes, StopNode, "stop")

    def health(self, cluster: ClusterInfo, ssh: SSHPool) -> Health:
        results = ssh.run_many([n.ssh_node() for n in cluster.nodes], f"cat {MARK}",
                               timeout=30, check=False)
        by_address = {node.ssh_node(): node for node in cluster.nodes}
        down = sorted(by_address[n].name for n, r in results.items()
                      if r.exit_code != 0 or "running" not in r.stdout)
        masters = {n.name for process in MASTERS for n in cluster.with_process(process)}
        status = "GREEN" if not down else ("RED" if masters & set(down) else "YELLOW")
        return Health(status, [HealthCheck("services running", status,
                                           f"down: {', '.join(down)}" if down
                                           else f"{len(cluster.nodes)} nodes running")], down)
