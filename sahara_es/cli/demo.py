"""What ``sahara-es all-in-one --demo`` shows: the store at work, then the engine at work."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.table import Table

from sahara_es.cli.context import console
from sahara_es.cli.history import print_table
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
from sahara_es.events import DomainEvent, Metadata, registry
from sahara_es.events import resources as ev
from sahara_es.store import LeaseLost, Store


def store_demo(store: Store) -> None:
    """Append a short cluster history, read it back, and show fencing refuse a stale writer."""
    resource_id = uuid.uuid4().hex[:12]
    cluster = f"democluster-{resource_id}"
    meta = Metadata(actor="demo", project_id="demo-project", correlation_id=uuid.uuid4().hex)
    # Registered event types only, so that `sahara-es store check` can decode every event
    # the demo leaves behind; in a category of its own, which no read model projects.
    history: list[DomainEvent] = [
        ev.ResourceCreated(kind=ev.Kind.CLUSTER.value, resource_id=resource_id,
                           project_id="demo-project", name="spark-demo",
                           attributes={"plugin_name": "spark", "node_count": 3}),
        ev.ClusterStatusChanged("Spawning"),
        ev.InstanceAdded(node_group="master", instance_name="spark-demo-master-0",
                         management_ip="127.10.0.2"),
        ev.ClusterStatusChanged("Active"),
    ]
    owner = store.acquire_lease(cluster, "engine-demo-1", ttl=0.5)
    store.fence(cluster, owner)
    version = 0
    for fact in history:
        version = store.append(cluster, [registry.new_event(fact, meta)], version, lease=owner)
    table = Table(title=f"stream {cluster}")
    for column in ("version", "type", "data", "actor"):
        table.add_column(column)
    for event in store.read(cluster):
        shown = {k: v for k, v in event.data.items() if v not in (None, "", [], {})}
        table.add_row(str(event.version), event.type, str(shown), event.metadata.actor)
    print_table(table)

    time.sleep(0.6)
    successor = store.acquire_lease(cluster, "engine-demo-2", ttl=30)
    store.fence(cluster, successor)
    try:
        store.append(cluster, [registry.new_event(ev.ClusterStatusChanged("Error"), meta)],
                     version, lease=owner)
        console.print("[red]a stale engine wrote after losing its lease[/red]")
    except LeaseLost as refused:
        console.print(f"engine-demo-1 lost its lease to engine-demo-2 (epoch "
                      f"{successor.epoch}); its late write was refused: {refused}")
    streams = sum(1 for _ in store.list_streams("democluster"))
    console.print(f"streams in category 'democluster': {streams}")


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
            print_table(table)
        console.print(f"instances left: {sorted(_instances)} (spark-broken's were reverted)")
    finally:
        engine.stop()


# -- the API: templates and a cluster through HTTP, as a Sahara client sends them -----------

WORD_COUNT = """\
from operator import add

from pyspark.sql import SparkSession

spark = SparkSession.builder.appName("sahara-es demo word count").getOrCreate()
lines = ["the quick brown fox jumps over the lazy dog", "the dog sleeps",
         "the fox runs"]
counts = (spark.sparkContext.parallelize(lines, 2).flatMap(str.split)
          .map(lambda word: (word, 1)).reduceByKey(add).collect())
for word, count in sorted(counts, key=lambda c: (-c[1], c[0]))[:5]:
    print(f"{word:<8}{count:>3}")
