"""The provisioning plugin interface, modelled on Sahara's, with one change its redesign asked
for: a plugin *returns tasks* (workflow fragments) instead of doing the work, so that per-node
steps run concurrently and spread across engines.

A plugin answers the API's questions (versions, node processes, configs, validation) and
returns the flows that provisioning runs: ``configure``, ``start``, ``scale``,
``decommission``, ``on_terminate``; ``health`` checks a running cluster. Every task of these
flows gets the cluster and its node as plain data in its arguments (``ClusterInfo`` and
``NodeInfo`` dicts), and reaches nodes through the typed services of its context
(``plugin_services``, which the provisioning services satisfy)::

    pool = plugin_services(ctx).ssh.pool(cluster["cluster_id"])   # an infra.ssh.SSHPool
    pool.run(NodeInfo.from_dict(args["node"]).ssh_node(), "…")
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, cast

from sahara_es.edp.base import JobEngine, JobNode
from sahara_es.edp.storage import StoragePolicy
from sahara_es.engine import Flow, PermanentFailure, Task, TaskContext
from sahara_es.infra.ssh import Node, SSHPool

SERVICES = "provisioning"
"""The key under which an engine's services hold the typed provisioning services
(``provisioning.services.build_services``); tasks read them through a typed accessor."""


class NodePools(Protocol):
    """SSH to a cluster's nodes: one pool per cluster, with the cluster's own key."""

    def pool(self, cluster_id: str) -> SSHPool: ...


class PluginServices(Protocol):
    """What a plugin's tasks may use of the engine's services (the provisioning services
    give these and more)."""

    @property
    def ssh(self) -> NodePools: ...


def plugin_services(ctx: TaskContext) -> PluginServices:
    """The services a plugin's task uses; ``PermanentFailure`` on an engine without them."""
    return cast(PluginServices, ctx.service(SERVICES))


class PluginInvalid(Exception):
    """The request does not fit the plugin (topology, processes, versions)."""


def check_int_range(value: Any, low: int, high: int, message: str) -> None:
    """``PluginInvalid(message)`` unless ``value`` is a whole number (or its digits) within
    ``low``..``high`` (a bool is not a number here)."""
    text = str(value)
    if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise PluginInvalid(message)


