"""``nervemuscle serve`` (the reader-study web app) and ``nervemuscle users add``."""
from __future__ import annotations

import getpass
import os
import socket
import sys
from pathlib import Path

import typer

from nervemuscle.errors import BadInputError, OutputError


def _db_url(db: str | None) -> str:
    """The database URL in force, checked before anything connects (:func:`check_db_url`)."""
    from nervemuscle.reader.db import default_url

    return check_db_url(db or default_url())


def check_db_url(url: str) -> str:
    """Refuse a database URL that cannot work; create a missing SQLite file readable by its owner only.

    The reader database holds password hashes and clinical reads, so a new SQLite file (and with it SQLite's
    ``-wal``/``-shm`` files, which copy its permissions) is created with mode 0600.

    Raises
    ------
    BadInputError
        The URL cannot be parsed or names a backend other than SQLite or PostgreSQL (exit code 2).
    OutputError
        The folder of a SQLite file does not exist or the file cannot be created (exit code 4).
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from nervemuscle.reader.db import in_memory_sqlite

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise BadInputError(f"--db {url!r} is not a database URL ({exc})") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise BadInputError(f"--db {url!r}: unsupported database {parsed.get_backend_name()!r} (sqlite or "
                            "postgresql)")
    if parsed.get_backend_name() == "sqlite" and not in_memory_sqlite(url):
        path = Path(parsed.database)
        if not path.parent.is_dir():
            raise OutputError("the folder of the database file does not exist", path)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as exc:
            raise OutputError(f"cannot create the database file ({exc.strerror})", path) from None
    return url


def _connect_errors(url: str):
    """Turn a failure to open or migrate the database into a one-line BadInputError (exit code 2)."""
    from contextlib import contextmanager

    from sqlalchemy.exc import DBAPIError

    @contextmanager
    def scope():
        try:
            yield
        except DBAPIError as exc:
            reason = str(exc.orig or exc).splitlines()[0]
            raise BadInputError(f"cannot open the database {url} ({reason})") from None

    return scope()


def add_user(db_url: str, name: str, role: str, password: str) -> None:
    """Create an account in the reader database (migrating it first)."""
    from nervemuscle.reader.auth import add_user as _add
    from nervemuscle.reader.db import make_engine, migrate, session_factory

    engine = make_engine(db_url)
    with _connect_errors(db_url):
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
        protocol: Path = typer.Option(None, "--protocol", readable=False,
                                      help="Grading protocol YAML (default: shipped protocol)."),
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

        from nervemuscle.reader.app import SETTINGS_ENV, SUPERVISOR_ENV, ReaderSettings, create_app
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
            uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", proxy_headers=False)).run(
                sockets=[sock])
            return
        engine = make_engine(settings.db_url)
        with _connect_errors(settings.db_url):
            migrate(engine)  # once, before the workers start (each then finds the schema current)
        engine.dispose()
        os.environ[SETTINGS_ENV] = settings.to_json()
        os.environ[SUPERVISOR_ENV] = str(os.getpid())
        # proxy_headers=False: uvicorn would otherwise take the client address from X-Forwarded-For sent by any
        # local process (its default trusts 127.0.0.1), which defeats the per-client login throttle
        config = uvicorn.Config("nervemuscle.reader.app:create_app_from_env", factory=True, workers=workers,
                                log_level="warning", proxy_headers=False)
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
        db_url = _db_url(db)  # checked before the password is asked for
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Repeat: ") != password:
                raise BadInputError("passwords differ")
        add_user(db_url, name, role, password)
        typer.echo(f"added {role} {name}")
