"""Database engines (SQLite in WAL mode by default, PostgreSQL by URL) and Alembic migrations."""
from __future__ import annotations

import fcntl
import os
import threading
import time
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

#: Default database: a SQLite file in the working folder.
DEFAULT_DB_FILE = "nervemuscle-reader.db"


def default_url(folder: str | Path = ".") -> str:
    """SQLite URL of ``nervemuscle-reader.db`` in ``folder``."""
    return f"sqlite:///{(Path(folder) / DEFAULT_DB_FILE).resolve()}"


def in_memory_sqlite(url: str) -> bool:
    """Whether ``url`` is an in-memory SQLite database (private to one process, gone with it)."""
    parsed = make_url(url)
    database = parsed.database
    return parsed.get_backend_name() == "sqlite" and (database in (None, "", ":memory:")
                                                       or database.startswith("file::memory:"))


class WriteTurn:
    """One SQLite writer at a time: among this process's threads (a lock) and among server processes (an
    ``flock`` on ``lock_file``, tried every millisecond). Both hand over at once, where SQLite's busy handler
    would poll with sleeps of up to 100 ms (seconds of queueing when several processes write at once)."""

    def __init__(self, lock_file: Path | None, timeout_s: float = 30.0):
        self.lock_file, self.timeout_s = lock_file, timeout_s
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child needs its own open file
            self._fd, self._pid = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd

    def acquire(self) -> bool:
        """Take the turn; False after ``timeout_s``."""
        deadline = time.monotonic() + self.timeout_s
        if not self._thread_lock.acquire(timeout=self.timeout_s):
            return False
        if self.lock_file is None:
            return True
        fd = self._file()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._thread_lock.release()
                    return False
                time.sleep(0.001)

    def release(self) -> None:
        if self.lock_file is not None:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        self._thread_lock.release()


def make_engine(url: str, *, writer: bool = True) -> Engine:
    """Engine for ``url``.

    SQLite gets WAL journaling, foreign keys and a 30 s busy timeout. A ``writer`` engine opens every
    transaction with ``BEGIN IMMEDIATE`` (writers queue instead of failing with "database is locked"
    when a read upgrades to a write), and its transactions first take a :class:`WriteTurn` (``<db>.writelock``
    next to the database file, shared by ``nervemuscle serve --workers``). A reader engine
    (``writer=False``) uses deferred transactions, so reads run concurrently under WAL. PostgreSQL
    ignores ``writer`` (row locks do the work).
    """
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=20, max_overflow=20)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # noqa: ANN001 - DB-API connection
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        if not writer:
            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn):  # noqa: ANN001
                conn.exec_driver_sql("BEGIN")

            return engine
        lock = WriteTurn(None if in_memory_sqlite(url) else Path(f"{make_url(url).database}.writelock"))

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn):  # noqa: ANN001
            if not lock.acquire():
                raise TimeoutError(f"{url}: no write turn within 30 s")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                lock.release()
                raise
            conn.info["nm_write_turn"] = True

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _sqlite_end(conn):  # noqa: ANN001
            if conn.info.pop("nm_write_turn", False):
                lock.release()

        return engine
    return create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision shipped in ``nervemuscle.reader.migrations``."""
    script_location = str(resources.files("nervemuscle.reader").joinpath("migrations"))
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (responses are built after it)."""
    return sessionmaker(engine, expire_on_commit=False)
