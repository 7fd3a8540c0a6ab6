"""The archive's catalogue: one SQLite file inside the archive folder, written by the driver only.

    files   one row per source file: what it is (path, size, sha256), where its archived copy is and
            how it came out (size, ratio, model, quality, timings, the threads it had), status and error
    kinds   per file and per second of footage: how many kept regions of each kind were seen
            (person, face, motion, text, mask, and "kept" for their union), so `archive find` answers
            without decoding anything
    runs    one row per `archive` run: when, how, and what it did

A row's status moves pending → running → done | failed; "duplicate" marks a source whose content
(sha256) is already archived under another name (its `output` is that file; its `relative`, its
own place in the layout, where restore writes it back). Every change is one committed transaction, so
a killed run leaves the catalogue as it was after the last file it finished.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import OutputError

CATALOGUE_NAME = "catalogue.sqlite"
STATUSES = ("pending", "running", "done", "duplicate", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    output_size INTEGER,
    output_sha256 TEXT,
    ratio REAL,
    duration_s REAL,
    width INTEGER,
    height INTEGER,
    frames INTEGER,
    mode TEXT,
    model_id TEXT,
    quality INTEGER,
    kbps REAL,
    bpp REAL,
    kept_share REAL,
    encode_s REAL,
    fps REAL,
    worker TEXT,
    threads INTEGER,
    started REAL,
    finished REAL,
    error TEXT,
    relative TEXT,
    thinned TEXT
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS kinds (
    file_id INTEGER NOT NULL REFERENCES files (id),
    second INTEGER NOT NULL,
    kind TEXT NOT NULL,
    regions INTEGER NOT NULL,
    area REAL NOT NULL,
    PRIMARY KEY (file_id, kind, second)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL,
    command TEXT,
    engine TEXT,
    jobs INTEGER,
    done INTEGER,
    failed INTEGER,
    footage_s REAL,
    bytes_in INTEGER,
    bytes_out INTEGER,
    outcome TEXT
);
"""


@dataclass
class FileRow:
    """One `files` row (see the module docstring); `output` is relative to the archive folder."""

    id: int
    source: str
    size: int
    mtime_ns: int
    sha256: str
    status: str
    output: str | None = None
    output_size: int | None = None
    output_sha256: str | None = None
    ratio: float | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    mode: str | None = None
    model_id: str | None = None
    quality: int | None = None
    kbps: float | None = None
    bpp: float | None = None
    kept_share: float | None = None
    encode_s: float | None = None
    fps: float | None = None
    worker: str | None = None
    threads: int | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    relative: str | None = None  # a duplicate's own path in the archive's layout (where restore writes it)
    thinned: str | None = None  # `archive thin`'s note: iterations and bytes before and after, and when


COLUMNS = [f.name for f in fields(FileRow)]
#: Columns added after the first release, with their SQL types (older catalogues are given them on open).
NEW_COLUMNS = (("threads", "INTEGER"), ("relative", "TEXT"), ("thinned", "TEXT"))
#: (second, kind, regions, area share) rows of one file.
KindRows = Sequence[tuple[int, str, int, float]]


