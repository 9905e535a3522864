"""``sahara-es projections``: rebuild read models from zero, verify them, bring them up to date.

``rebuild`` and ``update`` write (the projection's rows); ``verify`` writes only a scratch
generation, dropped when it is done, and exits 1 on any difference. ``update`` writes the live
generation, which the projector writes too: it takes the projector's lease and fences its
writes with it, so it refuses to run beside a running projector (doc/projections.rst).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from sahara_es.cli.context import Context, console, run_until_signalled
from sahara_es.projections import PROJECTIONS, NotBuilt, Projection, rebuild, update, verify
from sahara_es.projections.base import APPLIED
from sahara_es.projections.projector import PROJECTOR_LEASE
from sahara_es.store import LeaseHeld, LeaseLost

UPDATE_LEASE_TTL = 600.0
"""How long ``projections update`` holds the projector's lease: past it, a projector may take
over and the update's later writes are refused."""

name_argument = click.argument("names", nargs=-1, type=click.Choice(sorted(PROJECTIONS)))


def chosen(names: tuple[str, ...]) -> list[Projection]:
    return [PROJECTIONS[name]() for name in (names or sorted(PROJECTIONS))]


@contextmanager
def feed_progress(label: str) -> Iterator[Callable[[int], None]]:
    """A bar over the feed; its length is unknown until the end, so it pulses and counts."""
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed:,.0f} events"), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.advance(task, n)
        progress.update(task, total=progress.tasks[0].completed)


@click.group("projections")
def projections() -> None:
    """Read models built from the feed."""


@projections.command("rebuild")
@name_argument
@click.pass_obj
def projections_rebuild(obj: Context, names: tuple[str, ...]) -> None:
    """Build each projection from zero into a fresh generation, then make it live."""
    store = obj.store(upgrade=True)
    for projection in chosen(names):
        with feed_progress(f"rebuilding {projection.name}") as progress:
            generation, read = rebuild(store, projection, progress)
        console.print(f"{projection.name}: generation {generation} is live"
                      f" ({read} feed events applied)", highlight=False)


@projections.command("update")
@name_argument
@click.pass_obj
def projections_update(obj: Context, names: tuple[str, ...]) -> None:
    """Apply the feed's new events to each live projection (building it if needed), holding
    the projector's lease: not while a projector runs (it keeps them up to date)."""
    import os
    import uuid

    store = obj.store(upgrade=True)
    owner = f"projections-update-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        lease = store.acquire_lease(PROJECTOR_LEASE, owner, UPDATE_LEASE_TTL)
    except LeaseHeld as held:
        raise click.ClickException(f"a projector is running ({held.owner}) and keeps the"
                                   " projections up to date") from None
    try:
        for projection in chosen(names):
            generation, read = update(store, projection, fence=lease)
            console.print(f"{projection.name}: generation {generation},"
                          f" {read} new feed events applied", highlight=False)
    except LeaseLost as error:
        raise click.ClickException(f"a projector took over, this update stopped: {error}"
                                   ) from None
    finally:
        store.release_lease(lease)


@projections.command("verify")
@name_argument
@click.option("--json", "as_json", is_flag=True, help="One JSON object per difference.")
@click.pass_obj
def projections_verify(obj: Context, names: tuple[str, ...], as_json: bool) -> None:
    """Rebuild each projection into a scratch generation, up to the point the live one has
    reached, and compare the two row by row; exit 1 on any difference."""
    store = obj.store()
    differences = 0
    for projection in chosen(names):
        found = 0
        try:
            with feed_progress(f"verifying {projection.name}") as progress:
                for difference in verify(store, projection, progress):
                    found += 1
                    if as_json:
                        click.echo(json.dumps({"projection": projection.name,
                                               **difference.__dict__}, default=str))
                    else:
                        fields = {k: v for k, v in difference.fields.items() if k != APPLIED}
                        console.print(f"[red]{difference.kind}[/red] {projection.name}"
                                      f" {difference.key} {json.dumps(fields, default=str)}",
                                      highlight=False)
        except NotBuilt as error:
            raise click.ClickException(f"{error}: run `sahara-es projections rebuild`") from None
        differences += found
        if not as_json:
            console.print(f"{projection.name}: {found} differences", highlight=False)
    if differences:
        sys.exit(1)


@projections.command("show")
@click.argument("name", type=click.Choice(sorted(PROJECTIONS)))
@click.argument("key", required=False)
@click.pass_obj
def projections_show(obj: Context, name: str, key: str | None) -> None:
    """The live rows of a projection (or one row), as JSON lines."""
    store = obj.store()
    generation = store.live_generation(name)
    if generation is None:
        raise click.ClickException(f"projection {name} was never built")
    rows = ([(key, store.get_row(name, generation, key))] if key
            else store.scan_rows(name, generation))
    for row_key, doc in rows:
        if doc is not None:
            click.echo(json.dumps({"key": row_key, **{k: v for k, v in doc.items()
                                                      if k != APPLIED}}, default=str))


@click.command("projector")
@click.option("--nice", type=int, default=10, show_default=True,
              help="Scheduling niceness: keeping read models up to date is background work.")
@click.option("--poll", type=float, default=0.2, show_default=True,
              help="Seconds between looks at the feed.")
@click.pass_obj
def projector(obj: Context, nice: int, poll: float) -> None:
    """Keep the API's read models up to date, until SIGTERM or SIGINT: the process to run
    beside API workers started with SAHARA_ES_PROJECTOR=0 (one writes at a time, by lease)."""
    import os
    import uuid

    from sahara_es.projections import Projector

    if nice:
        os.nice(nice)
    store = obj.store(upgrade=True)
    # Every registered projection: `projections verify` checks them all.
    running = Projector(store, owner=f"projector-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                        poll=poll).start()
    console.print(f"projector {running.owner} running")
    run_until_signalled()
    running.stop()
    running.release()