spark.stop()
"""


def spark_job_demo(call: Callable[..., Any], cluster_id: str, binary_folder: Path,
                   suffix: str) -> None:
    """A Spark word count run on the demo cluster as an EDP job; its result printed."""
    binary_folder.mkdir(parents=True, exist_ok=True)
    main = binary_folder / f"wordcount-{suffix}.py"
    main.write_text(WORD_COUNT)
    binary = call("POST", "/job-binaries", {"name": f"wordcount-{suffix}.py",
                                           "url": f"file://{main}"})["job_binary"]
    template = call("POST", "/job-templates", {
        "name": f"wordcount-{suffix}", "type": "Spark",
        "mains": [binary["id"]]})["job_template"]
    job = call("POST", "/jobs", {"cluster_id": cluster_id,
                                 "job_template_id": template["id"]})["job"]
    with console.status("the Spark job runs (spark-submit on the master's node)"):
        while job["info"]["status"] not in ("SUCCEEDED", "FAILED", "KILLED"):
            time.sleep(0.5)
            job = call("GET", f"/jobs/{job['id']}", quiet=True)["job"]
    logs = call("GET", f"/jobs/{job['id']}/logs")["logs"]
    console.print(f"  job {job['id']}: [bold]{job['info']['status']}[/bold]"
                  f" (engine job {job['engine_job_id']})", highlight=False)
    if job["info"]["status"] == "SUCCEEDED":
        console.print("  its output, the five most frequent words:")
        for line in logs["stdout"].splitlines():
            console.print(f"    {line}", highlight=False)
    else:
        console.print(f"  [red]{job['info'].get('status_description', '')}[/red]",
                      highlight=False)
    call("DELETE", f"/jobs/{job['id']}")
    call("DELETE", f"/job-templates/{template['id']}")
    call("DELETE", f"/job-binaries/{binary['id']}")
    main.unlink(missing_ok=True)


def api_demo(url: str, token: str, binary_folder: Path | None = None) -> None:
    """Drive the v2 API over HTTP as a Sahara client would: templates, a refused duplicate, a
    real 3-node Spark cluster provisioned with its steps shown live, the Spark master's own
    status, then everything deleted."""
    import requests
    from rich.live import Live

    session = requests.Session()
    session.headers["X-Auth-Token"] = token

    def call(method: str, path: str, body: dict[str, Any] | None = None,
             quiet: bool = False) -> Any:
        response = session.request(method, f"{url}{path}", json=body, timeout=30)
        if not quiet:
            shown = path if len(path) < 60 else path[:57] + "..."
            console.print(f"  {method:6} {shown:60} → {response.status_code}", highlight=False)
        return response.json() if response.content else None

    console.print(f"[bold]The Sahara v2 API at {url}[/bold]")
    spark = call("GET", "/plugins/spark")["plugin"]
    if not spark["versions"]:
        console.print(f"[red]no Spark cluster: {spark['description']}[/red]", highlight=False)
        return
    version = spark["versions"][0]
    suffix = uuid.uuid4().hex[:6]
    templates = {}
    for process, flavor in (("master", "local.medium"), ("worker", "local.small")):
        templates[process] = call("POST", "/node-group-templates", {
            "name": f"spark-{process}-{suffix}", "plugin_name": "spark",
            "plugin_version": version, "flavor_id": flavor,
            "node_processes": [process]})["node_group_template"]["id"]
    template = call("POST", "/cluster-templates", {
        "name": f"spark-{suffix}", "plugin_name": "spark", "plugin_version": version,
        "node_groups": [
            {"name": "master", "node_group_template_id": templates["master"], "count": 1},
            {"name": "workers", "node_group_template_id": templates["worker"], "count": 2}]}
    )["cluster_template"]["id"]
    cluster = call("POST", "/clusters", {
        "name": f"spark-demo-{suffix}", "plugin_name": "spark", "plugin_version": version,
        "cluster_template_id": template})["cluster"]
    duplicate = call("POST", "/clusters", {
        "name": f"spark-demo-{suffix}", "plugin_name": "spark", "plugin_version": version,
        "cluster_template_id": template})
    console.print(f"  a second cluster of that name: {duplicate['error_message']}",
                  highlight=False)
    in_use = call("DELETE", f"/cluster-templates/{template}")
    console.print(f"  deleting its template: {in_use['error_message']}", highlight=False)

    path = f"/clusters/{cluster['id']}"
    # Shown live on a terminal; elsewhere (a file, a pipe) once, when it is done.
    live = (Live(progress_table(cluster), console=console, refresh_per_second=4)
            if console.is_terminal else None)
    with live or nullcontext():
        while cluster["status"] not in ("Active", "Error"):
            time.sleep(0.5)
            cluster = call("GET", f"{path}?show_progress=true", quiet=True)["cluster"]
            if live is not None:
                live.update(progress_table(cluster))
    if live is None:
        print_table(progress_table(cluster))
    console.print()
    if cluster["status"] != "Active":
        console.print(f"[red]the cluster failed: {cluster['status_description']}[/red]")
    else:
        show_spark_master(cluster)
        if binary_folder is not None:
            spark_job_demo(call, cluster["id"], binary_folder, suffix)
    call("DELETE", path)
    with console.status("deleting the cluster: services stopped, nodes deleted"):
        while session.get(f"{url}{path}", timeout=30).status_code != 404:
            time.sleep(0.5)
    console.print("  the cluster is gone: its nodes' sshd and Spark processes stopped")
    call("DELETE", f"/cluster-templates/{template}")
    for template_id in templates.values():
        call("DELETE", f"/node-group-templates/{template_id}")
    health = session.get(url.rsplit("/v2", 1)[0] + "/healthz", timeout=30).json()
    console.print(f"  read models behind the feed by at most {health['max_lag_seconds']} s",
                  highlight=False)


def progress_table(cluster: dict[str, Any]) -> Table:
    """The cluster's provisioning steps and per-node events, as ``show_progress`` gives them."""
    table = Table(title=f"cluster {cluster['name']}: {cluster['status']}"
                        f" {cluster.get('status_description') or ''}")
    for column in ("step", "done", "nodes"):
        table.add_column(column)
    for step in cluster.get("provision_progress", []):
        events = step.get("events", [])
        ok = sum(1 for e in events if e["successful"])
        mark = {True: "[green]✓[/green]", False: "[red]✗[/red]", None: "…"}[step["successful"]]
        nodes = ", ".join(e["instance_name"].split("-", 1)[-1] + ("" if e["successful"]
                                                                  else " ✗")
                          for e in events)
        table.add_row(f"{mark} {step['step_name']}", f"{ok}/{step['total']}", nodes)
    return table


def show_spark_master(cluster: dict[str, Any]) -> None:
    from sahara_es.plugins.spark import master_status

    master = next(i for g in cluster["node_groups"] if "master" in g["node_processes"]
                  for i in g["instances"])
    status = master_status(master["management_ip"], 8080)
    table = Table(title=f"the Spark master's status ({status.get('url')}):"
                        f" {status.get('status')}")
    for column in ("worker", "state", "cores", "memory MB"):
        table.add_column(column)
    for worker in status.get("workers", []):
        table.add_row(f"{worker.get('host')}:{worker.get('port')}", worker.get("state"),
                      str(worker.get("cores")), str(worker.get("memory")))
    print_table(table)
