"""Opening the state store: engine set-up, pragmas, migrations, transactions.

`open_store(url)` is the only way in. It creates the database when needed, upgrades it to the
newest schema this code ships (Alembic, run programmatically from the migrations inside the
package), and refuses a database written by a newer patchctl instead of guessing.

SQLite gets WAL, `synchronous=NORMAL`, a busy timeout and foreign keys; write transactions
start with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout instead of failing when a
read transaction would have to be upgraded. Writers of one process also queue on a lock of
their own (`WriteGate`) before they begin: SQLite's busy handler polls, sleeping in growing
steps of up to 100 ms, so a writer that found the database locked woke up to 100 ms after the
lock was free; on the gate it wakes at once (issue 14: an agent report waiting behind a
reconcile pass). The busy timeout still orders this process against other ones (the CLI).
PostgreSQL takes an advisory lock while migrating, so several replicas may start at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from controller import errors

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator, Mapping, Sequence

    from sqlalchemy.engine import URL, Connection, Engine

T = TypeVar("T")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
BUSY_TIMEOUT_MS = 15000  # how long a SQLite writer waits for the lock (and for the gate)
SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    f"busy_timeout={BUSY_TIMEOUT_MS}",
    "foreign_keys=ON",
    "temp_store=MEMORY",
    "cache_size=-32768",  # 32 MiB page cache per connection
)
_WRITE = "patchctl_write"
_PG_LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE lock_not_available
_MIGRATION_LOCK = 0x70617463  # "patc": the advisory lock id held while migrating PostgreSQL


class StoreError(errors.TransientError):
    """The store cannot be opened or used; the message says what to do."""


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer patchctl than this one (transient like every
    StoreError: during a rolling upgrade the newer replicas take over; the CLI exits 2)."""


class WriteLockTimeoutError(StoreError):
    """A writer of this process waited its whole lock timeout for the write gate."""