class Catalogue:
    """The SQLite catalogue in `folder`; every write is its own committed transaction."""

    def __init__(self, folder: Path, *, create: bool = False) -> None:
        self.folder = folder
        self.path = folder / CATALOGUE_NAME
        if not create and not self.path.is_file():
            raise OutputError(f"is not an archive (no {CATALOGUE_NAME} inside)", folder)
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA synchronous = FULL")  # a commit is on disk before the next file starts
            self.db.executescript(SCHEMA)
            self.have = self._add_new_columns(create)
        except sqlite3.DatabaseError as exc:
            raise OutputError(f"catalogue is unusable ({exc})", self.path) from exc

    def _add_new_columns(self, create: bool) -> set[str]:
        """A catalogue written by an older streamcodec gets the columns added since (empty for its rows).

        Only `archive` (`create`) must add them; verify, restore and status read an archive they
        cannot write (a read-only copy) with the missing columns as NULL. Returns the columns there.
        """
        have = {row[1] for row in self.db.execute("PRAGMA table_info(files)")}
        for name, kind in NEW_COLUMNS:
            if name not in have:
                try:
                    self.db.execute(f"ALTER TABLE files ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError:
                    if create:
                        raise
                    continue
                have.add(name)
        return have

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write; SQLite's failures (a full disk above all) become OutputError, the transaction undone."""
        try:
            yield
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            full = "No space left on device: " if "full" in str(exc) else ""
            raise OutputError(f"{full}the catalogue cannot be written ({exc})", self.path) from exc

    def _rows(self, where: str = "1", params: Sequence[Any] = ()) -> list[FileRow]:
        names = ", ".join(name if name in self.have else f"NULL AS {name}" for name in COLUMNS)
        cursor = self.db.execute(f"SELECT {names} FROM files WHERE {where} ORDER BY source", params)
        return [FileRow(*row) for row in cursor.fetchall()]

    def rows(self, status: str | None = None) -> list[FileRow]:
        """Every file row (of one status if given), by source path."""
        return self._rows() if status is None else self._rows("status = ?", (status,))

    def by_source(self, source: str) -> FileRow | None:
        found = self._rows("source = ?", (source,))
        return found[0] if found else None

    def done_with_sha(self, sha256: str) -> FileRow | None:
        """A finished row holding this content, if any."""
        found = self._rows("sha256 = ? AND status = 'done'", (sha256,))
        return found[0] if found else None

    def outputs(self) -> set[str]:
        """Every output path some row claims (relative to the archive folder)."""
        return {row[0] for row in self.db.execute("SELECT output FROM files WHERE output IS NOT NULL")}

    def upsert_source(self, source: str, size: int, mtime_ns: int, sha256: str) -> FileRow:
        """The row for `source`, created pending or reset to pending when its content changed."""
        with self._writing():
            row = self.by_source(source)
            if row is None:
                self.db.execute(
                    "INSERT INTO files (source, size, mtime_ns, sha256, status) VALUES (?, ?, ?, ?, 'pending')",
                    (source, size, mtime_ns, sha256),
                )
            elif row.sha256 != sha256 or row.size != size:
                self._reset(row.id, size, mtime_ns, sha256)
            elif row.mtime_ns != mtime_ns:
                self.db.execute("UPDATE files SET mtime_ns = ? WHERE id = ?", (mtime_ns, row.id))
            found = self.by_source(source)
            assert found is not None
            return found

    def _reset(self, file_id: int, size: int, mtime_ns: int, sha256: str) -> None:
        """New content under a known name: a fresh pending row (the old archived copy stays where it is)."""
        with self._writing():
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM kinds WHERE file_id = ?", (file_id,))
            blank = ", ".join(f"{name} = NULL" for name in COLUMNS[6:])
            self.db.execute(
                f"UPDATE files SET size = ?, mtime_ns = ?, sha256 = ?, status = 'pending', {blank} WHERE id = ?",
                (size, mtime_ns, sha256, file_id),
            )
            self.db.execute("COMMIT")

    def update(self, file_id: int, **values: Any) -> None:
        """Set some columns of one row (one committed transaction)."""
        with self._writing():
            unknown = set(values) - set(COLUMNS)
            if unknown:
                raise KeyError(f"no catalogue column {sorted(unknown)}")
            assignments = ", ".join(f"{name} = ?" for name in values)
            self.db.execute(f"UPDATE files SET {assignments} WHERE id = ?", (*values.values(), file_id))

    def finish(self, file_id: int, values: dict[str, Any], kinds: KindRows) -> None:
        """Record a finished file and its per-second kinds together, in one transaction."""
        with self._writing():
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM kinds WHERE file_id = ?", (file_id,))
            self.db.executemany(
                "INSERT INTO kinds (file_id, second, kind, regions, area) VALUES (?, ?, ?, ?, ?)",
                [(file_id, *row) for row in kinds],
            )
            assignments = ", ".join(f"{name} = ?" for name in values)
            self.db.execute(f"UPDATE files SET {assignments} WHERE id = ?", (*values.values(), file_id))
            self.db.execute("COMMIT")

    def replace_output(self, file_id: int, values: dict[str, Any]) -> None:
        """A row's archived file rewritten (`archive thin`): its values, and the size its duplicates share, at once."""
        with self._writing():
            self.db.execute("BEGIN")
            assignments = ", ".join(f"{name} = ?" for name in values)
            self.db.execute(f"UPDATE files SET {assignments} WHERE id = ?", (*values.values(), file_id))
            if "output_size" in values:
                self.db.execute(
                    "UPDATE files SET output_size = ? WHERE status = 'duplicate' AND output = "
                    "(SELECT output FROM files WHERE id = ?)",
                    (values["output_size"], file_id),
                )
            self.db.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        """Rows per status (every status present, 0 when none)."""
        found = dict(self.db.execute("SELECT status, COUNT(*) FROM files GROUP BY status").fetchall())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def seconds_with(self, kind: str, start: float, end: float) -> Iterator[tuple[str, int, int]]:
        """(source, second, regions) where `kind` was seen, within [start, end] seconds of its file."""
        cursor = self.db.execute(
            "SELECT files.source, kinds.second, kinds.regions FROM kinds JOIN files ON files.id = kinds.file_id "
            "WHERE kinds.kind = ? AND kinds.regions > 0 AND kinds.second + 1 > ? AND kinds.second <= ? "
            "AND files.status = 'done' ORDER BY files.source, kinds.second",
            (kind, start, end),
        )
        yield from cursor

    def kinds_seen(self) -> list[str]:
        return [row[0] for row in self.db.execute("SELECT DISTINCT kind FROM kinds ORDER BY kind")]

    def start_run(self, command: str, engine: str, jobs: int) -> int:
        with self._writing():
            cursor = self.db.execute(
                "INSERT INTO runs (started, command, engine, jobs, outcome) VALUES (?, ?, ?, ?, 'running')",
                (time.time(), command, engine, jobs),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def end_run(self, run_id: int, outcome: str, **totals: float) -> None:
        with self._writing():
            assignments = "".join(f", {name} = ?" for name in totals)
            self.db.execute(
                f"UPDATE runs SET finished = ?, outcome = ?{assignments} WHERE id = ?",
                (time.time(), outcome, *totals.values(), run_id),
            )

    def runs(self) -> list[dict[str, Any]]:
        cursor = self.db.execute("SELECT * FROM runs ORDER BY id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
