"""The ``sahara-es`` command: one entry point for operators, composed of small groups."""

from __future__ import annotations

from typing import Any

import click

from sahara_es.cli.api import api, token
from sahara_es.cli.audit import audit
from sahara_es.cli.config import (
    TRANSPORT_URL_ENV,
    apply_flags,
    flag,
    load,
    messaging_options,
)
from sahara_es.cli.context import (
    Context,
    console,
    node_network_isolation_option,
    nodes_dir_option,
)
from sahara_es.cli.engine import engine, workflow
from sahara_es.cli.events import events
from sahara_es.cli.haproxy import haproxy_config_command
from sahara_es.cli.jobs import job
from sahara_es.cli.keypairs import keypair
from sahara_es.cli.projections import projections, projector
from sahara_es.cli.replay import replay
from sahara_es.cli.store_check import store_group


@click.group()
@click.option("--config-file", "config_files", multiple=True, type=click.Path(dir_okay=False),
              metavar="PATH",
              help="A configuration file (repeatable, later ones win; default: oslo's"
                   " locations, such as ~/.sahara-es/sahara-es.conf and"
                   " /etc/sahara-es/sahara-es.conf). See doc/configuration.rst.")
@click.option("--config-dir", "config_dirs", multiple=True, type=click.Path(file_okay=False),
              metavar="DIR",
              help="A folder of .conf files read after the configuration files"
                   " (repeatable).")
@flag("database", "connection", "--store", "url")
@click.option("--transport-url", "transport_url", metavar="URL",
              help="oslo.messaging's transport URL (rabbit://USER:PASSWORD@HOST:PORT/), the bus"
                   " between API and engines (config: [DEFAULT] transport_url,"
                   f" ${TRANSPORT_URL_ENV}; a password on a command line is visible to every"
                   " user of the machine: prefer the file). See doc/bus.rst.")
@click.pass_context
def main(ctx: click.Context, config_files: tuple[str, ...], config_dirs: tuple[str, ...],
         url: str | None, transport_url: str | None) -> None:
    """sahara-es: event-sourced data-processing clusters."""
    conf = apply_flags(ctx, load(config_files, config_dirs))
    if transport_url:
        messaging_options(conf).set_override("transport_url", transport_url)
    ctx.obj = Context(conf, config_files, config_dirs)
    ctx.call_on_close(lambda: ctx.obj._store and ctx.obj._store.close())


main.add_command(api)
main.add_command(token)
main.add_command(engine)
main.add_command(workflow)
main.add_command(events)
main.add_command(replay)
main.add_command(job)
main.add_command(audit)
main.add_command(projections)
main.add_command(projector)
main.add_command(store_group, "store")
main.add_command(keypair)
main.add_command(haproxy_config_command)


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
@click.option("--demo/--no-demo", default=False,
              help="Run the demo against the running service, then stop.")
@flag("api", "host")
@flag("api", "port")
@flag("DEFAULT", "data_dir", type=click.Path())
@nodes_dir_option
@node_network_isolation_option
@click.pass_context
def all_in_one(ctx: click.Context, /, demo: bool, **_flags: Any) -> None:
    """API, engine and projector in one process, on the embedded defaults (or --store)."""
    import logging
    import threading

    from werkzeug.serving import make_server

    from sahara_es.api.app import stop_app
    from sahara_es.api.compose import app_for
    from sahara_es.cli.context import local_provider_options, nodes_dir
    from sahara_es.cli.engine import load_workflow_types
    from sahara_es.cli.settings import (
        api_config,
        engine_config,
        job_limits,
        step_limits,
        storage_policy,
    )
    from sahara_es.commands import tokens
    from sahara_es.edp.storage import project_folder_name
    from sahara_es.engine import Engine
    from sahara_es.engine.wakeups import wakeups_of
    from sahara_es.provisioning.requests import CLUSTER_REQUESTS
    from sahara_es.provisioning.services import build_services, provisioning_services
    from sahara_es.rpc.announce import announcing

    obj: Context = ctx.obj
    conf = apply_flags(ctx, obj.conf)
    host, port = conf.api.host, conf.api.port
    state = obj.use_data_dir()
    store = obj.store(upgrade=True)
    console.print(f"store ready: {store.describe()['backend']} at {obj.url}")
    if demo:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the demo prints its calls
    load_workflow_types(())
    binaries = state / "job-binaries"
    services = build_services(store, root=nodes_dir(conf),
                              provider_options=local_provider_options(
                                  "local", conf.engine.node_network_isolation),
                              step_limits=step_limits(conf), job_limits=job_limits(conf),
                              storage_policy=storage_policy(conf, default_binary_root=binaries))
    engine = Engine(store, engine_config(conf), services=services,
                    handoff=CLUSTER_REQUESTS).start()
    # In one process, wake-ups are dispatched in-process: the API's recorded requests nudge
    # the engine's handoff, no broker needed.
    app = app_for(api_config(conf, store_url=obj.url, data_dir=state),
                  store=announcing(store, wakeups_of(store), CLUSTER_REQUESTS),
                  quota=provisioning_services(services).quota)
    server = make_server(host, 0 if demo else port, app, threaded=True)
    url = f"http://{host}:{server.port}/v2"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    console.print(f"API on {url} (engine {engine.engine_id}); tokens: sahara-es token create",
                  highlight=False)
    try:
        if demo:
            from sahara_es.cli import demo as demos

            demos.store_demo(store)
            demos.workflow_demo(store)
            demos.api_demo(url, tokens.issue(store, "demo", roles=["admin"]).token,
                           binaries / project_folder_name("demo"))
        else:
            thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        stop_app(app)
        engine.stop()
        provisioning_services(services).ssh.close()
