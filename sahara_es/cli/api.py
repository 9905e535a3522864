"""``sahara-es api`` serves the v2 API; ``sahara-es token`` makes and revokes its tokens."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

import click
from werkzeug.serving import make_server

from sahara_es.api.app import DEFAULT_PORT, ApiConfig, stop_app
from sahara_es.api.compose import STORE_QUOTAS, app_for
from sahara_es.cli.context import Context, console
from sahara_es.commands import tokens
from sahara_es.commands.errors import CommandError

auth_option = click.option("--auth", type=click.Choice(["token", "keystone", "noauth"]),
                           default="token", show_default=True, envvar="SAHARA_ES_AUTH",
                           help="How callers are identified (noauth: development only).")


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="SAHARA_ES_API_HOST")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int,
              envvar="SAHARA_ES_API_PORT")
@click.option("--workers", default=1, show_default=True, type=int,
              help="More than one runs gunicorn with that many worker processes.")
@auth_option
@click.option("--plugins", default=None, envvar="SAHARA_ES_PLUGINS",
              help="Comma-separated plugins to enable (default: every installed one but"
                   " fake, which must be named to be enabled).")
@click.option("--data-dir", type=click.Path(), default=None, envvar="SAHARA_ES_DATA_DIR",
              help="The state folder: the default store (without --store) is its store.db,"
                   " and file:// job binaries are served from its job-binaries/<project>/"
                   " (default: $XDG_DATA_HOME/sahara-es).")
@click.pass_obj
def api(obj: Context, host: str, port: int, workers: int, auth: str,
        plugins: str | None, data_dir: str | None) -> None:
    """Serve the Sahara v2 API on the store."""
    state = str(obj.use_data_dir(data_dir))
    obj.store(upgrade=True)
    if workers > 1:
        env = {**os.environ, "SAHARA_ES_STORE": obj.url, "SAHARA_ES_AUTH": auth,
               "SAHARA_ES_DATA_DIR": state}
        if plugins:
            env["SAHARA_ES_PLUGINS"] = plugins
        os.execvpe(sys.executable, [sys.executable, "-m", "gunicorn", "--workers", str(workers),
                                    "--threads", "4", "--bind", f"{host}:{port}",
                                    "--log-level", "warning",
                                    "sahara_es.api.wsgi:application"], env)
    serve(obj, host, port, auth, plugins, state)


def serve(obj: Context, host: str, port: int, auth: str, plugins: str | None,
          data_dir: str) -> None:
    config = ApiConfig(store_url=obj.url, auth=auth, data_dir=data_dir,
                       plugins=plugins.split(",") if plugins else None, engines=True)
    app = app_for(config, store=obj.store(), quota=STORE_QUOTAS)
    server = make_server(host, port, app, threaded=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    console.print(f"sahara-es API on http://{host}:{server.port}/v2 (auth: {auth},"
                  f" store: {obj.url})", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        stop_app(app)


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
