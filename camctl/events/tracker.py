"""From detections in frames to events: one walking person is one event, not one per frame.

A camera's tracker takes each frame's detections (label, score, box) from one source (an analysis
service, camctl's motion) and matches them to the objects it follows: same label, boxes that
overlap the most (greedy by intersection over union). An object becomes an event once it has
been seen in `min_frames` frames (a flicker is not an event); it enters a zone when its box's foot
does; it is an alert when the camera's rule says so (its label, a zone it entered), and it ends
when it has not been seen for `hold`. Pure logic, no I/O: the caller stores what it says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from camctl.config.events import EventsConfig
from camctl.rules.polygons import Polygon, contains, foot

MIN_OVERLAP = 0.1  # intersection over union for a box to be the same object one frame later


@dataclass(frozen=True)
class Detection:
    label: str
    score: float
    box: tuple[float, float, float, float]  # x, y, w, h: fractions of the picture


@dataclass
class Track:
    """An object followed across frames; an event once `started`."""

    key: int  # the tracker's own number for it
    label: str
    first_seen: float
    last_seen: float
    box: tuple[float, float, float, float]
    frames: int = 1
    score: float = 0.0  # the best seen
    best_time: float = 0.0  # when: the thumbnail's frame
    zones: list[str] = field(default_factory=list)  # entered, in order
    severity: str = "detection"
    started: bool = False


@dataclass(frozen=True)
class Change:
    """What the caller does: `start` a new event, `update` it (seen again), `end` it."""

    kind: str  # start | update | end
    track: Track  # as it was at this change (a copy: the tracker goes on changing its own)
    better: bool = False  # a better score than before: take a new thumbnail from this frame
    new_zones: tuple[str, ...] = ()
    raised: bool = False  # it became an alert


class Tracker:
    """One camera's objects from one source."""

    def __init__(self, rules: EventsConfig, zones: Mapping[str, Polygon]) -> None:
        self.rules = rules
        self.zones = dict(zones)
        self.tracks: list[Track] = []
        self._next = 1

    def push(self, seen: float, detections: Sequence[Detection]) -> list[Change]:
        """One frame's detections at `seen` (its timestamp); what changed, ends of objects unseen
        for `hold` included."""
        wanted = [d for d in detections if d.score >= self.rules.min_score]
        pairs = sorted(
            ((_iou(t.box, d.box), n, i) for n, t in enumerate(self.tracks) for i, d in enumerate(wanted)
             if t.label == d.label),
            reverse=True,
        )  # fmt: skip
        matched_tracks: set[int] = set()
        matched: set[int] = set()
        changes: list[Change] = []
        for overlap, n, i in pairs:
            if overlap < MIN_OVERLAP:
                break
            if n in matched_tracks or i in matched:
                continue
            matched_tracks.add(n)
            matched.add(i)
            changes += self._seen(self.tracks[n], seen, wanted[i])
        for i, detection in enumerate(wanted):
            if i not in matched:
                track = Track(self._next, detection.label, seen, seen, detection.box)
                self._next += 1
                self.tracks.append(track)
                changes += self._seen(track, seen, detection, first=True)
        return changes + self.expire(seen)

    def expire(self, now: float) -> list[Change]:
        """Ends the objects unseen for `hold` (call it also when no detections come)."""
        gone = [t for t in self.tracks if now - t.last_seen >= self.rules.hold]
        self.tracks = [t for t in self.tracks if now - t.last_seen < self.rules.hold]
        return [Change("end", _snapshot(t)) for t in gone if t.started]

    def close_all(self) -> list[Change]:
        """Ends every event now (the camera stops): each at its last sighting."""
        ended = [Change("end", _snapshot(t)) for t in self.tracks if t.started]
        self.tracks = []
        return ended

    def _seen(self, track: Track, seen: float, detection: Detection, first: bool = False) -> list[Change]:
        if not first:
            track.frames += 1
            track.last_seen = max(track.last_seen, seen)
            track.box = detection.box
        better = detection.score > track.score
        if better:
            track.score, track.best_time = detection.score, seen
        x, y = foot(detection.box)
        entered = tuple(z for z, polygon in self.zones.items() if z not in track.zones and contains(polygon, x, y))
        track.zones += entered
        raised = track.severity != "alert" and self._alerts(track)
        if raised:
            track.severity = "alert"
        if not track.started:
            if track.frames < self.rules.min_frames:
                return []
            track.started = True
            return [Change("start", _snapshot(track), better=True, new_zones=tuple(track.zones), raised=raised)]
        return [Change("update", _snapshot(track), better=better, new_zones=entered, raised=raised)]

    def _alerts(self, track: Track) -> bool:
        return severity_of(self.rules, track.label, track.zones) == "alert"


def severity_of(rules: EventsConfig, label: str, zones: Sequence[str]) -> str:
    """alert when the camera's rule says so (its label, and a zone it entered where the rule names
    zones), else detection."""
    rule = rules.alert
    if rule.labels is not None and label not in rule.labels:
        return "detection"
    return "alert" if rule.zones is None or any(z in rule.zones for z in zones) else "detection"


def _snapshot(track: Track) -> Track:
    return replace(track, zones=list(track.zones))


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = min(ax + aw, bx + bw) - max(ax, bx)
    h = min(ay + ah, by + bh) - max(ay, by)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)
