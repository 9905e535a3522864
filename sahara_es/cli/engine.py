"""``sahara-es engine`` (run one engine) and ``sahara-es workflow`` (start, cancel, show)."""

from __future__ import annotations

import importlib
import json
import logging
import os
from typing import Any

import click
from stevedore import ExtensionManager

from sahara_es.cli.context import (
    Context,
    console,
    default_nodes_dir,
    local_provider_options,
    node_network_isolation_option,
    nodes_dir_option,
    run_until_signalled,
)
from sahara_es.edp.manager import JobLimits
from sahara_es.engine import (
    Engine,
    EngineConfig,
    load_workflow,
    request_cancel,
    start_workflow,
    wait_for,
)
from sahara_es.infra.base import HostInventory
from sahara_es.provisioning.requests import CLUSTER_REQUESTS
from sahara_es.provisioning.services import StepLimits, build_services, provisioning_services


def load_workflow_types(modules: tuple[str, ...]) -> None:
    """Import what registers task and workflow types: entry points, then ``--load`` modules."""
    ExtensionManager("sahara_es.workflows", invoke_on_load=False)
    for module in modules:
        importlib.import_module(module)


def parse_hosts(ctx: click.Context, param: click.Parameter,
                value: str | None) -> list[HostInventory] | None:
    """``COUNT`` hosts of 8 vCPUs and 16 GB, or ``NAME=VCPUS:RAM_MB,...``."""
    if not value:
        return None
    if value.isdigit():
        return [HostInventory(f"local-host-{i}", 8, 16384) for i in range(1, int(value) + 1)]
    hosts = []
    for item in value.split(","):
        name, _, size = item.partition("=")
        vcpus, _, ram = size.partition(":")
        if not (name and vcpus.isdigit() and ram.isdigit()):
            raise click.BadParameter(f"{item!r}: give NAME=VCPUS:RAM_MB")
        hosts.append(HostInventory(name, int(vcpus), int(ram)))
    return hosts


hosts_option = click.option(
    "--hosts", callback=parse_hosts, default=None, metavar="COUNT|NAME=VCPUS:RAM_MB,...",
    help="The hypervisors local instances are placed on (default: 3 of 8 vCPUs, 16 GB).")

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
@click.option("--id", "engine_id", envvar="SAHARA_ES_ENGINE_ID", default="",
              help="This engine's id (default: a fresh one).")
@click.option("--region", envvar="SAHARA_ES_REGION", default=None)
@click.option("--concurrency", type=int, default=8, show_default=True,
              help="Tasks run at once, over all workflows.")
@click.option("--max-workflows", type=int, default=64, show_default=True)
@click.option("--project-share", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.5,
              show_default=True,
              help="The part of the slots and workflows one project may hold (1.0 for an"
                   " engine that serves one project).")
@click.option("--reclaim-slots", type=click.IntRange(0), default=2, show_default=True,
              help="Slots beyond --concurrency that only deletes and rollbacks use.")
@click.option("--lease-ttl", type=float, default=10.0, show_default=True,
              help="Seconds before another engine may take this one's workflows.")
@click.option("--sweep-interval", type=float, default=0.2, show_default=True)
@click.option("--grace", type=float, default=30.0, show_default=True,
              help="On SIGTERM, seconds to let running tasks finish before handing back.")
@click.option("--data-dir", type=click.Path(), default=None, envvar="SAHARA_ES_DATA_DIR",
              help="The service's state folder: the default store (without --store) is its"
                   " store.db (default: $XDG_DATA_HOME/sahara-es).")
@nodes_dir_option
@click.option("--provider", default="local", show_default=True,
              help="The infrastructure provider clusters are built on.")
@node_network_isolation_option
@click.option("--step-timeout", type=click.FloatRange(0.0, min_open=True), default=600.0,
              show_default=True,
              help="Seconds a node step may run when neither --step-timeout-for nor its task"
                   " type says otherwise; a cluster's configs never lengthen it.")
@click.option("--step-timeout-for", "step_timeouts", multiple=True, metavar="TYPE=SECONDS",
              callback=lambda _ctx, _param, value: parse_step_timeouts(value),
              help="A node step type's own timeout, e.g. spark.start-worker=300 (repeatable).")
@click.option("--step-timeout-max", type=click.FloatRange(0.0, min_open=True), default=3600.0,
              show_default=True, help="No node step runs longer, whatever else says so.")
@click.option("--cancel-grace", type=click.FloatRange(0.0), default=30.0, show_default=True,
              help="Seconds a delete waits for the create or scale it cancels to roll back"
                   " before it deletes the instances anyway.")
@click.option("--job-poll-interval", type=click.FloatRange(0.05), default=1.0,
              show_default=True, help="Seconds between two looks at a running job.")
@click.option("--job-cancel-timeout", type=click.FloatRange(1.0), default=60.0,
              show_default=True,
              help="Seconds a job's cancel may take before it is reported as not done.")
@click.option("--nice", type=int, default=10, show_default=True,
              help="Scheduling niceness: engines do batch work and yield the CPU to API"
                   " processes on the same machine (0 to compete equally).")
@hosts_option
@load_option
@click.pass_obj
def engine(obj: Context, engine_id: str, region: str | None, concurrency: int,
           max_workflows: int, project_share: float, reclaim_slots: int, lease_ttl: float,
           sweep_interval: float, grace: float,
           data_dir: str | None, nodes_dir: str | None, provider: str,
           node_network_isolation: bool, step_timeout: float,
           step_timeouts: dict[str, float], step_timeout_max: float, cancel_grace: float,
           job_poll_interval: float, job_cancel_timeout: float, nice: int,
           hosts: list[HostInventory] | None, modules: tuple[str, ...]) -> None:
    """Run one workflow engine until SIGTERM or SIGINT; then hand its workflows back. Its
    handoff starts the workflows cluster commands ask for (one engine's at a time)."""
    if nice:
        os.nice(nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    load_workflow_types(modules)
    config = EngineConfig(engine_id=engine_id, region=region, concurrency=concurrency,
                          max_workflows=max_workflows, project_share=project_share,
                          reclaim_slots=reclaim_slots, lease_ttl=lease_ttl,
                          sweep_interval=sweep_interval)
    obj.use_data_dir(data_dir)
    store = obj.store(upgrade=True)
    services = build_services(store, root=nodes_dir or default_nodes_dir(), provider=provider,
                              hosts=hosts, provider_options=local_provider_options(
                                  provider, node_network_isolation),
                              step_limits=StepLimits(default=step_timeout,
                                                     maximum=step_timeout_max,
                                                     per_step=step_timeouts,
                                                     cancel_grace=cancel_grace),
                              job_limits=JobLimits(poll_interval=job_poll_interval,
                                                   cancel_timeout=job_cancel_timeout))
    running = Engine(store, config, services=services, handoff=CLUSTER_REQUESTS).start()
    console.print(f"engine {running.engine_id} running (concurrency {concurrency})")
    run_until_signalled()
    console.print(f"engine {running.engine_id} stopping: finishing tasks, handing back")
    running.stop(grace)
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
