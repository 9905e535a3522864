"""``sahara-es job logs ID`` and ``sahara-es replay job ID``: a job's output and its history,
read from the store (an operator's view: any project's job)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from sahara_es.cli.context import Context, console
from sahara_es.cli.history import print_table, short_time
from sahara_es.cli.replay import replay, replay_workflow
from sahara_es.commands import resources
from sahara_es.edp.manager import workflow_id
from sahara_es.events import registry
from sahara_es.events import resources as ev
from sahara_es.events.resources import Doc, Kind
from sahara_es.store import Store


def _job(store: Store, job_id: str) -> Doc:
    doc = resources.load(store, Kind.JOB, job_id).doc
    if doc is None:
        raise click.ClickException(f"no job {job_id}")
    return doc


@click.group("job")
def job() -> None:
    """Jobs (EDP executions)."""


@job.command("logs")
@click.argument("job_id")
@click.option("--stream", type=click.Choice(["stdout", "stderr", "both"]), default="both",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def job_logs(obj: Context, job_id: str, stream: str, as_json: bool) -> None:
    """The last bytes of the job's stdout and stderr, as its job engine last read them."""
    doc = _job(obj.store(), job_id)
    logs = doc.get("logs") or {}
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "status": doc["info"]["status"],
                               "stdout": logs.get("stdout", ""),
                               "stderr": logs.get("stderr", ""),
                               "captured_at": logs.get("captured_at")}))
        return
    if not logs:
        console.print(f"job {job_id} ({doc['info']['status']}): no output captured yet",
                      highlight=False)
        return
    for name in ("stdout", "stderr"):
        if stream in (name, "both"):
            if stream == "both":
                click.echo(f"==> {name} <==")
            click.echo(logs.get(name, ""), nl=not logs.get(name, "").endswith("\n"))


def job_timeline(store: Store, job_id: str) -> list[dict[str, Any]]:
    """The job's own events: when it was created, started, cancelled, ended, and why."""
    rows = []
    for recorded in store.read(Kind.JOB.stream(job_id)):
        event = registry.decode(recorded)
        what = recorded.type
        detail = ""
        match event:
            case ev.JobStatusChanged():
                what = event.status
                detail = event.description or (f"engine job {event.engine_job_id}"
                                               if event.engine_job_id else "")
            case ev.JobCancelRequested():
                what, detail = "TOBEKILLED", f"cancel requested (was {event.previous_status})"
            case ev.JobCancelFailed():
                detail = event.reason
            case ev.JobLogsCaptured():
                detail = f"{len(event.stdout)} + {len(event.stderr)} characters"
        rows.append({"version": recorded.version, "at": short_time(recorded.metadata.occurred_at),
                     "event": what, "by": recorded.metadata.actor or "", "detail": detail})
    return rows


@replay.command("job")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_obj
def replay_job(obj: Context, job_id: str, as_json: bool) -> None:
    """The job's history: its own events, then its workflow's timeline (who followed it)."""
    store = obj.store()
    doc = _job(store, job_id)
    timeline = job_timeline(store, job_id)
    flow = replay_workflow(store, workflow_id(job_id))
    if as_json:
        click.echo(json.dumps({"job_id": job_id, "status": doc["info"]["status"],
                               "events": timeline,
                               "workflow": flow.to_dict() if flow.state.version else None},
                              default=str, sort_keys=True))
        return
    console.print(f"job {job_id}: [bold]{doc['info']['status']}[/bold]", highlight=False)
    table = Table(title="job events")
    for column in ("v", "time", "event", "by", "detail"):
        table.add_column(column)
    for row in timeline:
        table.add_row(str(row["version"]), row["at"], row["event"], row["by"], row["detail"])
    print_table(table)
    if flow.state.version == 0:
        console.print("no workflow ran it (yet)")
        return
    steps = Table(title=f"workflow {workflow_id(job_id)}")
    for column in ("task", "attempt", "engine", "outcome"):
        steps.add_column(column)
    for attempt in flow.timeline.rows():
        steps.add_row(attempt.task_id, str(attempt.attempt), attempt.engine or "",
                      attempt.outcome + (f": {attempt.error}" if attempt.error else ""))
    print_table(steps)
    for owner in flow.timeline.owners:
        console.print(f"  owned by {owner.engine} (epoch {owner.epoch}) from"
                      f" {short_time(owner.at)}", highlight=False)