class WriteGate:
    """One SQLite write transaction at a time in this process, in the order the writers ask
    (as far as the operating system's wake-up order goes). A writer waiting on the gate is
    woken when the one before it ends, instead of polling in SQLite's busy handler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def turn(self, *, wait_ms: int) -> Iterator[None]:
        """Hold the gate for the block; `WriteLockTimeoutError` after `wait_ms` milliseconds."""
        if not self._lock.acquire(timeout=wait_ms / 1000):
            raise WriteLockTimeoutError(
                f"another write transaction of this process held the database for over {wait_ms} ms"
            )
        try:
            yield
        finally:
            self._lock.release()


@dataclass(frozen=True, slots=True)
class Store:
    """An open state store. Use `read()` and `write()` for transactions; `close()` when done.

    A fenced store (`fenced(check)`) runs `check(conn)` at the start of every write
    transaction, and the transaction is rolled back when it raises: the leader's reconciler and
    chores write through one, so a replica that lost its lease writes nothing (DESIGN §7).
    """

    engine: Engine
    url: str  # with any password masked, for messages and logs
    fence: Callable[[Connection], None] | None = None
    # SQLite: this process's writers queue here (None: PostgreSQL, whose writers lock rows)
    gate: WriteGate | None = field(default=None, compare=False, repr=False)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on both engines)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back when it raises."""
        with self.write_turn(wait_ms=BUSY_TIMEOUT_MS), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if self.fence is not None:
                    self.fence(conn)
                yield conn

    @contextlib.contextmanager
    def write_turn(self, *, wait_ms: int) -> Iterator[None]:
        """This process's turn to run one write transaction (begin it inside the block):
        SQLite's write gate, held for the block (`WriteLockTimeoutError` after `wait_ms`);
        nothing on PostgreSQL. `write()` takes it; a connection from `write_connection` must."""
        if self.gate is None:
            yield
            return
        with self.gate.turn(wait_ms=wait_ms):
            yield

    def write_connection(self, *, lock_wait_ms: int) -> Connection:
        """A connection of its own for one batching writer (the agent API's writer): its
        transactions are write transactions (SQLite: `BEGIN IMMEDIATE`), and it waits at most
        `lock_wait_ms` milliseconds for a lock (SQLite's busy timeout, PostgreSQL's
        `lock_timeout`) before the statement fails with an error `is_lock_timeout` recognises.
        The caller begins each transaction inside `write_turn(wait_ms=lock_wait_ms)`, and
        closes (or invalidates) the connection when done. Not fenced: the writer serves agents
        on every replica."""
        conn = self.engine.connect()
        conn.execution_options(**{_WRITE: True})
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(f"PRAGMA busy_timeout={int(lock_wait_ms)}")
        else:
            conn.execute(sa.text(f"SET lock_timeout = '{int(lock_wait_ms)}ms'"))
        conn.commit()
        return conn

    def fenced(self, check: Callable[[Connection], None]) -> Store:
        """The same store (same engine) whose write transactions first run `check`."""
        return dataclasses.replace(self, fence=check)

    def ping(self) -> None:
        """Raise StoreError unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreError(f"database {self.url} is not reachable: {_reason(exc)}") from None

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def close(self) -> None:
        self.engine.dispose()


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether `exc` is a statement that gave up waiting for a lock: SQLite busy or locked,
    PostgreSQL `lock_not_available` (55P03, `lock_timeout`), or this process's write gate."""
    if isinstance(exc, WriteLockTimeoutError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    if isinstance(original, sqlite3.OperationalError):
        return original.sqlite_errorcode in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
    return getattr(original, "sqlstate", None) == _PG_LOCK_NOT_AVAILABLE


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open (create, migrate) the store at a SQLAlchemy URL: `sqlite:///path` or `postgresql+psycopg://...`.

    Raises `SchemaTooNewError` for a database migrated by a newer patchctl and `StoreError` for
    every other reason the store cannot be used, with a message a person can act on.
    """
    parsed = _parse_url(url)
    engine = _create_engine(parsed)
    gate = WriteGate() if parsed.get_backend_name() == "sqlite" else None
    store = Store(engine=engine, url=parsed.render_as_string(hide_password=True), gate=gate)
    try:
        if migrate:
            _migrate(store)
        else:
            store.ping()
    except BaseException:
        engine.dispose()
        raise
    return store


def head_revision() -> str:
    """The newest schema revision this code ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StoreError("no migrations found in the package")
    return head


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"{url!r} is not a database URL; expected sqlite:///PATH or "
            "postgresql+psycopg://USER@HOST:PORT/DB"
        ) from None
    backend = parsed.get_backend_name()
    if backend not in {"sqlite", "postgresql"}:
        raise StoreError(f"database {backend!r} is not supported; use SQLite or PostgreSQL")
    if backend == "sqlite" and parsed.database in {None, "", ":memory:"}:
        raise StoreError("an in-memory SQLite database cannot be shared; give a file path")
    if backend == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        path = Path(str(url.database))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the state directory {path.parent}: {exc}") from None
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False}, pool_size=8, max_overflow=8
        )
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = sa.create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    event.listen(engine, "connect", _postgres_connect)
    return engine


def _postgres_connect(dbapi_connection: Any, _record: Any) -> None:
    # Sessions in UTC: psycopg then hands out `datetime.UTC` instants, which the store's
    # `UtcDateTime` keeps as they are instead of converting each (a million per fleet read).
    dbapi_connection.execute("SET TIME ZONE 'UTC'")
    dbapi_connection.commit()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to SQLAlchemy's "begin" event (the pysqlite recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def _migrate(store: Store) -> None:
    config = _alembic_config()
    script = ScriptDirectory.from_config(config)
    try:
        with store.write() as conn:
            if store.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            _refuse_unknown_revisions(conn, script, store.url)
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except StoreError:
        raise
    except OperationalError as exc:
        raise StoreError(f"cannot open database {store.url}: {_reason(exc)}") from None
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate database {store.url}: {_reason(exc)}") from None


