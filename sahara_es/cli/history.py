"""Reading a whole history without holding it: the feed page by page, events as JSON records,
the filters the audit commands share, and how their tables are printed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from sahara_es.cli.context import console
from sahara_es.events import Metadata, NewEvent, RecordedEvent
from sahara_es.store import Store

FEED_PAGE = 500
KINDS = ("cluster", "job", "workflow", "template", "taskrun", "cancel")


def stream_of(ident: str, kind: str | None) -> str:
    """``--kind workflow 42`` names ``workflow-42``; without a kind, the id is the stream."""
    return f"{kind}-{ident}" if kind else ident


def walk_feed(store: Store, after: str | None = None, *,
              page: int = FEED_PAGE) -> Iterator[RecordedEvent]:
    """Every event in the feed after ``after``, one page in memory at a time."""
    while True:
        batch = store.read_feed(after, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1].position


def walk_store(store: Store) -> Iterator[RecordedEvent]:
    """Every event of every stream exactly once, each stream in version order.

    The feed may deliver an event twice, or (on Cassandra) reveal a stream's event only through
    a later one, so each stream's last version seen is kept (ids only, never events): a repeat
    is dropped, a gap is filled by reading the stream, and the tail the feed has not settled
    yet is read from the streams at the end.
    """
    seen: dict[str, int] = {}
    for event in walk_feed(store):
        last = seen.get(event.stream_id, 0)
        if event.version <= last:
            continue
        if event.version > last + 1:
            yield from store.read(event.stream_id, last + 1, to_version=event.version - 1)
        seen[event.stream_id] = event.version
        yield event
    for stream_id, last in seen.items():
        yield from store.read(stream_id, last + 1)


def read_streams(store: Store, streams: Iterable[str]) -> Iterator[RecordedEvent]:
    for stream_id in streams:
        yield from store.read(stream_id)


def select(store: Store, stream: str | None, category: str | None) -> Iterator[RecordedEvent]:
    """One stream, every stream of a category, or the whole store."""
    if stream:
        return store.read(stream)
    if category:
        return read_streams(store, store.list_streams(category))
    return walk_store(store)


# -- records: one event as one JSON object -------------------------------------------------


def to_record(event: RecordedEvent) -> dict[str, Any]:
    """The portable form of an event: everything but its feed position, which is the store's."""
    return {
        "stream_id": event.stream_id,
        "version": event.version,
        "event_id": str(event.event_id),
        "type": event.type,
        "schema_version": event.schema_version,
        "data": event.data,
        "metadata": event.metadata.to_dict(),
    }


def from_record(record: dict[str, Any]) -> tuple[str, int, NewEvent]:
    """(stream id, version, the event as it is appended again, same id and metadata)."""
    event = NewEvent(
        type=record["type"],
        data=record["data"],
        schema_version=record["schema_version"],
        metadata=Metadata.from_dict(record["metadata"]),
        event_id=uuid.UUID(record["event_id"]),
    )
    return record["stream_id"], int(record["version"]), event


def dump(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


# -- filters --------------------------------------------------------------------------------


class Timestamp(click.ParamType[datetime]):
    """An ISO 8601 time; without a zone, UTC."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        else:
            try:
                parsed = datetime.fromisoformat(str(value))
            except ValueError:
                self.fail(f"{value!r} is not an ISO 8601 time", param, ctx)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EventFilter:
    types: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None
    actor: str | None = None
    engine: str | None = None

    def __call__(self, event: RecordedEvent) -> bool:
        meta = event.metadata
        return ((not self.types or event.type in self.types)
                and (self.since is None or meta.occurred_at >= self.since)
                and (self.until is None or meta.occurred_at <= self.until)
                and (self.project is None or meta.project_id == self.project)
                and (self.actor is None or meta.actor == self.actor)
                and (self.engine is None or meta.engine_id == self.engine
                     or event.data.get("engine") == self.engine))


def filter_options(command: Any) -> Any:
    """``--type``, ``--since``, ``--until``, ``--project``, ``--actor``, ``--engine``."""
    for option in reversed([
        click.option("--type", "types", multiple=True, help="Only events of this type."),
        click.option("--since", type=Timestamp(), help="Only events at or after this time."),
        click.option("--until", type=Timestamp(), help="Only events at or before this time."),
        click.option("--project", help="Only events of this project."),
        click.option("--actor", help="Only events this actor caused."),
        click.option("--engine", help="Only events this engine wrote or names."),
    ]):
        command = option(command)
    return command


def short_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


# -- tables ---------------------------------------------------------------------------------


def print_table(table: Table) -> None:
    """The table as rich draws it on a terminal; elsewhere (a file, a pipe, a pager) as
    tab-separated lines, every value whole: the title as a ``# `` line, the header, then one
    line a row. Drawn for a terminal it does not have, rich would fit the table into 80
    columns and fold a stream id into slivers."""
    if console.is_terminal:
        console.print(table)
        return
    if table.title:
        click.echo(f"# {_plain(table.title)}")
    click.echo("\t".join(_plain(column.header) for column in table.columns))
    for row in zip(*(list(column.cells) for column in table.columns), strict=True):
        click.echo("\t".join(_plain(cell) for cell in row))


def _plain(cell: RenderableType) -> str:
    """A cell's text as the table shows it (markup applied), on one line: a tab or a line
    break in it is written ``\\t`` or ``\\n`` (JSON values have none: they are escaped)."""
    if isinstance(cell, str):
        cell = console.render_str(cell)
    text = cell.plain if isinstance(cell, Text) else str(cell)
    return text.replace("\t", "\\t").replace("\r\n", "\\n").replace("\n", "\\n")
