"""``sahara-es audit``: who did what, read from the events' metadata, read-only.

A command is an event someone caused: it carries an actor or a source address. Events the
engines write on their own (``--all`` includes them) carry neither.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from sahara_es.cli.context import Context
from sahara_es.cli.history import EventFilter, Timestamp, print_table, short_time, walk_feed
from sahara_es.events import RecordedEvent

COLUMNS = ("time", "actor", "project", "request_id", "source_address", "type", "stream",
           "version")


def audit_row(event: RecordedEvent) -> dict[str, Any]:
    meta = event.metadata
    return {"time": meta.occurred_at.isoformat(), "actor": meta.actor,
            "project": meta.project_id, "request_id": meta.correlation_id,
            "source_address": meta.source_address, "type": event.type,
            "stream": event.stream_id, "version": event.version}


def audit_rows(events: Iterator[RecordedEvent], keep: EventFilter,
               everything: bool) -> Iterator[dict[str, Any]]:
    for event in events:
        meta = event.metadata
        if (everything or meta.actor or meta.source_address) and keep(event):
            yield audit_row(event)


@click.command("audit")
@click.option("--project", help="Only this project's commands.")
@click.option("--actor", help="Only this actor's commands.")
@click.option("--since", type=Timestamp(), help="From this time (ISO 8601, UTC by default).")
@click.option("--until", type=Timestamp(), help="Up to this time.")
@click.option("--all", "everything", is_flag=True,
              help="Include the events engines wrote on their own.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table",
              show_default=True)
@click.pass_obj
def audit(obj: Context, project: str | None, actor: str | None, since: datetime | None,
          until: datetime | None, everything: bool, fmt: str) -> None:
    """Who did what: actor, project, request id, source address, per project and time range."""
    keep = EventFilter(since=since, until=until, project=project, actor=actor)
    rows = audit_rows(walk_feed(obj.store()), keep, everything)
    if fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    else:
        table = Table(title="audit")
        for column in ("time", "actor", "project", "request", "from", "type", "stream"):
            table.add_column(column, overflow="fold", no_wrap=column == "time")
        for row in rows:
            table.add_row(short_time(datetime.fromisoformat(row["time"])),
                          *(row[c] or "" for c in COLUMNS[1:6]),
                          f"{row['stream']} v{row['version']}")
        print_table(table)
