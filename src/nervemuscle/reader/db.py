"""Database engines (SQLite in WAL mode by default, PostgreSQL by URL) and Alembic migrations."""
from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

#: Default database: a SQLite file in the working folder.
DEFAULT_DB_FILE = "nervemuscle-reader.db"


def default_url(folder: str | Path = ".") -> str:
    """SQLite URL of ``nervemuscle-reader.db`` in ``folder``."""
    return f"sqlite:///{(Path(folder) / DEFAULT_DB_FILE).resolve()}"


def make_engine(url: str, *, writer: bool = True) -> Engine:
    """Engine for ``url``.

    SQLite gets WAL journaling, foreign keys and a 30 s busy timeout. A ``writer`` engine opens every
    transaction with ``BEGIN IMMEDIATE`` (writers queue instead of failing with "database is locked"
    when a read upgrades to a write), and its transactions also queue on an in-process lock, which hands
    over at once where SQLite's busy handler would poll with sleeps of up to 100 ms. A reader engine
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
        lock = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn):  # noqa: ANN001
            if not lock.acquire(timeout=30):
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
