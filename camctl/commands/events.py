"""`camctl events`: what happened, newest first, from the events database beside the footage;
`events show ID` one of them; `events review` marks them looked at."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from camctl.errors import UsageError
from camctl.events.store import Event, EventFilter, EventStore, database_path


@dataclass(frozen=True)
class EventList:
    database: Path
    events: tuple[Event, ...]
    more: bool  # a further page exists: ask with --before the last one's start

    def to_json(self) -> dict[str, Any]:
        return {"database": str(self.database), "events": [e.to_json() for e in self.events], "more": self.more}


def list_events(root: Path, wanted: EventFilter) -> EventList:
    """The events the filter wants, newest first; none at all where nothing was ever recorded."""
    if not database_path(root).is_file():
        return EventList(database_path(root), (), False)
    store = EventStore.beside_footage(root)
    try:
        found = store.find(replace(wanted, limit=wanted.limit + 1))  # one more: is there a next page
    finally:
        store.close()
    return EventList(store.path, tuple(found[: wanted.limit]), len(found) > wanted.limit)


def show_event(root: Path, event_id: str) -> Event:
    """One event by its id; UsageError (exit 2) for one that is not there."""
    store = _existing(root, event_id)
    try:
        event = store.get(event_id)
    finally:
        store.close()
    if event is None:
        raise UsageError(f"no event {event_id!r} in {store.path} (camctl events lists them)")
    return event


EVENT_MARGIN = 5.0  # seconds of footage before and after an event in its clip


def event_window(root: Path, event_id: str, margin: float = EVENT_MARGIN) -> tuple[str, float, float]:
    """(camera id, from, to) of the footage around an event; one still going on ends at its last
    sighting."""
    event = show_event(root, event_id)
    end = event.end if event.end is not None else event.last_seen
    return event.camera_id, event.start - margin, end + margin


def review_events(root: Path, event_ids: list[str] | None, reviewed: bool = True) -> int:
    """Marks these events (None: every one) reviewed, or not any more; how many changed. An id
    that is not there is a UsageError naming it, and nothing changes."""
    store = _existing(root, event_ids[0] if event_ids else None)
    try:
        if event_ids:
            missing = [i for i in event_ids if store.get(i) is None]
            if missing:
                raise UsageError(f"no event {', '.join(map(repr, missing))} in {store.path} (camctl events lists them)")
        return store.mark_reviewed(event_ids, reviewed)
    finally:
        store.close()


def _existing(root: Path, event_id: str | None) -> EventStore:
    if not database_path(root).is_file():
        what = f"no event {event_id!r}" if event_id else "no events"
        raise UsageError(f"{what}: nothing has happened yet under {root} (no {database_path(root).name})")
    return EventStore.beside_footage(root)
