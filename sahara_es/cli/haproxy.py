"""``sahara-es haproxy-config``: the HAProxy configuration in front of several API processes."""

from __future__ import annotations

from pathlib import Path

import click

from sahara_es.api.haproxy import BalancerSettings, haproxy_config, parse_backend


@click.command("haproxy-config")
@click.option("--bind", default="0.0.0.0:8386", show_default=True,
              help="address:port HAProxy listens on for the API's clients.")
@click.option("--backend", "backends", multiple=True, metavar="HOST:PORT",
              help="An API process (repeatable): each one a `sahara-es api --port PORT`.")
@click.option("--processes", type=click.IntRange(1, 256), default=None,
              help="Instead of --backend: this many processes on --host, from --first-port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--first-port", type=click.IntRange(1, 65535), default=8387, show_default=True)
@click.option("--check-interval", type=click.IntRange(100, 60000), default=1000,
              show_default=True, help="Milliseconds between health checks of /healthz.")
@click.option("--admin-socket", default="", help="A UNIX socket for HAProxy's runtime API.")
@click.option("--pidfile", default="", help="Where HAProxy writes its process id.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the configuration there (default: print it).")
def haproxy_config_command(bind: str, backends: tuple[str, ...], processes: int | None,
                           host: str, first_port: int, check_interval: int, admin_socket: str,
                           pidfile: str, output: Path | None) -> None:
    """Print HAProxy's configuration for several `sahara-es api` processes: a caller's
    requests kept on one process, health checks on /healthz, a failed request retried on
    another process (doc/api-processes.rst)."""
    if bool(backends) == bool(processes):
        raise click.UsageError("give either --backend (repeatable) or --processes")
    try:
        servers = [parse_backend(b) for b in backends] if backends else [
            (host, first_port + n) for n in range(processes or 0)]
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--backend") from None
    text = haproxy_config(servers, BalancerSettings(
        bind=bind, check_interval_ms=check_interval, admin_socket=admin_socket,
        pidfile=pidfile))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
