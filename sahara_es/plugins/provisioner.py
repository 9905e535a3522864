"""The API's provisioner: accepted cluster commands start the cluster workflows, which any
engine sweeping the store picks up; each workflow carries the cluster's project, by which
engines share their slots fairly."""

from __future__ import annotations

from sahara_es.commands import edp
from sahara_es.commands.caller import Caller
from sahara_es.events.resources import META, Doc
from sahara_es.plugins import provisioning
from sahara_es.store import Store


class WorkflowProvisioner:
    def __init__(self, store: Store) -> None:
        self.store = store

    def cluster_created(self, cluster: Doc, caller: Caller) -> None:
        provisioning.start_once(self.store, provisioning.CREATE, {"cluster_id": cluster["id"]},
                                f"create-{cluster['id']}", project=cluster["project_id"])

    def cluster_scale_requested(self, cluster: Doc, caller: Caller) -> None:
        version = cluster[META]["version"]
        provisioning.start_once(self.store, provisioning.SCALE,
                                {"cluster_id": cluster["id"], "version": version},
                                f"scale{version}-{cluster['id']}", project=cluster["project_id"])

    def cluster_deletion_requested(self, cluster: Doc, caller: Caller) -> None:
        provisioning.start_once(self.store, provisioning.DELETE, {"cluster_id": cluster["id"]},
                                f"delete-{cluster['id']}", project=cluster["project_id"])

    def cluster_verification_requested(self, cluster: Doc, caller: Caller) -> None:
        verification = cluster["verification"]["id"]
        provisioning.start_once(self.store, provisioning.VERIFY,
                                {"cluster_id": cluster["id"], "verification_id": verification},
                                f"verify-{verification}", project=cluster["project_id"])

    def cluster_rebuild_requested(self, cluster: Doc, caller: Caller) -> None:
        version = cluster[META]["version"]
        provisioning.start_once(self.store, provisioning.REBUILD,
                                {"cluster_id": cluster["id"], "version": version,
                                 "nodes": list(cluster.get("failed_nodes") or [])},
                                f"rebuild{version}-{cluster['id']}",
                                project=cluster["project_id"])

    def job_created(self, job: Doc, caller: Caller) -> None:
        pass  # the EDP job engines come next

    def job_cancel_requested(self, job: Doc, caller: Caller) -> None:
        edp.kill_unstarted(self.store, job["id"], caller)  # no job engine runs it yet
