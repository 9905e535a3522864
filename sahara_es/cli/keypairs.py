"""``sahara-es keypair import|list|delete``: a project's key pairs, which clusters name as
their ``user_keypair_id`` (the local provider's Nova key pairs; an operator's commands)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from sahara_es.cli.context import Context, console
from sahara_es.commands import keypairs
from sahara_es.commands.caller import SYSTEM
from sahara_es.commands.errors import Invalid


@click.group("keypair")
def keypair() -> None:
    """Projects' key pairs: the public keys clusters' nodes accept."""


@keypair.command("import")
@click.option("--project", required=True, help="The project the key pair is for.")
@click.option("--name", required=True, help="Its name: what clusters give as"
                                            " user_keypair_id.")
@click.option("--public-key-file", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An OpenSSH public key (the .pub file).")
@click.pass_obj
def import_keypair(obj: Context, project: str, name: str, public_key_file: Path) -> None:
    """Import (or replace) a key pair's public key; ``update_keypair`` pushes a replaced one
    to the nodes of the clusters that name it."""
    try:
        found = keypairs.import_keypair(obj.store(), SYSTEM, project, name,
                                        public_key_file.read_text(errors="replace"))
    except Invalid as invalid:
        raise click.ClickException(f"{public_key_file}: {invalid}") from None
    console.print(f"key pair {found.name} of project {found.project_id}: {found.fingerprint}",
                  highlight=False)


@keypair.command("list")
@click.option("--project", default=None, help="Only this project's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key pair.")
@click.pass_obj
def list_keypairs(obj: Context, project: str | None, as_json: bool) -> None:
    """The key pairs, with their fingerprints."""
    found = keypairs.list_keypairs(obj.store(), project)
    if as_json:
        for item in found:
            click.echo(json.dumps({"project_id": item.project_id, "name": item.name,
                                   "fingerprint": item.fingerprint,
                                   "public_key": item.public_key}))
        return
    table = Table("project", "name", "fingerprint")
    for item in found:
        table.add_row(item.project_id, item.name, item.fingerprint)
    console.print(table)


@keypair.command("delete")
@click.option("--project", required=True)
@click.option("--name", required=True)
@click.pass_obj
def delete_keypair(obj: Context, project: str, name: str) -> None:
    """Delete a key pair: new clusters can no longer name it; nodes keep the key they have."""
    if not keypairs.delete_keypair(obj.store(), SYSTEM, project, name):
        raise click.ClickException(f"project {project} has no key pair {name}")
    console.print(f"key pair {name} of project {project} deleted", highlight=False)
