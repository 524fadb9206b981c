"""``nervemuscle protocol show``: print the grading protocol in force."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
import yaml

from nervemuscle.protocol import load_protocol


def register(app: typer.Typer) -> None:
    protocol_app = typer.Typer(help="The grading protocol (scales, references, thresholds).", no_args_is_help=True)

    @protocol_app.command("show")
    def show(protocol: Optional[Path] = typer.Option(None, "--protocol", readable=False,
                                                     help="YAML overriding the defaults.")) -> None:
        """Print the protocol in force (defaults merged with --protocol)."""
        typer.echo(yaml.safe_dump(load_protocol(protocol), sort_keys=False))

    app.add_typer(protocol_app, name="protocol")
