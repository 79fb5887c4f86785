"""The events database beside the footage (camctl/events/store.py): a real SQLite file, a real
process killed with an event open."""

from __future__ import annotations

import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from camctl.errors import StorageError
from camctl.events.store import EventFilter, EventStore, database_path

T0 = 1_796_000_000.0


def test_an_event_is_opened_seen_again_and_closed_keeping_its_best_score_boxes_and_zones(tmp_path: Path) -> None:
    store = EventStore.beside_footage(tmp_path)
    try:
        event = store.start("cam_1", "person", "yolo", T0, stream="sub", score=0.61, box=[0.1, 0.5, 0.1, 0.3])
        assert event.open and event.last_seen == T0 and event.zones == [] and event.severity == "detection"
        assert store.update(event.id, T0 + 1, score=0.91, box=[0.2, 0.5, 0.1, 0.3], zones=["driveway"])
        assert store.update(event.id, T0 + 2, score=0.7, box=[0.3, 0.5, 0.1, 0.3], zones=["porch", "driveway"],
                            severity="alert")  # fmt: skip
        assert store.update(event.id, T0 + 1.5, score=0.5)  # late: never moves its last sighting back
        assert store.end(event.id, T0 + 1.0), "closed, at its last sighting at the earliest"
        assert not store.end(event.id, T0 + 9) and not store.update(event.id, T0 + 9), "over is over"
        kept = store.get(event.id)
        assert kept is not None
        assert (kept.start, kept.end, kept.last_seen, kept.score) == (T0, T0 + 2, T0 + 2, 0.91)
        assert kept.zones == ["driveway", "porch"], "in the order it entered them, each once"
        assert kept.severity == "alert" and not kept.reviewed and not kept.has_thumbnail
        assert [b[0] for b in kept.boxes] == [T0, T0 + 1, T0 + 2] and kept.boxes[1][1:] == (0.2, 0.5, 0.1, 0.3)
        store.set_thumbnail(event.id, b"\xff\xd8jpeg\xff\xd9", T0 + 1)
        assert store.thumbnail(event.id) == b"\xff\xd8jpeg\xff\xd9"
        again = store.get(event.id)
        assert again is not None and again.has_thumbnail
        assert again.to_json()["zones"] == ["driveway", "porch"] and again.to_json()["end"] == T0 + 2
        with pytest.raises(ValueError, match="severity"):
            store.start("cam_1", "car", "yolo", T0, severity="urgent")
    finally:
        store.close()
    mode = stat.S_IMODE(database_path(tmp_path).stat().st_mode)
    assert mode & 0o007 == 0, f"the events database is for camctl's user and group only: {oct(mode)}"


def test_listing_filters_by_camera_label_zone_severity_time_and_review_newest_first(tmp_path: Path) -> None:
    store = EventStore.beside_footage(tmp_path)
    try:
        made = {}
        for i, (camera, label, zones, severity) in enumerate([
            ("cam_1", "person", ["driveway"], "alert"), ("cam_1", "car", ["driveway", "street"], "detection"),
            ("cam_2", "person", [], "detection"), ("cam_2", "motion", ["yard"], "detection"),
            ("cam_1", "person", ["porch"], "alert"),
        ]):  # fmt: skip
            event = store.start(
                camera, label, "yolo", T0 + 60 * i, zones=zones, severity=severity, end=T0 + 60 * i + 10
            )
            made[i] = event.id

        def ids(**wanted: object) -> list[int]:
            found = store.find(EventFilter(**wanted))  # type: ignore[arg-type]
            back = {v: k for k, v in made.items()}
            return [back[e.id] for e in found]

        assert ids() == [4, 3, 2, 1, 0], "newest first"
        assert ids(cameras=["cam_1"]) == [4, 1, 0]
        assert ids(labels=["person"]) == [4, 2, 0]
        assert ids(cameras=["cam_1"], labels=["person"]) == [4, 0]
        assert ids(zone="driveway") == [1, 0]
        assert ids(zone="driveway", labels=["car"]) == [1]
        assert ids(severity="alert") == [4, 0]
        assert ids(since=T0 + 125, until=T0 + 200) == [3, 2], "those that overlap the window"
        assert ids(before=T0 + 120, limit=1) == [1], "a page further back"
        assert store.mark_reviewed([made[0], made[4]]) == 2
        assert ids(reviewed=False) == [3, 2, 1]
        assert store.mark_reviewed() == 3 and ids(reviewed=False) == []
        assert store.mark_reviewed([made[2]], reviewed=False) == 1 and ids(reviewed=False) == [2]
        plan = " ".join(row[-1] for row in store._db.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM events WHERE camera_id = ? AND start < ? ORDER BY start DESC",
            ("cam_1", T0)))  # fmt: skip
        assert "events_by_camera" in plan, f"a camera's events by time come from its index: {plan}"
    finally:
        store.close()


