"""What ``sahara-es all-in-one --demo`` shows: the store at work, then the engine at work."""

from __future__ import annotations

import time
import uuid
from typing import Any

from rich.table import Table

from sahara_es.cli.context import console
from sahara_es.engine import (
    Engine,
    EngineConfig,
    Flow,
    PermanentFailure,
    RetryPolicy,
    Spawn,
    Task,
    TaskContext,
    start_workflow,
    task_type,
    wait_for,
    workflow_type,
)
from sahara_es.engine.engine import events_of
from sahara_es.events import Metadata, NewEvent
from sahara_es.store import LeaseLost, Store


def store_demo(store: Store) -> None:
    """Append a short cluster history, read it back, and show fencing refuse a stale writer."""
    cluster = f"cluster-{uuid.uuid4().hex[:12]}"
    meta = Metadata(actor="demo", project_id="demo-project", correlation_id=uuid.uuid4().hex)
    history: list[tuple[str, dict[str, Any]]] = [
        ("ClusterCreateRequested", {"name": "spark-demo", "plugin": "spark", "nodes": 3}),
        ("ClusterStatusChanged", {"status": "Spawning"}),
        ("InstanceCreated", {"instance": "spark-demo-master-0", "ip": "127.10.0.2"}),
        ("ClusterStatusChanged", {"status": "Active"}),
    ]
    owner = store.acquire_lease(cluster, "engine-demo-1", ttl=0.5)
    store.fence(cluster, owner)
    version = 0
    for kind, data in history:
        version = store.append(cluster, [NewEvent(type=kind, data=data, metadata=meta)],
                               version, lease=owner)
    table = Table(title=f"stream {cluster}")
    for column in ("version", "type", "data", "actor"):
        table.add_column(column)
    for event in store.read(cluster):
        table.add_row(str(event.version), event.type, str(event.data), event.metadata.actor)
    console.print(table)

    time.sleep(0.6)
    successor = store.acquire_lease(cluster, "engine-demo-2", ttl=30)
    store.fence(cluster, successor)
    try:
        store.append(cluster, [NewEvent(type="ClusterStatusChanged", data={"status": "Error"})],
                     version, lease=owner)
        console.print("[red]a stale engine wrote after losing its lease[/red]")
    except LeaseLost as refused:
        console.print(f"engine-demo-1 lost its lease to engine-demo-2 (epoch "
                      f"{successor.epoch}); its late write was refused: {refused}")
    console.print(f"streams in category 'cluster': {sum(1 for _ in store.list_streams('cluster'))}")


# -- the engine: a pretend cluster whose "instances" live in a dict -------------------------

_instances: dict[str, str] = {}


@task_type("demo.create-instance")
class CreateInstance(Task):
    def execute(self, ctx: TaskContext) -> dict[str, str]:
        address = f"127.10.0.{len(_instances) + 2}"
        _instances[self.args["name"]] = address
        return {"name": self.args["name"], "address": address}

    def revert(self, ctx: TaskContext, result: dict[str, str]) -> None:
        _instances.pop(result["name"], None)

    def reconcile(self, ctx: TaskContext, intent: dict[str, Any]) -> dict[str, str] | None:
        address = _instances.get(self.args["name"])
        return {"name": self.args["name"], "address": address} if address else None


@task_type("demo.create-instances")
class CreateInstances(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> Spawn:
        flow = Flow()
        for i in range(self.args["count"]):
            flow.add(f"node{i}", CreateInstance({"name": f"{self.args['cluster']}-{i}"}))
        return Spawn({"count": self.args["count"]}, flow)


@task_type("demo.configure")
class Configure(Task):
    """Loses its connection on the first attempt, as SSH sometimes does."""

    retry = RetryPolicy(attempts=3, backoff=0.05)

    def execute(self, ctx: TaskContext) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("ssh: connection reset by peer")
        return "configured"


@task_type("demo.start-services")
class StartServices(Task):
    idempotent = True

    def execute(self, ctx: TaskContext) -> str:
        if self.args["fail"]:
            raise PermanentFailure("spark master did not come up: port 7077 in use")
        return "running"


@workflow_type("demo.create-cluster")
def create_cluster(params: dict[str, Any]) -> Flow:
    flow = Flow()
    nodes = flow.add("instances", CreateInstances({"cluster": params["name"], "count": 3}))
    configured = flow.add("configure", Configure(), requires=[nodes])
    flow.add("start", StartServices({"fail": params["fail"]}), requires=[configured])
    return flow


def workflow_demo(store: Store) -> None:
    """Run two workflows on an in-process engine: one succeeds after a retry, one rolls back."""
    engine = Engine(store, EngineConfig(engine_id="demo-engine", concurrency=4,
                                        sweep_interval=0.05)).start()
    try:
        for name, fail in (("spark-ok", False), ("spark-broken", True)):
            workflow = start_workflow(store, "demo.create-cluster",
                                      {"name": name, "fail": fail})
            state = wait_for(store, workflow, timeout=60)
            table = Table(title=f"workflow {workflow} ({name}): {state.status}")
            for column in ("#", "event", "task", "detail"):
                table.add_column(column)
            for number, event in enumerate(events_of(store, f"workflow-{workflow}"), 1):
                data = event.to_data()
                detail = {k: round(v, 3) if isinstance(v, float) else v for k, v in data.items()
                          if k in ("attempt", "error", "result", "delay") and v}
                table.add_row(str(number), event.event_type, data.get("task_id", ""),
                              str(detail) if detail else "")
            console.print(table)
        console.print(f"instances left: {sorted(_instances)} (spark-broken's were reverted)")
    finally:
        engine.stop()
