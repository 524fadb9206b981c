"""The ``nervemuscle`` command line: thin wrappers over the library.

Each sub-module ``cli/<command>.py`` defines ``register(app)``; :func:`main` maps expected
failures (:class:`~nervemuscle.errors.NerveMuscleError`) to a one-line message and the documented
exit code, with a traceback only under ``--debug``.
"""
from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from typer.exceptions import TyperException

from nervemuscle._version import __version__
from nervemuscle.errors import EXIT_INTERNAL, EXIT_USAGE, NerveMuscleError

#: Sub-modules that add commands, in help order.
COMMAND_MODULES = ("protocol_cmd", "demo", "analyze", "cohort", "serve", "simulate", "ingest", "muscle_cmd")

app = typer.Typer(
    name="nervemuscle",
    help="Systematic MRI assessment of peripheral nerve and muscle in motor neuron disease.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True, highlight=False)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nervemuscle {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of failures."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(f"nervemuscle.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see README.md, "Exit codes")."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = app(args=args, standalone_mode=False)  # typer.Exit(n) inside a command comes back as n
    except NerveMuscleError as exc:
        if debug:
            raise
        err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except TyperException as exc:  # command-line usage errors (typer's click exceptions)
        exc.show()
        return EXIT_USAGE
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line, distinct code
        if debug:
            raise
        err_console.print(f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug)", markup=False)
        return EXIT_INTERNAL
    if code == 130:  # typer turns KeyboardInterrupt (Ctrl-C, or SIGTERM while an output is written) into exit code 130
        err_console.print("interrupted")
    return code if isinstance(code, int) else 0