def test_an_event_open_when_its_process_is_killed_is_closed_at_its_last_sighting(tmp_path: Path) -> None:
    """A real process writes an event, is seen again at T0+3, then SIGKILLed with the event open;
    the next process finds the database whole and closes the event there, not at the restart."""
    writer = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from camctl.events.store import EventStore
        store = EventStore.beside_footage(Path({str(tmp_path)!r}))
        done = store.start("cam_1", "car", "yolo", {T0}, end={T0} + 1)
        event = store.start("cam_1", "person", "yolo", {T0}, score=0.8, zones=["driveway"])
        store.update(event.id, {T0} + 3, score=0.9, box=[0.1, 0.1, 0.2, 0.2])
        print(event.id, flush=True)
        sys.stdin.read()  # until killed
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        event_id = proc.stdout.readline().strip()
        assert event_id, "the writer printed its event"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    store = EventStore.beside_footage(tmp_path)
    try:
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        left = store.get(event_id)
        assert left is not None and left.open and left.last_seen == T0 + 3
        assert store.recover(["cam_2"]) == 0, "another camera's recovery leaves it"
        assert store.recover(["cam_1"]) == 1
        closed = store.get(event_id)
        assert closed is not None and closed.end == T0 + 3 and closed.score == 0.9 and closed.zones == ["driveway"]
        assert len(store.find(EventFilter(cameras=["cam_1"]))) == 2, "the one closed before the kill is there too"
    finally:
        store.close()


def test_events_go_with_the_footage_they_point_to(tmp_path: Path) -> None:
    store = EventStore.beside_footage(tmp_path)
    try:
        old = store.start("cam_1", "person", "yolo", T0, zones=["driveway"], end=T0 + 5)
        store.set_thumbnail(old.id, b"jpeg", T0)
        going_on = store.start("cam_1", "person", "yolo", T0)  # open: it protects itself
        straddling = store.start("cam_1", "car", "yolo", T0 + 50, end=T0 + 120)
        other = store.start("cam_2", "person", "yolo", T0, end=T0 + 5)
        assert store.prune("cam_1", before=T0 + 100) == 1, "only what ended before cam_1's oldest footage"
        assert store.get(old.id) is None and store.thumbnail(old.id) is None
        assert store._db.execute("SELECT count(*) FROM event_zones WHERE event_id = ?", (old.id,)).fetchone()[0] == 0
        assert all(store.get(e.id) is not None for e in (going_on, straddling, other))
    finally:
        store.close()


def test_a_database_of_a_newer_camctl_or_not_a_database_is_one_clear_storage_error(tmp_path: Path) -> None:
    path = database_path(tmp_path)
    EventStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=99")
    with pytest.raises(StorageError, match="newer camctl"):
        EventStore(path)
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all, but long enough to be read as one " * 100)
    with pytest.raises(StorageError, match="cannot open the events database"):
        EventStore(garbage)