@dataclass(frozen=True)
class ConfigOption:
    """A plugin setting a user may give (Sahara's config item)."""

    name: str
    applicable_target: str
    """A service name (``Spark``) or ``general``."""
    default_value: Any = None
    config_type: str = "string"
    scope: str = "cluster"
    description: str = ""
    is_optional: bool = True
    priority: int = 2
    config_values: list[Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Topology:
    """Who must be there: process → (minimum, maximum) instances over the cluster."""

    bounds: dict[str, tuple[int, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeInfo:
    """A cluster node as provisioning tasks see it."""

    name: str
    """The instance name, unique in the deployment (``<cluster>-<group>-<n>``)."""
    node_group: str
    processes: list[str]
    address: str
    ssh_port: int
    username: str
    host_key: str
    home: str = ""
    """The node's own folder (``$HOME`` of its SSH sessions)."""
    host: str | None = None

    def ssh_node(self) -> Node:
        return Node(self.address, self.ssh_port, self.username, self.host_key, self.name)

    def job_node(self) -> JobNode:
        """The node as a job engine sees it."""
        return JobNode(self.name, list(self.processes), self.ssh_node(), self.home)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NodeInfo:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ClusterInfo:
    cluster_id: str
    name: str
    plugin_version: str
    configs: dict[str, Any]
    """The cluster's ``cluster_configs`` (``{target: {name: value}}``)."""
    nodes: list[NodeInfo]

    def with_process(self, process: str) -> list[NodeInfo]:
        return [n for n in self.nodes if process in n.processes]

    def config(self, target: str, name: str, default: Any) -> Any:
        return self.configs.get(target, {}).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {"cluster_id": self.cluster_id, "name": self.name,
                "plugin_version": self.plugin_version, "configs": self.configs,
                "nodes": [n.to_dict() for n in self.nodes]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterInfo:
        return cls(data["cluster_id"], data["name"], data["plugin_version"],
                   dict(data.get("configs") or {}),
                   [NodeInfo.from_dict(n) for n in data["nodes"]])


@dataclass(frozen=True)
class HealthCheck:
    name: str
    status: str
    """GREEN, YELLOW or RED."""
    description: str


@dataclass(frozen=True)
class Health:
    status: str
    checks: list[HealthCheck]
    failed_nodes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [asdict(c) for c in self.checks],
                "failed_nodes": list(self.failed_nodes)}


class Plugin(abc.ABC):
    name: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str]

    @abc.abstractmethod
    def versions(self) -> list[str]: ...

    @abc.abstractmethod
    def node_processes(self, version: str) -> dict[str, list[str]]:
        """Service → its node processes (``{"Spark": ["master", "worker"]}``)."""

    def configs(self, version: str) -> list[ConfigOption]:
        return []

    def required_image_tags(self, version: str) -> list[str]:
        return [self.name, version]

    def edp_job_types(self, version: str) -> list[str]:
        return []

    def get_edp_engine(self, cluster: ClusterInfo, job_type: str, ssh: SSHPool, *,
                       storage_policy: StoragePolicy | None = None) -> JobEngine | None:
        """The job engine that runs ``job_type`` jobs on ``cluster`` (reaching its nodes
        through ``ssh``, and object storage as ``storage_policy`` allows); None when the
        plugin runs no such jobs (``edp_job_types``)."""
        return None

    @abc.abstractmethod
    def topology(self, version: str) -> Topology: ...

    def validate(self, version: str, node_groups: list[dict[str, Any]],
                 configs: dict[str, Any] | None = None) -> None:
        """Raise ``PluginInvalid`` unless the cluster's processes fit the topology and its
        configs (``cluster_configs`` and each node group's ``node_configs``) pass
        ``validate_configs``."""
        self._validate_topology(version, node_groups)
        self.validate_configs(version, configs, node_groups)

    def _validate_topology(self, version: str, node_groups: list[dict[str, Any]]) -> None:
        counts = process_counts(node_groups)
        for process, (low, high) in self.topology(version).bounds.items():
            have = counts.get(process, 0)
            if have < low:
                raise PluginInvalid(f"{self.name} {version} needs at least {low} {process}"
                                    f" (this cluster would have {have})")
            if high is not None and have > high:
                raise PluginInvalid(f"{self.name} {version} allows at most {high} {process}"
                                    f" (this cluster would have {have})")

    def validate_configs(self, version: str, configs: dict[str, Any] | None,
                         node_groups: list[dict[str, Any]] | None = None) -> None:
        """Raise ``PluginInvalid`` unless every config value given is one the plugin may
        hand to the programs it starts: the cluster's ``configs`` (``{target: {name:
        value}}``) and each node group's ``node_configs``. Targets must be the plugin's
        (``config_targets``), values scalars; each goes through ``check_config``, and the
        error names where it was and which config."""
        targets = self.config_targets(version)
        places: list[tuple[str, Any]] = [("cluster_configs", configs or {})]
        places += [(f"node group {g.get('name', '?')!r} node_configs", g.get("node_configs"))
                   for g in node_groups or [] if g.get("node_configs")]
        for where, given in places:
            if not isinstance(given, dict):
                raise PluginInvalid(f"{where} must map targets to {{name: value}} objects")
            for target, values in given.items():
                if targets is not None and target not in targets:
                    raise PluginInvalid(f"{where}: {self.name} has no config target"
                                        f" {str(target)[:100]!r}; it has"
                                        f" {', '.join(sorted(targets))}")
                if not isinstance(values, dict):
                    raise PluginInvalid(f"{where} {target!r} must be a {{name: value}} object")
                for name, value in values.items():
                    if value is not None and not isinstance(value, str | int | float | bool):
                        raise PluginInvalid(f"{where} {target}/{name!r}: a value must be a"
                                            " string, a number or a boolean")
                    try:
                        self.check_config(version, str(target), str(name), value)
                    except PluginInvalid as error:
                        raise PluginInvalid(f"{where} {target}/{name!r}: {error}") from None

    def config_targets(self, version: str) -> set[str] | None:
        """The targets (services) a cluster's configs may name: those of the plugin's
        ``configs``; None (any) for a plugin that declares no configs."""
        return {option.applicable_target for option in self.configs(version)} or None

    def recheck_configs(self, cluster: ClusterInfo) -> None:
        """``PermanentFailure`` unless the stored cluster's configs pass ``validate_configs``
        as it is now: for clusters stored before a check existed, when their configure,
        start or scale flow is planned (a decommission or a delete goes on regardless)."""
        try:
            self.validate_configs(cluster.plugin_version, cluster.configs)
        except PluginInvalid as invalid:
            raise PermanentFailure(f"the configs of cluster {cluster.name} are refused:"
                                   f" {invalid}") from None

    def check_config(self, version: str, target: str, name: str, value: Any) -> None:
        """Raise ``PluginInvalid`` unless ``value`` is safe and right for config ``name`` of
        ``target``. By default: no NUL or newline in text, and numbers for ``int`` options;
        plugins that pass values on to programs check more."""
        if isinstance(value, str) and any(c in value for c in "\0\n\r"):
            raise PluginInvalid("NUL and newlines are not allowed")
        option = next((o for o in self.configs(version)
                       if o.applicable_target == target and o.name == name), None)
        is_int = option is not None and option.config_type == "int"
        if is_int and value is not None and (
                isinstance(value, bool) or not str(value).strip().lstrip("-").isdigit()):
            raise PluginInvalid(f"{value!r} is not an integer")

    def validate_scaling(self, version: str, node_groups: list[dict[str, Any]],
                         resized: dict[str, int], added: list[dict[str, Any]],
                         configs: dict[str, Any] | None = None) -> None:
        """Raise ``PluginInvalid`` unless the cluster after scaling still fits (its configs
        included); by default only worker-like processes (those with no maximum) may change
        in number."""
        after = [{**g, "count": resized.get(g["name"], g["count"])} for g in node_groups]
        fixed = {p for p, (_, high) in self.topology(version).bounds.items()
                 if high is not None}
        for group in [*node_groups, *added]:
            before = group["count"] if group in node_groups else 0
            now = resized.get(group["name"], group["count"])
            touched = fixed & set(group["node_processes"])
            if touched and now != before:
                raise PluginInvalid(f"{self.name}: node group {group['name']!r} runs"
                                    f" {', '.join(sorted(touched))}, which cannot be scaled")
        self.validate(version, [*after, *added], configs)

    # -- provisioning: flows, not work ---------------------------------------------------------

    def configure(self, cluster: ClusterInfo) -> Flow:
        """Per-node tasks that write the services' configuration (run concurrently)."""
        return Flow()

    def start(self, cluster: ClusterInfo) -> Flow:
        """Tasks that start the services, in the order they need (masters first)."""
        return Flow()

    def scale(self, cluster: ClusterInfo, added: list[NodeInfo]) -> Flow:
        """Configure and start ``added`` nodes (``cluster`` already lists them)."""
        return Flow()

    def decommission(self, cluster: ClusterInfo, removed: list[NodeInfo]) -> Flow:
        """Drain, then stop, the services of ``removed`` nodes (``cluster`` still lists them)."""
        return Flow()

    def on_terminate(self, cluster: ClusterInfo) -> Flow:
        """Stop the services before the instances are deleted (best effort)."""
        return Flow()

    def health(self, cluster: ClusterInfo, ssh: SSHPool) -> Health:
        """Check the running cluster, now (not a flow: verification runs it in one task)."""
        return Health("GREEN", [])

    def cluster_urls(self, cluster: ClusterInfo) -> dict[str, dict[str, str]]:
        """What Sahara shows as the running cluster's ``info``: per service, its web UIs and
        the addresses clients use (``{"Spark": {"Web UI": "http://..."}}``)."""
        return {}

    def can_run_without(self, cluster: ClusterInfo, failed: list[NodeInfo]) -> bool:
        """Whether the cluster is useful with ``failed`` nodes out (partially active)."""
        fixed = {p for p, (_, high) in self.topology(cluster.plugin_version).bounds.items()
                 if high is not None}
        if any(fixed & set(node.processes) for node in failed):
            return False
        names = {node.name for node in failed}
        remaining = [{"node_processes": n.processes, "count": 1}
                     for n in cluster.nodes if n.name not in names]
        try:
            self.validate(cluster.plugin_version, remaining)
        except PluginInvalid:
            return False
        return True

    def open_ports(self, node: NodeInfo, version: str) -> list[int]:
        return []

    def labels(self) -> dict[str, dict[str, Any]]:
        return {"enabled": {"status": True, "mutable": True},
                "hidden": {"status": False, "mutable": True},
                "stable": {"status": True, "mutable": False}}

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "description": self.description,
                "versions": self.versions(), "plugin_labels": self.labels(),
                "version_labels": {v: {"enabled": {"status": True, "mutable": True}}
                                   for v in self.versions()}}

    def version_details(self, version: str) -> dict[str, Any]:
        return {**self.summary(), "node_processes": self.node_processes(version),
                "configs": [c.to_dict() for c in self.configs(version)],
                "required_image_tags": self.required_image_tags(version)}


def process_counts(node_groups: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for group in node_groups:
        for process in group["node_processes"]:
            counts[process] = counts.get(process, 0) + int(group["count"])
    return counts


# -- a plugin's per-node tasks ------------------------------------------------------------------

STOP_GRACE = 10.0
"""Seconds a node's daemon has to exit on SIGTERM before it is killed."""


class NodeTask(Task):
    """A plugin's task over one node of a cluster: ``{"cluster": ClusterInfo dict, "node":
    NodeInfo dict}`` (``node_args``), reaching it over SSH with the cluster's key."""

    @property
    def cluster(self) -> ClusterInfo:
        return ClusterInfo.from_dict(self.args["cluster"])

    @property
    def node(self) -> NodeInfo:
        return NodeInfo.from_dict(self.args["node"])

    def pool(self, ctx: TaskContext) -> SSHPool:
        """The SSH pool of the node's cluster."""
        return plugin_services(ctx).ssh.pool(self.args["cluster"]["cluster_id"])


def node_args(cluster: ClusterInfo, node: NodeInfo, **extra: Any) -> dict[str, Any]:
    """A ``NodeTask``'s arguments."""
    return {"cluster": cluster.to_dict(), "node": node.to_dict(), **extra}


def node_task_id(prefix: str, node: NodeInfo) -> str:
    """The id of a node's task in a plugin's flow: ``<prefix>-<node name>``, dots and slashes
    of the name made dashes (ids are in stored histories: this never changes)."""
    return f"{prefix}-{node.name.replace('.', '-').replace('/', '-')}"
