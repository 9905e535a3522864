"""``sahara-es engine`` (run one engine) and ``sahara-es workflow`` (start, cancel, show)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
from typing import Any

import click
from stevedore import ExtensionManager

from sahara_es.cli import interpreter
from sahara_es.cli.bus import join_bus, notifications_for
from sahara_es.cli.config import apply_flags, flag
from sahara_es.cli.context import (
    Context,
    console,
    local_provider_options,
    node_network_isolation_option,
    nodes_dir,
    nodes_dir_option,
    run_until_signalled,
)
from sahara_es.cli.settings import (
    engine_config,
    job_limits,
    parse_hosts,
    step_limits,
    storage_policy,
)
from sahara_es.engine import (
    Engine,
    load_workflow,
    request_cancel,
    start_workflow,
    wait_for,
)
from sahara_es.provisioning.requests import CLUSTER_REQUESTS
from sahara_es.provisioning.services import build_services, provisioning_services


def load_workflow_types(modules: tuple[str, ...]) -> None:
    """Import what registers task and workflow types: entry points, then ``--load`` modules."""
    ExtensionManager("sahara_es.workflows", invoke_on_load=False)
    for module in modules:
        importlib.import_module(module)


hosts_option = flag("engine", "hosts", metavar="COUNT|NAME=VCPUS:RAM_MB,...")

load_option = click.option(
    "--load", "modules", multiple=True, metavar="MODULE",
    help="Also import MODULE, which registers task and workflow types (repeatable).")


def parse_step_timeouts(values: tuple[str, ...]) -> dict[str, float]:
    """``TYPE=SECONDS`` pairs as a mapping; a clear usage error for anything else."""
    timeouts: dict[str, float] = {}
    for value in values:
        task_type, _, seconds = value.partition("=")
        try:
            timeouts[task_type.strip()] = float(seconds)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not TYPE=SECONDS") from None
        if not task_type.strip() or not timeouts[task_type.strip()] > 0:
            raise click.BadParameter(f"{value!r}: a task type and a positive number of"
                                     " seconds") from None
    return timeouts


@click.command("engine")
@flag("engine", "id", "--id", "engine_id")
@flag("engine", "region")
@flag("engine", "region_takeover_grace")
@flag("engine", "concurrency")
@flag("engine", "max_workflows")
@flag("engine", "project_share", type=click.FloatRange(0.0, 1.0, min_open=True))
@flag("engine", "reclaim_slots")
@flag("engine", "lease_ttl")
@flag("engine", "sweep_interval")
@flag("engine", "grace")
@flag("DEFAULT", "data_dir", type=click.Path())
@nodes_dir_option
@flag("engine", "provider")
@node_network_isolation_option
@flag("engine", "step_timeout", type=click.FloatRange(0.0, min_open=True))
@flag("engine", "step_timeouts", "--step-timeout-for", "step_timeouts", multiple=True,
      metavar="TYPE=SECONDS", type=str,
      callback=lambda _ctx, _param, value: parse_step_timeouts(value) or None)
@flag("engine", "step_timeout_max", type=click.FloatRange(0.0, min_open=True))
@flag("engine", "cancel_grace")
@flag("edp", "job_poll_interval")
@flag("edp", "job_cancel_timeout")
@flag("engine", "nice")
@hosts_option
@flag("engine", "load", "--load", "modules", multiple=True, metavar="MODULE", type=str)
@click.pass_context
def engine(ctx: click.Context, /, **_flags: Any) -> None:
    """Run one workflow engine until SIGTERM or SIGINT; then hand its workflows back. Its
    handoff starts the workflows cluster commands ask for (one engine's at a time)."""
    obj: Context = ctx.obj
    conf = apply_flags(ctx, obj.conf)
    try:
        hosts = parse_hosts(conf.engine.hosts)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--hosts / [engine] hosts") from None
    if conf.engine.nice:
        os.nice(conf.engine.nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    load_workflow_types(tuple(conf.engine.load))
    config = engine_config(conf)
    obj.use_data_dir()
    store = obj.store(upgrade=True)
    provider = conf.engine.provider
    services = build_services(store, root=nodes_dir(conf), provider=provider,
                              hosts=hosts, provider_options=local_provider_options(
                                  provider, conf.engine.node_network_isolation),
                              step_limits=step_limits(conf), job_limits=job_limits(conf),
                              storage_policy=storage_policy(conf), region=conf.engine.region)
    bus = join_bus(conf, store)
    config = dataclasses.replace(config, sweep_interval_with_bus=conf.bus.sweep_interval)
    running = Engine(store, config, services=services, handoff=CLUSTER_REQUESTS).start()
    notifications = notifications_for(conf, store, owner=running.engine_id,
                                      ttl=config.lease_ttl, poll=config.sweep_interval)
    interpreter.settle()
    console.print(f"engine {running.engine_id} running (concurrency {config.concurrency};"
                  f" bus: {'yes' if bus else 'none'}; notifications:"
                  f" {'yes' if notifications else 'no'})")
    run_until_signalled()
    console.print(f"engine {running.engine_id} stopping: finishing tasks, handing back")
    if notifications is not None:
        notifications.stop()
    running.stop(conf.engine.grace)
    if bus is not None:
        bus.close()
    provisioning_services(services).ssh.close()
    console.print(f"engine {running.engine_id} stopped")


@click.group("workflow")
def workflow() -> None:
    """Start, cancel and show workflows."""


@workflow.command("start")
@click.argument("workflow_type")
@click.option("--params", default="{}", help="The workflow's parameters, as JSON.")
@click.option("--wait", "wait_seconds", type=float, default=None,
              help="Wait up to this many seconds for it to finish.")
@load_option
@click.pass_obj
def workflow_start(obj: Context, workflow_type: str, params: str, wait_seconds: float | None,
                   modules: tuple[str, ...]) -> None:
    load_workflow_types(modules)
    store = obj.store(upgrade=True)
    workflow_id = start_workflow(store, workflow_type, json.loads(params))
    console.print(workflow_id)
    if wait_seconds is not None:
        _print(wait_for(store, workflow_id, wait_seconds).summary())


@workflow.command("cancel")
@click.argument("workflow_id")
@click.option("--reason", default="")
@click.pass_obj
def workflow_cancel(obj: Context, workflow_id: str, reason: str) -> None:
    request_cancel(obj.store(), workflow_id, reason)
    console.print(f"cancel requested for {workflow_id}")


@workflow.command("show")
@click.argument("workflow_id")
@click.pass_obj
def workflow_show(obj: Context, workflow_id: str) -> None:
    _print(load_workflow(obj.store(), workflow_id).summary())


def _print(summary: dict[str, Any]) -> None:
    console.print_json(json.dumps(summary, default=str))
