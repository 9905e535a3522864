"""The user's key pair on a cluster's nodes: installed with them, and pushed again by the
``cluster.update-keypair`` workflow (Sahara's ``update_keypair``).

A cluster may name a key pair of its project (``user_keypair_id``: Nova's key pair there,
``commands.keypairs`` for the local provider). Its nodes then accept two keys: the
cluster's management key (the service's own sessions) and that key pair's public key (the
user's). ``PATCH /v2/clusters/<id>`` with ``{"update_keypair": true}`` records a request;
the workflow it starts (``keypair<version>-<cluster id>``) makes every node accept the
key pair's *current* public key instead of the one it had, the management key kept, as one
provisioning step with an event per node. Writing the same keys again changes nothing, so a
workflow taken over by another engine simply writes them again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from sahara_es.commands.keypairs import find_keypair
from sahara_es.engine import Flow, PermanentFailure, Task, TaskContext, task_type, workflow_type
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc
from sahara_es.infra.base import InfraError
from sahara_es.provisioning.cluster import Cluster, being_deleted, instances_of
from sahara_es.provisioning.services import ensure_cluster_key, services
from sahara_es.provisioning.steps import start_step
from sahara_es.store import Store

UPDATE_KEYPAIR = "cluster.update-keypair"


def update_keypair_id(version: int, cluster_id: str) -> str:
    """The key pair update asked for by the cluster's event ``version``."""
    return f"keypair{version}-{cluster_id}"


@runtime_checkable
class AuthorizesKeys(Protocol):
    """A provider that sets the keys a node's SSH server accepts (``local``; the OpenStack
    provider will rely on Nova's key pair at boot and rewrite ``authorized_keys`` over SSH,
    as Sahara did)."""

    def authorize_keys(self, name: str, public_keys: Sequence[str]) -> None: ...


def user_public_key(store: Store, doc: Doc) -> str | None:
    """The current public key of the key pair the cluster names; None when it names none
    or its project no longer has it."""
    name = doc.get("user_keypair_id")
    if not name:
        return None
    found = find_keypair(store, doc["project_id"], name)
    return found.public_key if found is not None else None


def node_public_keys(store: Store, cluster_id: str, doc: Doc) -> str:
    """What a new node of the cluster accepts: its management public key and the user's
    key pair's, one a line (the instance spec's ``public_key``)."""
    _, management = ensure_cluster_key(store, cluster_id)
    user = user_public_key(store, doc)
    return management if user is None else f"{management}\n{user}"


@task_type("cluster.push-user-key")
class PushUserKey(Task):
    """Every node of the cluster accepts the management key and the key pair's current
    public key, and no other (the user's previous key goes)."""

    idempotent = True

    def execute(self, ctx: TaskContext) -> Doc:
        cluster = Cluster(ctx, self.args["cluster_id"])
        doc = cluster.doc
        if being_deleted(doc):
            raise PermanentFailure(f"cluster {cluster.id} is being deleted")
        user = user_public_key(cluster.store, doc)
        if user is None:
            raise PermanentFailure(f"project {doc['project_id']} has no key pair"
                                   f" {doc.get('user_keypair_id')!r} any more")
        _, management = ensure_cluster_key(cluster.store, cluster.id)
        provider = services(ctx).provider
        if not isinstance(provider, AuthorizesKeys):
            raise PermanentFailure(f"the {type(provider).__name__} provider cannot change"
                                   " the keys its nodes accept")
        nodes = instances_of(doc)
        step = start_step(cluster, "Updating key pair", len(nodes),
                          step_type="Engine: update key pair")
        failed: dict[str, str] = {}
        for group, instance in nodes:
            ctx.check_lease()
            name = instance["instance_name"]
            try:
                provider.authorize_keys(name, [management, user])
            except InfraError as error:
                failed[name] = str(error)
            cluster.record(
                ev.ProvisioningStepProgressed(step, name, name not in failed,
                                              failed.get(name, "key pair updated")[:2000],
                                              group),
                unless=functools.partial(_progressed, step=step, name=name))
        if failed:
            raise PermanentFailure("the key pair could not be updated on "
                                   + "; ".join(f"{n}: {e}" for n, e in failed.items()))
        return {"nodes": [i["instance_name"] for _, i in nodes]}


def _progressed(doc: Doc, step: str, name: str) -> bool:
    """Whether the node's outcome in the step is recorded (a task run again records it
    once)."""
    return any(event["instance_name"] == name for s in doc.get("provision_progress", [])
               if s["id"] == step for event in s["events"])


@workflow_type(UPDATE_KEYPAIR)
def update_keypair(params: dict[str, Any]) -> Flow:
    flow = Flow()
    flow.add("push", PushUserKey({"cluster_id": params["cluster_id"]}))
    return flow
