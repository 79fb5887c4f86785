"""Events kept in SQLite beside the footage (`<root>/.events/events.sqlite3`, WAL): what happened,
on which camera, when, how sure, where in the picture, and whether someone has looked at it.

One row per event (an object tracked across frames, a movement, a mark), open while it goes on
(`end` NULL) with `last_seen`, the time of the last frame that showed it: a process killed while
an event is open leaves it open, and the next `recover()` closes it there, so nothing is lost and
nothing runs on for ever. Zones are a table of their own so that "person in the driveway" is an
index lookup; thumbnails too, so that listing a month of events never reads a picture.

Writes are small transactions on one connection (a lock serialises the threads that share the
store); WAL lets readers (the review page, `camctl events`) read while a camera writes, and
`synchronous=NORMAL` loses at most the last transactions at a power cut, never the database.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camctl.errors import StorageError

EVENTS_FOLDER = ".events"  # under the storage root: a dot-folder, never taken for a camera's footage
DATABASE_NAME = "events.sqlite3"
SCHEMA_VERSION = 1
MAX_BOXES = 200  # boxes kept per event (over time): a long event keeps its first ones and its latest
SEVERITIES = ("alert", "detection")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    severity TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL,
    last_seen REAL NOT NULL,
    score REAL NOT NULL,
    boxes TEXT NOT NULL,
    reviewed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_by_start ON events (start);
CREATE INDEX IF NOT EXISTS events_by_camera ON events (camera_id, start);
CREATE INDEX IF NOT EXISTS events_by_label ON events (label, start);
CREATE INDEX IF NOT EXISTS events_open ON events (camera_id) WHERE "end" IS NULL;
CREATE TABLE IF NOT EXISTS event_zones (
    zone TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    start REAL NOT NULL,  -- the event's: a zone's events listed by time from the index alone
    entered REAL NOT NULL,  -- when the event entered it
    PRIMARY KEY (zone, start, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS event_zones_by_event ON event_zones (event_id);
CREATE TABLE IF NOT EXISTS thumbnails (
    event_id TEXT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    taken REAL NOT NULL,
    jpeg BLOB NOT NULL
);
"""

_SELECT = (
    'SELECT e.id, e.camera_id, e.stream, e.label, e.source, e.severity, e.start, e."end", e.last_seen, e.score,'
    " e.boxes, e.reviewed, t.event_id IS NOT NULL, (SELECT json_group_array(zone) FROM (SELECT zone FROM"
    " event_zones z WHERE z.event_id = e.id ORDER BY entered))"
    " FROM events e LEFT JOIN thumbnails t ON t.event_id = e.id"
)

Box = tuple[float, float, float, float, float]  # time, x, y, w, h (fractions of the picture)


@dataclass(frozen=True)
class Event:
    id: str
    camera_id: str
    stream: str
    label: str
    source: str  # motion, a named analysis service (yolo), mark
    severity: str  # alert | detection
    start: float  # UTC epoch seconds
    end: float | None  # None while it goes on
    last_seen: float  # the last frame that showed it
    score: float  # the best score seen
    boxes: list[Box] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)  # in the order it entered them
    reviewed: bool = False
    has_thumbnail: bool = False

    @property
    def open(self) -> bool:
        return self.end is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "camera_id": self.camera_id, "stream": self.stream, "label": self.label,
            "source": self.source, "severity": self.severity, "start": self.start, "end": self.end,
            "last_seen": self.last_seen, "score": round(self.score, 4), "zones": self.zones,
            "boxes": [list(b) for b in self.boxes], "reviewed": self.reviewed, "has_thumbnail": self.has_thumbnail,
        }  # fmt: skip


@dataclass(frozen=True)
class EventFilter:
    """Which events a listing wants; None: any. Newest first, `before` pages back (an event's start)."""

    cameras: Sequence[str] | None = None
    labels: Sequence[str] | None = None
    zone: str | None = None
    severity: str | None = None
    since: float | None = None  # events that end (or go on) at or after this
    until: float | None = None  # events that start before this
    reviewed: bool | None = None
    before: float | None = None
    limit: int = 100


