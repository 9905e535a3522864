"""``sahara-es store check``: an integrity scan of a whole store, read-only.

It reports version gaps, events whose type (or schema version) this code cannot decode,
streams whose head disagrees with their events, and leases still held for engines that
stopped heartbeating. The exit status is 1 when it found anything.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import click

from sahara_es.cli.context import Context, console
from sahara_es.cli.engine import load_option, load_workflow_types
from sahara_es.cli.history import walk_feed
from sahara_es.events import UnknownEventType, registry
from sahara_es.events import resources as _resource_events  # noqa: F401 - registers its types
from sahara_es.events import tokens as _token_events  # noqa: F401 - registers its types
from sahara_es.events import workflow as _engine_events  # noqa: F401 - registers its types
from sahara_es.store import Lease, Store

KNOWN_CATEGORIES = ("workflow", "taskrun", "cancel", "cluster", "job", "template")
ENGINE_PREFIX = "engine-"


@dataclass(frozen=True)
class Problem:
    kind: str
    subject: str
    detail: str


@dataclass
class Scan:
    streams: int = 0
    events: int = 0
    leases: int = 0


def stream_ids(store: Store, categories: tuple[str, ...]) -> Iterator[str]:
    """Every stream the feed names, and every stream listed in the known categories."""
    seen: set[str] = set()
    for event in walk_feed(store):
        if event.stream_id not in seen:
            seen.add(event.stream_id)
            yield event.stream_id
    for category in sorted({*categories, *(s.split("-", 1)[0] for s in seen)}):
        for stream_id in store.list_streams(category):
            if stream_id not in seen:
                seen.add(stream_id)
                yield stream_id


def check_stream(store: Store, stream_id: str, scan: Scan) -> Iterator[Problem]:
    expected = 1
    for event in store.read(stream_id):
        scan.events += 1
        if event.version != expected:
            yield Problem("gap", stream_id,
                          f"v{event.version} follows v{expected - 1}"
                          f" ({event.version - expected} missing)")
        expected = event.version + 1
        try:
            registry.decode(event)
        except UnknownEventType as error:
            yield Problem("unknown-type", f"{stream_id} v{event.version}", str(error))
        except (TypeError, ValueError) as error:
            yield Problem("undecodable", f"{stream_id} v{event.version}", str(error))
    head = store.stream_version(stream_id)
    if head != expected - 1:
        yield Problem("head", stream_id,
                      f"the stream says v{head}, its events end at v{expected - 1}")


def check_leases(store: Store, scan: Scan, now: float) -> Iterator[Problem]:
    """A lease still held (unexpired) by an engine whose own heartbeat lease is gone or expired:
    its work waits for the lease to run out before anyone may take it over."""
    leases = list(store.list_leases())
    scan.leases = len(leases)
    engines = {lease.owner: lease for lease in leases  # engine-<id>[@<region>], held by <id>
               if lease.resource.startswith(ENGINE_PREFIX)}
    for lease in leases:
        if lease.resource.startswith(ENGINE_PREFIX) or lease.expired(now):
            continue
        if not _is_engine(lease, engines):
            continue
        heartbeat = engines.get(lease.owner)
        if heartbeat is None or heartbeat.expired(now):
            what = "has no heartbeat lease" if heartbeat is None else (
                f"stopped heartbeating {now - heartbeat.expires_at:.1f} s ago")
            yield Problem("stale-lease", lease.resource,
                          f"held by {lease.owner} (epoch {lease.epoch}), which {what};"
                          f" expires in {lease.expires_at - now:.1f} s")


def _is_engine(lease: Lease, engines: dict[str, Lease]) -> bool:
    # Workflow leases are held by engines; other owners (a submitter) never heartbeat.
    return lease.owner in engines or lease.resource.startswith("workflow-")


@click.group("store")
def store_group() -> None:
    """The store as a whole."""


@store_group.command("check")
@click.option("--category", "categories", multiple=True,
              help="Also walk this category's streams (repeatable); the feed's and"
                   f" {', '.join(KNOWN_CATEGORIES)} always are.")
@load_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per problem, then totals.")
@click.pass_obj
def store_check(obj: Context, categories: tuple[str, ...], modules: tuple[str, ...],
                as_json: bool) -> None:
    """Scan for version gaps, unknown event types and stale leases; exit 1 on problems."""
    load_workflow_types(modules)
    store = obj.store()
    scan = Scan()
    found = 0

    def report(problem: Problem) -> None:
        nonlocal found
        found += 1
        if as_json:
            click.echo(json.dumps(asdict(problem)))
        else:
            console.print(f"[red]{problem.kind}[/red] {problem.subject}: {problem.detail}",
                          highlight=False)

    for stream_id in stream_ids(store, (*KNOWN_CATEGORIES, *categories)):
        scan.streams += 1
        for problem in check_stream(store, stream_id, scan):
            report(problem)
    for problem in check_leases(store, scan, time.time()):
        report(problem)
    totals = {**asdict(scan), "problems": found}
    if as_json:
        click.echo(json.dumps({"totals": totals}))
    else:
        verdict = "[red]problems found[/red]" if found else "[green]ok[/green]"
        console.print(f"{verdict}: {scan.streams} streams, {scan.events} events,"
                      f" {scan.leases} leases checked, {found} problems",
                      highlight=False)
    if found:
        sys.exit(1)
