"""The ``sahara-es`` command: one entry point for operators, composed of small groups."""

from __future__ import annotations

import uuid
from typing import Any

import click
from rich.table import Table

from sahara_es.cli.context import Context, console, default_store_url
from sahara_es.cli.engine import engine, workflow
from sahara_es.events import Metadata, NewEvent
from sahara_es.store import Store


@click.group()
@click.option("--store", "url", envvar="SAHARA_ES_STORE", default=default_store_url,
              show_default="sqlite in $XDG_DATA_HOME/sahara-es",
              help="Store URL: sqlite:///PATH or cassandra://HOST[,HOST]:PORT/KEYSPACE?...")
@click.pass_context
def main(ctx: click.Context, url: str) -> None:
    """sahara-es: event-sourced data-processing clusters."""
    ctx.obj = Context(url)
    ctx.call_on_close(lambda: ctx.obj._store and ctx.obj._store.close())


main.add_command(engine)
main.add_command(workflow)


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Create the schema, or apply the migrations it lacks."""
    store = obj.store()
    applied = store.upgrade()
    described = store.describe()
    if applied:
        console.print(f"applied migrations {applied} to {described['backend']} ({obj.url})")
    else:
        console.print(f"{described['backend']} schema is up to date ({obj.url})")


@db.command("info")
@click.pass_obj
def db_info(obj: Context) -> None:
    """What the store is: backend, version and consistency settings."""
    for key, value in obj.store().describe().items():
        console.print(f"[bold]{key}[/bold]: {value}")


@main.command("all-in-one")
@click.option("--demo/--no-demo", default=True, help="Run the demo against the store.")
@click.pass_obj
def all_in_one(obj: Context, demo: bool) -> None:
    """Run on the embedded defaults: apply the schema, then show the event store at work."""
    store = obj.store(upgrade=True)
    console.print(f"store ready: {store.describe()['backend']} at {obj.url}")
    if demo:
        run_demo(store)


def run_demo(store: Store) -> None:
    """Append a short cluster history, read it back, and show fencing refuse a stale writer."""
    from sahara_es.store import LeaseLost

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

    import time

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