def database_path(root: Path) -> Path:
    return root / EVENTS_FOLDER / DATABASE_NAME


def new_event_id(start: float) -> str:
    """Sortable by start, unique without coordination: `<start>-<6 random hex>` (Frigate's shape)."""
    return f"{start:.6f}-{secrets.token_hex(3)}"


class EventStore:
    """The events of one storage root. Thread-safe; open once per process, close at exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            path.chmod(0o640)  # footage's neighbour: camctl's user and group only
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(f"{path}: events database of a newer camctl (schema {version}); upgrade camctl")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"{path}: cannot open the events database: {exc}") from None
        except OSError as exc:
            raise StorageError(f"{path}: cannot open the events database: {exc.strerror or exc}") from None
        self._lock = threading.Lock()

    @classmethod
    def beside_footage(cls, root: Path) -> EventStore:
        return cls(database_path(root))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"{self.path}: {exc}") from None

    def start(
        self, camera_id: str, label: str, source: str, start: float, *, stream: str = "main", score: float = 0.0,
        severity: str = "detection", box: Sequence[float] | None = None, zones: Sequence[str] = (),
        end: float | None = None,
    ) -> Event:  # fmt: skip
        """A new event (open unless `end` is given: a mark is over as it comes)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        event_id = new_event_id(start)
        boxes = [_box(start, box)] if box is not None else []
        with self._transaction() as db:
            db.execute(
                'INSERT INTO events (id, camera_id, stream, label, source, severity, start, "end", last_seen, score,'
                " boxes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (event_id, camera_id, stream, label, source, severity, start, end, end if end is not None else start,
                 score, json.dumps(boxes)),
            )  # fmt: skip
            _add_zones(db, event_id, start, start, zones)
        found = self.get(event_id)
        if found is None:  # pruned between the two statements by another process: as it was given
            raise StorageError(f"{self.path}: event {event_id} vanished as it was written")
        return found

    def update(
        self, event_id: str, seen: float, *, score: float | None = None, box: Sequence[float] | None = None,
        zones: Sequence[str] = (), severity: str | None = None,
    ) -> bool:  # fmt: skip
        """The event seen again at `seen`: its best score, one more box, zones it entered, a
        severity raised to alert. False when it is unknown or already over."""
        with self._transaction() as db:
            row = db.execute('SELECT start, score, boxes, severity FROM events WHERE id = ? AND "end" IS NULL',
                             (event_id,)).fetchone()  # fmt: skip
            if row is None:
                return False
            start, best, boxes_text, current = row
            boxes = json.loads(boxes_text)
            if box is not None:
                boxes.append(list(_box(seen, box)))
                if len(boxes) > MAX_BOXES:  # the first ones (where it came from) and the latest
                    del boxes[MAX_BOXES // 2]
            raised = "alert" if severity == "alert" or current == "alert" else current
            db.execute("UPDATE events SET last_seen = max(last_seen, ?), score = ?, boxes = ?, severity = ?"
                       " WHERE id = ?", (seen, max(best, score or 0.0), json.dumps(boxes), raised,
                                         event_id))  # fmt: skip
            _add_zones(db, event_id, start, seen, zones)
        return True

    def end(self, event_id: str, end: float) -> bool:
        """Closes an open event (at the latest at `end`, never before its last sighting)."""
        with self._transaction() as db:
            done = db.execute('UPDATE events SET "end" = max(last_seen, ?) WHERE id = ? AND "end" IS NULL',
                              (end, event_id))  # fmt: skip
            return done.rowcount == 1

    def recover(self, cameras: Sequence[str] | None = None) -> int:
        """Closes the events a stopped or killed process left open, at the last frame that showed
        them. Run once when a camera's process starts, before it opens events of its own."""
        where, args = _camera_clause(cameras)
        with self._transaction() as db:
            done = db.execute(f'UPDATE events SET "end" = last_seen WHERE "end" IS NULL{where}', args)  # noqa: S608 - placeholders only
            return done.rowcount

    def set_thumbnail(self, event_id: str, jpeg: bytes, taken: float) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO thumbnails (event_id, taken, jpeg) VALUES (?, ?, ?) ON CONFLICT (event_id)"
                       " DO UPDATE SET taken = excluded.taken, jpeg = excluded.jpeg",
                       (event_id, taken, jpeg))  # fmt: skip

    def thumbnail(self, event_id: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT jpeg FROM thumbnails WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def get(self, event_id: str) -> Event | None:
        found = self._select("WHERE e.id = ?", [event_id], 1)
        return found[0] if found else None

    def find(self, wanted: EventFilter) -> list[Event]:
        """Newest first."""
        clauses: list[str] = []
        args: list[Any] = []
        for values, column in ((wanted.cameras, "e.camera_id"), (wanted.labels, "e.label")):
            if values is not None:
                clauses.append(f"{column} IN ({_placeholders(values)})")
                args += values
        one_value = (  # (the value, or None for any; its clause)
            (wanted.zone, "e.id IN (SELECT event_id FROM event_zones WHERE zone = ?)"),
            (wanted.severity, "e.severity = ?"),
            (wanted.since, '(e."end" IS NULL OR e."end" >= ?)'),
            (wanted.until, "e.start < ?"),
            (wanted.before, "e.start < ?"),
            (None if wanted.reviewed is None else int(wanted.reviewed), "e.reviewed = ?"),
        )
        for value, clause in one_value:
            if value is not None:
                clauses.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._select(where, args, max(1, min(wanted.limit, 10_000)))

    def mark_reviewed(self, event_ids: Sequence[str] | None = None, reviewed: bool = True) -> int:
        """These events (None: every one) reviewed, or not any more. Returns how many changed."""
        with self._transaction() as db:
            if event_ids is None:
                return db.execute("UPDATE events SET reviewed = ? WHERE reviewed != ?", (int(reviewed),
                                  int(reviewed))).rowcount  # fmt: skip
            return db.execute(f"UPDATE events SET reviewed = ? WHERE id IN ({_placeholders(event_ids)})",  # noqa: S608 - placeholders
                              (int(reviewed), *event_ids)).rowcount  # fmt: skip

    def prune(self, camera_id: str, before: float) -> int:
        """Deletes a camera's events over before `before` (where its oldest footage now starts):
        an event goes with the footage it points to. Returns how many went."""
        with self._transaction() as db:
            return db.execute('DELETE FROM events WHERE camera_id = ? AND "end" IS NOT NULL AND "end" < ?',
                              (camera_id, before)).rowcount  # fmt: skip

    def _select(self, where: str, args: Sequence[Any], limit: int) -> list[Event]:
        query = f"{_SELECT} {where} ORDER BY e.start DESC LIMIT ?"  # `where`: fixed clauses, placeholders
        with self._lock:
            try:
                rows = self._db.execute(query, (*args, limit)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StorageError(f"{self.path}: {exc}") from None
        return [_event(row) for row in rows]


def _event(row: Sequence[Any]) -> Event:
    (event_id, camera_id, stream, label, source, severity, start, end, last_seen, score, boxes, reviewed,
     thumbnail, zones) = row  # fmt: skip
    return Event(event_id, camera_id, stream, label, source, severity, start, end, last_seen, score,
                 [tuple(b) for b in json.loads(boxes)], json.loads(zones), bool(reviewed), bool(thumbnail))  # fmt: skip


def _box(seen: float, box: Sequence[float]) -> Box:
    x, y, w, h = (float(v) for v in box)
    return (round(seen, 3), round(x, 4), round(y, 4), round(w, 4), round(h, 4))


def _add_zones(db: sqlite3.Connection, event_id: str, start: float, seen: float, zones: Sequence[str]) -> None:
    for zone in zones:
        db.execute("INSERT OR IGNORE INTO event_zones (zone, event_id, start, entered) VALUES (?, ?, ?, ?)",
                   (zone, event_id, start, seen))  # fmt: skip


def _camera_clause(cameras: Sequence[str] | None) -> tuple[str, list[Any]]:
    if cameras is None:
        return "", []
    return f" AND camera_id IN ({_placeholders(cameras)})", list(cameras)


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
