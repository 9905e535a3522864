"""``sahara-es api`` serves the v2 API; ``sahara-es token`` makes and revokes its tokens."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from oslo_config import cfg
from werkzeug.serving import make_server

from sahara_es.api.app import ApiConfig, stop_app
from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.cli import interpreter
from sahara_es.cli.bus import announced, bus_configured
from sahara_es.cli.config import (
    CONFIG_DIRS_ENV,
    CONFIG_FILES_ENV,
    TRANSPORT_URL_ENV,
    apply_flags,
    environment_of,
    flag,
    messaging_options,
)
from sahara_es.cli.context import Context, console
from sahara_es.cli.settings import api_config
from sahara_es.commands import tokens
from sahara_es.commands.errors import CommandError

auth_option = flag("api", "auth_strategy", "--auth", "auth")


@click.command("api")
@flag("api", "host")
@flag("api", "port")
@flag("api", "workers")
@auth_option
@flag("api", "plugins", type=str)
@flag("DEFAULT", "data_dir", type=click.Path())
@flag("api", "reads")
@flag("api", "max_read_lag")
@flag("api", "affinity_window")
@click.pass_context
def api(ctx: click.Context, /, **_flags: Any) -> None:
    """Serve the Sahara v2 API on the store."""
    obj: Context = ctx.obj
    conf = apply_flags(ctx, obj.conf)
    state = obj.use_data_dir()
    obj.store(upgrade=True)
    if conf.api.workers > 1:
        conf.set_override("connection", obj.url, "database")
        conf.set_override("data_dir", str(state))
        # gunicorn's workers read the same files, and this process's settings over them
        env = {**os.environ, **environment_of(conf, ("DEFAULT", "database", "api", "edp")),
               CONFIG_FILES_ENV: os.pathsep.join(obj.config_files),
               CONFIG_DIRS_ENV: os.pathsep.join(obj.config_dirs)}
        if bus_configured(conf):  # given by flag, perhaps: the workers join the same bus
            env[TRANSPORT_URL_ENV] = str(messaging_options(conf).transport_url)
        os.execvpe(sys.executable, [
            sys.executable, "-m", "gunicorn", "--workers", str(conf.api.workers),
            "--threads", "4", "--bind", f"{conf.api.host}:{conf.api.port}",
            "--log-level", "warning", "sahara_es.cli.wsgi:application"], env)
    serve(obj, conf, state)


def serve(obj: Context, conf: cfg.ConfigOpts, data_dir: Path) -> None:
    host, port = conf.api.host, conf.api.port
    config: ApiConfig = api_config(conf, store_url=obj.url, data_dir=data_dir)
    store, bus = announced(conf, obj.store())
    app = app_for(config, store=store, quota=STORE_QUOTAS)
    server = make_server(host, port, app, threaded=True)
    interpreter.settle()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(f"sahara-es API on http://{host}:{server.port}/v2 (auth:"
                  f" {conf.api.auth_strategy}, store: {obj.url})", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        stop_app(app)
        if bus is not None:
            bus.close()


@click.group("token")
def token() -> None:
    """Tokens of the built-in ``token`` auth mode."""


@token.command("create")
@click.option("--project", required=True, help="The project the token acts in.")
@click.option("--role", "roles", multiple=True, help="A role (admin sees every project).")
@click.option("--user", default=None)
@click.option("--description", default="")
@click.pass_obj
def token_create(obj: Context, project: str, roles: tuple[str, ...], user: str | None,
                 description: str) -> None:
    """Print a new token; only its hash is stored, so keep it."""
    issued = tokens.issue(obj.store(upgrade=True), project, user=user, roles=roles,
                          description=description)
    click.echo(issued.token)
    click.echo(f"token {issued.token_id} for project {project}"
               f"{' with roles ' + ', '.join(roles) if roles else ''}", err=True)


@token.command("revoke")
@click.argument("token_or_id")
@click.option("--reason", default="")
@click.pass_obj
def token_revoke(obj: Context, token_or_id: str, reason: str) -> None:
    """Revoke a token, given itself or its id (effective within seconds)."""
    try:
        token_id = tokens.revoke(obj.store(), token_or_id, reason)
    except CommandError as error:
        raise click.ClickException(error.message) from None
    console.print(f"token {token_id} revoked", highlight=False)
