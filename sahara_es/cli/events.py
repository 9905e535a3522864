"""``sahara-es events``: list, show and follow events; export and import them as JSON lines."""

from __future__ import annotations

import collections
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click
from rich.table import Table

from sahara_es.cli.context import Context, console
from sahara_es.cli.history import (
    KINDS,
    EventFilter,
    dump,
    filter_options,
    from_record,
    print_table,
    select,
    short_time,
    stream_of,
    to_record,
    walk_feed,
)
from sahara_es.events import NewEvent, RecordedEvent
from sahara_es.store import ConcurrencyConflict, Store
from sahara_es.store.base import MAX_APPEND_BATCH


@click.group("events")
def events() -> None:
    """A stream's events, the live feed, and moving histories between stores."""


kind_option = click.option(
    "--kind", type=click.Choice(KINDS),
    help="ID is a bare id of this kind: --kind workflow 42 is the stream workflow-42.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="One JSON object per event (JSON lines).")


def _table(title: str, rows: Iterable[RecordedEvent], with_data: bool) -> Table:
    # One stream's events (with their data) need no stream column.
    table = Table(title=title)
    columns = ("v", "time", "type", "actor", "engine", "data") if with_data else (
        "stream", "v", "time", "type", "actor", "engine")
    for column in columns:
        table.add_column(column, no_wrap=column in ("time", "v", "type"),
                         overflow="fold" if column in ("stream", "data") else "ellipsis")
    for event in rows:
        meta = event.metadata
        cells = [str(event.version), short_time(meta.occurred_at), event.type,
                 meta.actor or "", meta.engine_id or ""]
        if with_data:
            cells.append(json.dumps(event.data, default=str))
        else:
            cells.insert(0, event.stream_id)
        table.add_row(*cells)
    return table


def _emit(title: str, rows: Iterator[RecordedEvent], as_json: bool, with_data: bool) -> None:
    if as_json:
        for event in rows:
            click.echo(dump({**to_record(event), "position": event.position or None}))
    else:
        print_table(_table(title, rows, with_data))


@events.command("list")
@click.argument("ident", required=False)
@kind_option
@click.option("--category", help="Every stream of this category (cluster, workflow...).")
@filter_options
@json_option
@click.pass_obj
def events_list(obj: Context, ident: str | None, kind: str | None, category: str | None,
                types: tuple[str, ...], since: datetime | None, until: datetime | None,
                project: str | None, actor: str | None, engine: str | None,
                as_json: bool) -> None:
    """Events of one stream (ID), of a --category, or of the whole store, filtered."""
    stream = stream_of(ident, kind) if ident else None
    keep = EventFilter(types, since, until, project, actor, engine)
    rows = (e for e in select(obj.store(), stream, category) if keep(e))
    _emit(stream or category or "every stream", rows, as_json, with_data=False)


@events.command("show")
@click.argument("ident")
@kind_option
@filter_options
@json_option
@click.pass_obj
def events_show(obj: Context, ident: str, kind: str | None, types: tuple[str, ...],
                since: datetime | None, until: datetime | None, project: str | None,
                actor: str | None, engine: str | None, as_json: bool) -> None:
    """One stream's events with their data."""
    stream = stream_of(ident, kind)
    keep = EventFilter(types, since, until, project, actor, engine)
    rows = (e for e in obj.store().read(stream) if keep(e))
    _emit(stream, rows, as_json, with_data=True)


@events.command("tail")
@click.option("-f", "--follow", is_flag=True, help="Keep printing events as they come.")
@click.option("-n", "--lines", "count", type=int, default=10, show_default=True,
              help="Start with the last N events.")
@click.option("--from-start", is_flag=True, help="Start at the beginning of the feed.")
@click.option("--after", help="Start after this feed position.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path),
              help="Start after the position saved in this file, and save each new one.")
@click.option("--limit", type=int, help="Stop after printing this many events.")
@click.option("--poll", type=float, default=0.5, show_default=True,
              help="Seconds between two reads of the feed when following.")
@filter_options
@json_option
@click.pass_obj
def events_tail(obj: Context, follow: bool, count: int, from_start: bool, after: str | None,
                checkpoint: Path | None, limit: int | None, poll: float,
                types: tuple[str, ...], since: datetime | None, until: datetime | None,
                project: str | None, actor: str | None, engine: str | None,
                as_json: bool) -> None:
    """The global feed: its last events, or (-f) every event as it is appended."""
    store = obj.store()
    keep = EventFilter(types, since, until, project, actor, engine)
    backlog: list[RecordedEvent] = []
    if checkpoint is not None and checkpoint.exists():
        after = checkpoint.read_text().strip() or None
    elif not from_start and after is None:
        # The feed has no "last N": walk it keeping N, one page in memory at a time.
        last: collections.deque[RecordedEvent] = collections.deque(maxlen=max(count, 1))
        last.extend(walk_feed(store))
        backlog = list(last)[-count:] if count > 0 else []
        after = last[-1].position if last else None
    printed = 0
    for event in _follow(store, after, backlog, follow, poll):
        if keep(event):
            _print_event(event, as_json)
            printed += 1
        if checkpoint is not None:
            checkpoint.write_text(event.position)
        if limit is not None and printed >= limit:
            return


def _follow(store: Store, after: str | None, backlog: list[RecordedEvent], follow: bool,
            poll: float) -> Iterator[RecordedEvent]:
    yield from backlog
    while True:
        batch = store.read_feed(after, limit=500)
        yield from batch
        if batch:
            after = batch[-1].position
        if len(batch) < 500:
            if not follow:
                return
            time.sleep(poll)


def _print_event(event: RecordedEvent, as_json: bool) -> None:
    if as_json:
        click.echo(dump({**to_record(event), "position": event.position}))
    else:
        meta = event.metadata
        console.print(f"{short_time(meta.occurred_at)}  {event.stream_id} v{event.version}"
                      f"  [bold]{event.type}[/bold]  {meta.actor or meta.engine_id or ''}",
                      highlight=False)
    sys.stdout.flush()


# -- moving histories -----------------------------------------------------------------------


@events.command("export")
@click.argument("ident", required=False)
@kind_option
@click.option("--category", help="Every stream of this category.")
@click.option("-o", "--output", type=click.File("w"), default="-",
              help="File to write (default: standard output).")
@click.pass_obj
def events_export(obj: Context, ident: str | None, kind: str | None, category: str | None,
                  output: IO[str]) -> None:
    """Write a stream, a category or (by default) the whole store as JSON lines.

    Each line is one event: stream_id, version, event_id, type, schema_version, data and
    metadata; every stream's events come in version order.
    """
    stream = stream_of(ident, kind) if ident else None
    written = 0
    for event in select(obj.store(), stream, category):
        output.write(dump(to_record(event)) + "\n")
        written += 1
    click.echo(f"exported {written} events", err=True)


@events.command("import")
@click.option("-i", "--input", "source", type=click.File("r"), default="-",
              help="JSON lines from `events export` (default: standard input).")
@click.pass_obj
def events_import(obj: Context, source: IO[str]) -> None:
    """Append exported events with their ids, versions and metadata.

    An event already stored at its version with the same id is skipped, so importing twice
    changes nothing; a different event at that version is a conflict (exit status 1).
    """
    result = import_events(obj.store(upgrade=True), (json.loads(line) for line in source
                                                     if line.strip()))
    for conflict in result.conflicts:
        console.print(f"[red]conflict[/red] {conflict}", highlight=False)
    click.echo(f"imported {result.appended} events, skipped {result.skipped} already there,"
               f" {len(result.conflicts)} conflicts", err=True)
    if result.conflicts:
        sys.exit(1)


@dataclass
class ImportResult:
    appended: int = 0
    skipped: int = 0
    conflicts: list[str] = field(default_factory=list)


def import_events(store: Store, records: Iterable[dict[str, Any]]) -> ImportResult:
    """Append records in order, batching each stream's consecutive events."""
    result = ImportResult()
    batch: list[tuple[str, int, NewEvent]] = []
    for record in records:
        item = from_record(record)
        if batch and (item[0] != batch[0][0] or item[1] != batch[-1][1] + 1
                      or len(batch) == MAX_APPEND_BATCH):
            _import_batch(store, batch, result)
            batch = []
        batch.append(item)
    if batch:
        _import_batch(store, batch, result)
    return result


def _import_batch(store: Store, batch: list[tuple[str, int, NewEvent]],
                  result: ImportResult) -> None:
    stream_id, first, _ = batch[0]
    # Asked first: an append finding these very events at these versions reports success.
    if store.stream_version(stream_id) < first:
        try:
            store.append(stream_id, [event for _, _, event in batch], first - 1)
            result.appended += len(batch)
            return
        except ConcurrencyConflict:
            pass
    # Part of it, or all of it, is there already (a second import): one event at a time.
    for _, version, event in batch:
        stored = next(iter(store.read(stream_id, version, to_version=version)), None)
        if stored is not None:
            if stored.event_id == event.event_id:
                result.skipped += 1
            else:
                result.conflicts.append(
                    f"{stream_id} v{version}: stored event {stored.event_id} ({stored.type}),"
                    f" imported {event.event_id} ({event.type})")
            continue
        try:
            store.append(stream_id, [event], version - 1)
            result.appended += 1
        except ConcurrencyConflict as conflict:
            result.conflicts.append(f"{stream_id} v{version}: the stream is at"
                                    f" v{conflict.actual_version}, a gap before this event")
