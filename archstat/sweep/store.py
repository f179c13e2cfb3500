"""The results database of a sweep: SQLite, one row per cell and machine.

A row is written (and committed) the moment its cell finishes, by the one process that
schedules the sweep, so an interrupted sweep loses only the cells in flight and a rerun
finds every finished one. The key is ``(cell, machine)``: machine-independent cells
(counts) are stored under :data:`ANY_MACHINE`, timing cells under the machine that ran
them. A failed cell is a row too (``status = 'failed'`` and its ``reason``), so a sweep
always says what it could not do.

The numbers a report reads are columns (:data:`COLUMNS`); anything else a cell returns
(notes, the timing environment) is kept as JSON in ``extra``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any, Iterable, Iterator

from archstat.errors import ArchstatError
from archstat.reports.writers import OutputPathError, may_write
from archstat.sweep.cells import Cell

__all__ = ["ResultStore", "ANY_MACHINE", "COLUMNS", "COLUMN_DTYPES", "NUMERIC_COLUMNS", "SCHEMA_VERSION"]

#: The machine of a cell whose result does not depend on one.
ANY_MACHINE = "*"

#: 2: a ``train`` cell's key ends in its optimizer (``resnet50|224|b1|train|adam``); a version-1
#: database is brought to it when a sweep opens it (its ``train`` rows get the optimizer they name).
#: 3: ``size`` is a size's text (``224``, ``480x640``: :func:`archstat.grammar.size_text`), not only a
#: square side; older rows read as the same text (``224``), so an older database only changes version.
SCHEMA_VERSION = 3

#: Versions a report or an export reads (the cell keys and the size's type are all that changed).
_READABLE = frozenset({"1", "2", "3"})

#: Result columns, in export order (after ``cell`` and ``machine``), with their SQL types.
_SCHEMA: tuple[tuple[str, str], ...] = (
    ("model", "TEXT"), ("size", "TEXT"), ("batch", "INTEGER"), ("metric", "TEXT"), ("input", "TEXT"),
    ("status", "TEXT NOT NULL"), ("reason", "TEXT"), ("target", "TEXT"),
    ("params", "INTEGER"), ("madds", "INTEGER"), ("flops", "INTEGER"), ("mem_access", "INTEGER"),
    ("mem_access_bytes", "INTEGER"), ("records", "INTEGER"), ("uncounted", "INTEGER"),
    ("optimizer", "TEXT"), ("backward_madds", "INTEGER"), ("step_flops", "INTEGER"), ("saved_bytes", "INTEGER"),
    ("peak_train_bytes", "INTEGER"),
    ("device", "TEXT"), ("threads", "INTEGER"), ("median_ms", "REAL"), ("iqr_ms", "REAL"), ("min_ms", "REAL"),
    ("repeats", "INTEGER"), ("under_load", "INTEGER"),
    ("seconds", "REAL"), ("finished", "TEXT"), ("archstat_version", "TEXT"), ("torch_version", "TEXT"),
    ("extra", "TEXT"),
)
COLUMNS = ("cell", "machine", *(name for name, _ in _SCHEMA))
NUMERIC_COLUMNS = frozenset(name for name, kind in _SCHEMA if kind in ("INTEGER", "REAL"))
#: The pandas dtype of each column in an export: fixed by the schema, not by the rows a sweep holds.
COLUMN_DTYPES = {"cell": "string", "machine": "string", "under_load": "boolean",
                 **{name: "Int64" if kind == "INTEGER" else "float64" if kind == "REAL" else "string"
                    for name, kind in _SCHEMA if name != "under_load"}}


class ResultStore:
    """A sweep's database at ``path`` (created if missing). Use as a context manager or
    call :meth:`close`. With ``read_only`` (a report, an export) the file must already be a
    sweep database and is opened read-only: a file that is not one is refused, never changed."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False) -> None:
        if not os.fspath(path):
            raise OutputPathError("a sweep database needs a file name (--out FILE)")
        self.path = Path(path)
        self.read_only = read_only
        try:
            if read_only:
                if not self.path.is_file():
                    raise ArchstatError(f"no sweep database at {self.path}")
                self.db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
                self._check_schema(_READABLE)
                return
            _check_database_path(self.path)
            self.db = sqlite3.connect(self.path, timeout=30)
            if self._tables():  # another program's database is refused before anything is written to it
                self._check_schema(_READABLE)
            self.db.execute("PRAGMA journal_mode=WAL")  # readers (a report) never block the sweep
            self.db.execute("PRAGMA synchronous=NORMAL")
            self._create()
        except sqlite3.DatabaseError as exc:
            raise ArchstatError(f"{self.path} is not an archstat sweep database ({exc})") from None

    def _tables(self) -> set[str]:
        return {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _check_schema(self, versions: frozenset[str]) -> None:
        """Refuse (closing the connection) a database that is not a sweep's: its tables, the
        results table's columns and the schema version."""
        tables = self._tables()
        columns = [name for _, name, *_ in self.db.execute("PRAGMA table_info(results)")] \
            if "results" in tables else []
        version = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() \
            if "meta" in tables else None
        problem = None
        if version is not None and version[0] not in versions:  # an archstat database of another schema
            self.db.close()
            raise ArchstatError(f"{self.path} holds sweep schema {version[0]}; this archstat reads "
                                f"{', '.join(sorted(versions))}: export it with the archstat that wrote it, or use "
                                "a new file")
        if not {"results", "meta"} <= tables:
            problem = f"tables: {', '.join(sorted(tables)) or 'none'}"
        elif columns != list(COLUMNS):
            problem = "its results table has other columns"
        elif version is None:
            problem = "no schema version"
        if problem:
            self.db.close()
            raise ArchstatError(f"{self.path} is not an archstat sweep database ({problem}); it was left as it is")

    def _create(self) -> None:
        columns = ", ".join(f"{name} {kind}" for name, kind in _SCHEMA)
        with self.db:
            self.db.execute(f"CREATE TABLE IF NOT EXISTS results (cell TEXT NOT NULL, machine TEXT NOT NULL, "
                            f"{columns}, PRIMARY KEY (cell, machine))")
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            found = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is not None and found[0] == "1":  # train keys gain their optimizer (see SCHEMA_VERSION)
                self.db.execute("UPDATE results SET cell = cell || '|' || optimizer "
                                "WHERE metric = 'train' AND optimizer IS NOT NULL")
                self.db.execute("DELETE FROM results WHERE metric = 'train' AND optimizer IS NULL")  # failed: rerun
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; a writer leaves it a single file (the write-ahead log folded back),
        so a read-only reader later needs no files beside it."""
        if not self.read_only:
            try:
                self.db.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.Error:  # another connection still has it open: it folds the log when it closes
                pass
        self.db.close()

    # ----------------------------------------------------------------- writing

    def put(self, row: dict[str, Any]) -> None:
        """Store one finished cell (replacing an earlier row of the same cell and machine)."""
        values = {k: row.get(k) for k in COLUMNS}
        extra = row.get("extra")
        values["extra"] = json.dumps(extra, sort_keys=True, default=str) if extra else None
        if values["under_load"] is not None:
            values["under_load"] = int(bool(values["under_load"]))
        names = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        with self.db:  # a retried cell replaces its failed row, which may name another machine (ray:NAME)
            self.db.execute("DELETE FROM results WHERE cell = ? AND target = ?", (values["cell"], values["target"]))
            self.db.execute(f"INSERT OR REPLACE INTO results ({names}) VALUES ({marks})",
                            [values[k] for k in COLUMNS])

    # ----------------------------------------------------------------- reading

    def finished(self, cells: Iterable[Cell], target: str, retry_failed: bool = False) -> set[str]:
        """Keys of ``cells`` that already have a row: machine-independent cells from any run,
        timing cells from ``target`` (this machine, or the cluster's timing label). With
        ``retry_failed``, failed rows do not count as finished."""
        status = "AND status = 'ok'" if retry_failed else ""
        done = {(cell, t) for cell, t in self.db.execute(f"SELECT cell, target FROM results WHERE 1 {status}")}
        return {c.key for c in cells if (c.key, target if c.timing else ANY_MACHINE) in done}

    def rows(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every row (or those of one ``status``), ``extra`` decoded, in cell order."""
        where, params = ("WHERE status = ?", (status,)) if status else ("", ())
        cursor = self.db.execute(f"SELECT {', '.join(COLUMNS)} FROM results {where} ORDER BY cell, machine", params)
        out = []
        for values in cursor:
            row = dict(zip(COLUMNS, values))
            row["extra"] = json.loads(row["extra"]) if row["extra"] else {}
            row["under_load"] = None if row["under_load"] is None else bool(row["under_load"])
            if row["size"] is not None:  # an INTEGER column before schema 3
                row["size"] = str(row["size"])
            out.append(row)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0])


def _check_database_path(path: Path) -> None:
    """Refuse a path that is not a regular file or a new file in an existing folder."""
    if path.exists():
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode):
            raise OutputPathError(f"{path} is not a regular file: a sweep database must be one")
        if not may_write(path):
            raise OutputPathError(f"cannot write {path}: the file is read-only (a sweep adds its rows to it)")
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputPathError(f"cannot create {path}: folder {parent} does not exist")
    if not may_write(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot create {path}: folder {parent} is not writable")
