"""The ``sahara-es`` command."""

from __future__ import annotations

import click


@click.group()
def main() -> None:
    """sahara-es: event-sourced data-processing clusters."""
