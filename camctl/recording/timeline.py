"""Places each frame on the wall clock, so that segments line up with real time and with each other.

A camera's timestamps start anywhere, reset when it reboots or reconnects, jump when its clock is
set, rewind when a server loops a file (VLC), and run a little fast or slow; frames arrive in bursts
and, after a stall, late. The arrival time is the truth over seconds; the camera's spacing is the
truth from one frame to the next (no network jitter in the file). So a frame goes at the previous
one plus the camera's interval, and the clock is steered back towards arrival by shrinking or
stretching intervals by a tenth (SLEW; up to half right after a burst put frames far ahead), so
playback looks normal and the recording never wanders from real time by more than a burst's
worth (MAX_LEAD). Only when the
camera really stopped sending (its own clock and the arrivals agree) does the timeline jump, and
it says so (`hole`): the recorder journals that as a gap.

B-frames (a camera or server that reorders, such as VLC serving an x264 file) arrive in decode
order with presentation times going back and forth; decode times are made strictly increasing and
never after the presentation time, as MP4 requires.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass, field

DEFAULT_STEP = 1 / 25  # until the camera's own frame interval has been seen
MAX_STEP = 1.0  # a camera interval beyond this (or backwards) is a clock jump, not frame spacing
MAX_REORDER = 0.5  # presentation times this far back from the newest are reordered frames, not a rewind
SLEW = 0.1  # how much an interval shrinks or stretches to steer towards the arrival times
MAX_SLEW = 0.5  # ... and shrinks at most, when a burst put frames far ahead
MAX_LEAD = 1.0  # seconds a frame may be placed ahead of its arrival (after a burst) before a hard re-anchor
STEER_LEAD = 0.1  # ahead of arrival by more than this (more than network jitter): intervals shrink
STEER_LAG = 0.25  # behind arrival by more than this: intervals stretch
HOLE_LAG = 1.0  # behind arrival by more than this for HOLE_AFTER seconds: the camera paused; jump
HOLE_AFTER = 1.0
RECENT = 32  # frames whose camera times are remembered, to spot one sent twice
DTS_TICK = 1 / 90000  # the least step between decode times (one tick of the MP4 time base)
MIN_APART = 0.001  # presentation times of recent frames are at least this far apart


@dataclass(frozen=True)
class Placement:
    dts: float  # wall-clock decode time: strictly increasing
    pts: float  # wall-clock presentation time, never before dts
    hole: float = 0.0  # seconds the camera sent nothing before this frame (a gap to journal)


@dataclass
class Timeline:
    step: float = DEFAULT_STEP  # the camera's frame interval, as lately seen
    reanchors: int = 0
    _heads: collections.deque[tuple[float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=8), repr=False
    )  # (camera s, wall) of the newest frames in presentation order: B-frames fall between them
    _last_dts: float | None = field(default=None, repr=False)
    _behind_since: float | None = field(default=None, repr=False)
    _reorder: float = field(default=0.0, repr=False)  # how far decode runs behind presentation
    _since_head: int = field(default=0, repr=False)  # frames since the newest (B-frames come between)
    _steps: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=15), repr=False)
    _recent: dict[float, None] = field(default_factory=dict, repr=False)  # camera times seen lately, in order
    _shown: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=RECENT), repr=False)
    _latest_shown: float = field(default=-math.inf, repr=False)  # the latest of _shown

    def restart(self) -> None:
        """A new session (reconnect): the camera's clock starts over, ours goes on."""
        self._heads.clear()
        self._behind_since, self._reorder = None, 0.0
        self._recent.clear()

    def place(self, camera_seconds: float, now: float) -> Placement:
        """Wall-clock times of a frame with presentation time camera_seconds, arrived at now."""
        hole, newest = 0.0, True
        self._since_head += 1
        if not self._heads:
            pts = now if self._last_dts is None else max(now, self._last_dts + self.step)
            self._new_head(camera_seconds, pts)
        else:
            head_cam, head_wall = self._heads[-1]
            delta = camera_seconds - head_cam
            repeat = camera_seconds in self._recent  # a server looping its file sends a seam twice
            if -MAX_REORDER < delta <= 0 and not repeat:  # a reordered frame: shown before the newest one
                pts, newest = self._between(camera_seconds), False
                self._reorder = min(MAX_REORDER, max(self._reorder, -delta))
            else:
                if 0 < delta <= MAX_STEP and not repeat:
                    self._steps.append(delta / self._since_head)  # B-frames share the newest's interval
                    steps = sorted(self._steps)  # the median, without statistics' per-call checks (every frame)
                    half = len(steps) // 2
                    self.step = steps[half] if len(steps) % 2 else (steps[half - 1] + steps[half]) / 2
                pts, hole = self._advance(self.step if repeat else delta, head_wall, now)
                self._new_head(camera_seconds, pts, keep=not hole and 0 < delta <= MAX_STEP and not repeat)
        # Decode times advance a frame interval per frame (frames arrive in decode order), never past
        # the presentation time nor far behind it (after a jump); a newest frame is decoded early
        # enough for the reordered frames that follow it in decode order but are shown before it.
        dts = pts
        if self._last_dts is not None:
            latest = pts - self._reorder - self.step / 2 if newest and self._reorder else pts
            nominal = max(self._last_dts + self.step, pts - self._reorder - self.step)
            dts = max(self._last_dts + DTS_TICK, min(latest, nominal))
        self._last_dts = dts
        if len(self._recent) >= RECENT:
            self._recent.pop(next(iter(self._recent)))
        self._recent[camera_seconds] = None
        shown = max(pts, dts)
        # A frame placed from a sent-twice seam can land on the very instant of one shown before it
        # (a B-frame interpolated from a repeated head): two pictures at one time, one never seen.
        # The usual frame comes after all of them: no need to look (this runs for every frame).
        if shown < self._latest_shown + MIN_APART:
            while any(abs(shown - other) < MIN_APART for other in self._shown):
                shown += MIN_APART
        self._shown.append(shown)
        self._latest_shown = max(self._latest_shown, shown)
        return Placement(dts, shown, hole)

    def _new_head(self, camera_seconds: float, wall: float, keep: bool = False) -> None:
        """keep: the camera clock ran on smoothly, so older heads still place B-frames."""
        if not keep:
            self._heads.clear()
        self._heads.append((camera_seconds, wall))
        self._since_head = 0

    def _between(self, camera_seconds: float) -> float:
        """A reordered frame's wall time, interpolated between the newest frames around it."""
        heads = list(self._heads)
        for (cam_a, wall_a), (cam_b, wall_b) in itertools.pairwise(reversed(heads)):
            if cam_b < camera_seconds <= cam_a:  # reversed: a is the later one
                return wall_b + (camera_seconds - cam_b) * (wall_a - wall_b) / (cam_a - cam_b)
        cam, wall = heads[0]  # before everything we know of (just after connecting or a jump)
        return wall + (camera_seconds - cam)

    def _advance(self, delta: float, head_wall: float, now: float) -> tuple[float, float]:
        """(wall time, hole) of a new newest frame, delta camera seconds after the previous one."""
        if not 0 < delta <= MAX_STEP:  # the camera's clock jumped, reset or rewound
            self.reanchors += 1
            if now - head_wall > MAX_STEP:  # and our clock says time passed meanwhile: it really paused
                return self._jump(head_wall, now)
            # It streamed on: keep the spacing, drop the jump, and leave room for the B-frames that
            # come after this frame but are shown before it.
            delta = self.step + self._reorder
        pts = head_wall + delta
        lead = pts - self._reorder - now  # B-frames: the newest frame is shown after later-decoded ones
        if lead > STEER_LEAD:  # ahead of arrival (a burst): shrink intervals until back
            shrink = SLEW + (MAX_SLEW - SLEW) * min(1.0, lead / MAX_LEAD)  # harder the further ahead
            pts = max(head_wall + delta * (1 - shrink), now + self._reorder + STEER_LEAD)
            if pts - self._reorder - now > MAX_LEAD:
                self.reanchors += 1
                pts = max(now + self._reorder, head_wall + self.step / 4)
        elif -lead > STEER_LAG:  # behind: stretch intervals; persistently far behind: it paused
            self._behind_since = self._behind_since or now
            if -lead > HOLE_LAG and now - self._behind_since >= HOLE_AFTER:
                return self._jump(head_wall, now)
            return min(head_wall + delta * (1 + SLEW), now), 0.0
        self._behind_since = None
        return pts, 0.0

    def _jump(self, head_wall: float, now: float) -> tuple[float, float]:
        self._behind_since = None
        self.reanchors += 1
        return now, max(0.0, now - (head_wall + self.step))
