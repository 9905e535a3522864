"""The job manager's services (``edp.manager.EdpServices``), given by provisioning: the job
engine of a cluster's plugin, built from the cluster's nodes as the provider recorded them
and reaching them with the cluster's own key; job binaries fetched under the service's
storage policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sahara_es.commands import resources
from sahara_es.edp import storage
from sahara_es.edp.base import JobEngine, JobEngineError, JobInvalid
from sahara_es.edp.manager import JobLimits
from sahara_es.engine import PermanentFailure
from sahara_es.events.resources import META, Doc, Kind
from sahara_es.infra.base import InfraError, InfraProvider
from sahara_es.plugins.base import ClusterInfo, NodeInfo, NodePools, Plugin
from sahara_es.store import Store


def instances_of(doc: Doc) -> list[tuple[str, Doc]]:
    return [(group["name"], instance) for group in doc.get("node_groups", [])
            for instance in group.get("instances", [])]


def nodes_of(provider: InfraProvider, doc: Doc) -> ClusterInfo:
    """The cluster's nodes as the plugin sees them, from ``provider``'s records."""
    processes = {g["name"]: list(g["node_processes"]) for g in doc.get("node_groups", [])}
    nodes: list[NodeInfo] = []
    for group, name in [(group, i["instance_name"]) for group, i in instances_of(doc)]:
        instance = provider.get_instance(name)
        if instance is None:
            raise PermanentFailure(f"instance {name} of cluster {doc['id']} is gone")
        nodes.append(NodeInfo(name=name, node_group=group, processes=processes[group],
                              address=instance.address, ssh_port=instance.ssh_port,
                              username=instance.username,
                              host_key=str(instance.extra.get("host_key", "")),
                              home=str(instance.extra.get("home", "")), host=instance.host))
    return ClusterInfo(doc["id"], doc["name"], doc["plugin_version"],
                       dict(doc.get("cluster_configs") or {}), nodes)


MANILA = "manila://"


@dataclass
class JobEngines:
    """``EdpServices`` over the provisioning services of one engine process."""

    store: Store
    provider: InfraProvider
    ssh: NodePools
    plugins: Mapping[str, Plugin]
    policy: storage.StoragePolicy = field(default_factory=storage.StoragePolicy)
    limits: JobLimits = field(default_factory=JobLimits)

    def job_engine(self, cluster_id: str, job_type: str) -> JobEngine:
        doc = resources.load(self.store, Kind.CLUSTER, cluster_id).doc
        if doc is None or doc[META].get("deleted"):
            raise PermanentFailure(f"cluster {cluster_id} is gone")
        plugin = self.plugins.get(doc["plugin_name"])
        if plugin is None:
            raise PermanentFailure(f"this engine has no plugin {doc['plugin_name']}")
        try:
            info = nodes_of(self.provider, doc)
        except InfraError as error:
            raise JobEngineError(f"the cluster's nodes cannot be found: {error}") from error
        engine = plugin.get_edp_engine(info, job_type, self.ssh.pool(cluster_id),
                                       storage_policy=self.policy)
        if engine is None:
            supported = plugin.edp_job_types(doc["plugin_version"])
            raise JobInvalid(f"plugin {plugin.name} {doc['plugin_version']} runs"
                             f" {', '.join(supported) or 'no'} jobs, not {job_type}")
        return engine

    def node_url(self, cluster_id: str, project_id: str, url: str) -> str:
        if not url.startswith(MANILA):
            return url
        share, _, path = url[len(MANILA):].partition("/")
        if ".." in path.split("/"):
            raise JobInvalid(f"{url}: a path in a share has no '..'")
        try:
            folder = self.provider.share_path(project_id, share, cluster_id)
        except InfraError as error:
            raise JobInvalid(f"{url}: {self.provider.tenant_view(str(error))}") from None
        return f"file://{folder}/{path}"

    def fetch_binary(self, binary: Doc, extra: Doc | None) -> bytes:
        return storage.fetch_binary(binary["url"], {str(k): str(v) for k, v in
                                                    (extra or {}).items()},
                                    binary["project_id"], self.policy)