def _refuse_unknown_revisions(conn: Connection, script: ScriptDirectory, url: str) -> None:
    current = MigrationContext.configure(conn).get_current_heads()
    for revision in current:
        try:
            known = script.get_revision(revision)
        except (CommandError, RevisionError):
            known = None
        if known is None:
            raise SchemaTooNewError(
                f"database {url} has schema revision {revision!r}, which this patchctl does not "
                f"know (newest known: {script.get_current_head()!r}): it was written by a newer "
                "patchctl. Upgrade patchctl, or point --db at another database."
            )


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


IN_LIST_SIZE = 500  # values per IN (...) list: well under SQLite and PostgreSQL parameter limits


def in_chunks(items: Sequence[T]) -> Iterator[list[T]]:
    """`items` in consecutive lists of at most `IN_LIST_SIZE`, one per `IN (...)` statement."""
    for start in range(0, len(items), IN_LIST_SIZE):
        yield list(items[start : start + IN_LIST_SIZE])


def id_chunks(ids: Collection[str] | None) -> Iterator[list[str] | None]:
    """The sorted ids in `in_chunks`; None (every row: one statement without a filter) for
    None."""
    if ids is None:
        yield None
        return
    yield from in_chunks(sorted(ids))


def conflict_insert(dialect_name: str) -> Any:
    """The dialect's own `insert` (SQLAlchemy's SQLite or PostgreSQL one), whose statements
    take `on_conflict_do_nothing` / `on_conflict_do_update` (ON CONFLICT, both engines)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


def insert_many(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    skip_existing: bool,
    unique: Sequence[str] | None = None,
) -> int:
    """Insert `rows` (dicts with the same keys: column names of `table`) in one driver
    executemany; `skip_existing`: a row whose primary key (or the `unique` columns, a unique
    index of the table) exists is left out (ON CONFLICT DO NOTHING, both engines). Answers how
    many rows were inserted (the driver's row count: both sqlite3 and psycopg sum it over an
    executemany).

    Each value goes through its column type's own bind processor, so what is stored is what
    `conn.execute(table.insert(), rows)` stores; what is left out is SQLAlchemy's per-row
    work around it (parameters built and processed one by one, about 40 µs a row of ten
    columns), which dominated the insert of an approval's 10,000 jobs (issue 14). Date-times
    repeat (a pass's `now`, a window's deadline): each distinct one is processed once; so is
    each JSON list or object that rows share (the very same object: an approval's jobs share
    their patch list and payload, `store.jobs.insert_jobs`)."""
    if not rows:
        return 0
    dialect = conn.dialect
    keys = list(rows[0])
    statement = conflict_insert(dialect.name)(table)
    if skip_existing:
        statement = statement.on_conflict_do_nothing(
            index_elements=list(unique or [column.name for column in table.primary_key])
        )
    compiled = statement.compile(dialect=dialect, column_keys=keys)
    processors = [_processor(table.c[key].type, dialect) for key in keys]
    converted = [[row[key] for key in keys] for row in rows]
    for index, process in enumerate(processors):
        if process is not None:
            for values in converted:
                values[index] = process(values[index])
    if compiled.positiontup is None:  # named parameters (psycopg)
        params: list[Any] = [dict(zip(keys, values, strict=True)) for values in converted]
    else:
        position = [keys.index(name) for name in compiled.positiontup]
        params = [tuple(values[i] for i in position) for values in converted]
    return conn.exec_driver_sql(compiled.string, params).rowcount


def _processor(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    """The column type's bind processor on `dialect`, memoised for one `insert_many`: per
    value for date-times, per object for lists and dicts (JSON columns: keyed by `id`, the
    object kept beside its encoding so that no other object takes its id meanwhile)."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return None
    instants: dict[datetime, Any] = {}
    objects: dict[int, tuple[Any, Any]] = {}  # id → (the object, processed)

    def memoised(value: Any) -> Any:
        if isinstance(value, datetime):
            found = instants.get(value)
            if found is None:
                found = instants[value] = process(value)
            return found
        if isinstance(value, list | dict):
            kept = objects.get(id(value))
            if kept is None:
                kept = objects[id(value)] = (value, process(value))
            return kept[1]
        return process(value)

    return memoised
