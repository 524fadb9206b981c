"""``nervemuscle serve`` (the reader-study web app) and ``nervemuscle users add``."""
from __future__ import annotations

import getpass
import os
import socket
import sys
from pathlib import Path

import typer

from nervemuscle.errors import BadInputError


def _db_url(db: str | None) -> str:
    from nervemuscle.reader.db import default_url

    return db or default_url()


def add_user(db_url: str, name: str, role: str, password: str) -> None:
    """Create an account in the reader database (migrating it first)."""
    from nervemuscle.reader.auth import add_user as _add
    from nervemuscle.reader.db import make_engine, migrate, session_factory

    engine = make_engine(db_url)
    migrate(engine)
    with session_factory(engine).begin() as db:
        try:
            _add(db, name, role, password)
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
    engine.dispose()


def _listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, made here with ``IPPROTO_TCP``.

    Accepted connections inherit the protocol number, and asyncio sets ``TCP_NODELAY`` only when it is TCP.
    uvicorn's own socket for ``--workers`` leaves it 0, so Nagle's algorithm meets the client's delayed ACK
    and a keep-alive request sent right after another waits about 40 ms (Kludex/uvicorn#3149; measured here:
    46 ms instead of 5 ms). A port in use is a clear error rather than uvicorn's log line.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BadInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        db: str = typer.Option(None, "--db", help="Database URL (default sqlite ./nervemuscle-reader.db; "
                                                  "postgresql+psycopg://user@host:port/db)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8000, "--port", help="TCP port."),
        data_root: Path = typer.Option(Path("."), "--data-root", help="Exams are imported only from inside this folder."),
        protocol: Path = typer.Option(None, "--protocol", help="Grading protocol YAML (default: shipped protocol)."),
        secure_cookies: bool = typer.Option(False, "--secure-cookies", help="Mark cookies Secure (behind HTTPS)."),
        workers: int = typer.Option(1, "--workers", min=1, help="Server processes (they share the database; "
                                                                 "about one per core)."),
        cache_dir: Path = typer.Option(None, "--cache-dir", help="Display copies of the series (default: "
                                                                 "nervemuscle-reader-cache next to a SQLite "
                                                                 "database, else in the working folder)."),
    ) -> None:
        """Run the blinded reader-study web app (migrates the database at start-up)."""
        import uvicorn
        from uvicorn.supervisors import Multiprocess

        from nervemuscle.reader.app import SETTINGS_ENV, ReaderSettings, create_app
        from nervemuscle.reader.db import in_memory_sqlite, make_engine, migrate

        if not data_root.is_dir():
            raise BadInputError("data root is not a folder", data_root)
        settings = ReaderSettings(db_url=_db_url(db), data_root=data_root.resolve(), protocol_path=protocol,
                                  secure_cookies=secure_cookies, cache_dir=cache_dir and cache_dir.resolve())
        if workers > 1 and in_memory_sqlite(settings.db_url):
            raise BadInputError("--workers > 1 needs a database file or server: each process would have its own "
                                "in-memory database")
        sock = _listen(host, port)
        typer.echo(f"nervemuscle reader on http://{host}:{port}  (db {settings.db_url}, data root {settings.data_root}"
                   f", {workers} worker{'s' if workers > 1 else ''})")
        if workers == 1:
            uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning")).run(sockets=[sock])
            return
        engine = make_engine(settings.db_url)
        migrate(engine)  # once, before the workers start (each then finds the schema current)
        engine.dispose()
        os.environ[SETTINGS_ENV] = settings.to_json()
        config = uvicorn.Config("nervemuscle.reader.app:create_app_from_env", factory=True, workers=workers,
                                log_level="warning")
        Multiprocess(config, sockets=[sock]).run()

    users = typer.Typer(help="Reader-app accounts.", no_args_is_help=True)
    app.add_typer(users, name="users")

    @users.command("add")
    def users_add(
        name: str = typer.Argument(..., help="User name."),
        role: str = typer.Option(..., "--role", help="admin or reader."),
        password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
        db: str = typer.Option(None, "--db", help="Database URL (default sqlite ./nervemuscle-reader.db)."),
    ) -> None:
        """Add an account (password asked twice, or read from stdin with --password-stdin)."""
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat: ") != password:
                raise BadInputError("passwords differ")
        add_user(_db_url(db), name, role, password)
        typer.echo(f"added {role} {name}")
