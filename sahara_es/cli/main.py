"""The ``sahara-es`` command: one entry point for operators, composed of small groups."""

from __future__ import annotations

import click

from sahara_es.cli.api import api, token
from sahara_es.cli.audit import audit
from sahara_es.cli.context import Context, console, default_store_url
from sahara_es.cli.engine import engine, workflow
from sahara_es.cli.events import events
from sahara_es.cli.projections import projections
from sahara_es.cli.replay import replay
from sahara_es.cli.store_check import store_group


@click.group()
@click.option("--store", "url", envvar="SAHARA_ES_STORE", default=default_store_url,
              show_default="sqlite in $XDG_DATA_HOME/sahara-es",
              help="Store URL: sqlite:///PATH or cassandra://HOST[,HOST]:PORT/KEYSPACE?...")
@click.pass_context
def main(ctx: click.Context, url: str) -> None:
    """sahara-es: event-sourced data-processing clusters."""
    ctx.obj = Context(url)
    ctx.call_on_close(lambda: ctx.obj._store and ctx.obj._store.close())


main.add_command(api)
main.add_command(token)
main.add_command(engine)
main.add_command(workflow)
main.add_command(events)
main.add_command(replay)
main.add_command(audit)
main.add_command(projections)
main.add_command(store_group, "store")


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
        from sahara_es.cli import demo as demos

        demos.store_demo(store)
        demos.workflow_demo(store)
