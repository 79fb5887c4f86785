"""Places each frame on the wall clock, so that segments line up with real time and with each other.

A camera's timestamps start anywhere, reset when it reboots or reconnects, jump when its clock is
set, rewind when a server loops a file (VLC), and run a little fast or slow; frames arrive in bursts
and, after a stall, late. The arrival time is the truth over seconds; the camera's spacing is the
truth from one frame to the next (no network jitter in the file). So a frame goes at the previous
one plus the camera's interval, and the clock is steered back towards arrival by shrinking or
stretching intervals by at most SLEW: playback never looks sped up or slowed down, and the
recording never wanders from real time by more than a burst's worth (MAX_LEAD). Only when the
camera really stopped sending (its own clock and the arrivals agree) does the timeline jump, and
it says so (`hole`): the recorder journals that as a gap.

B-frames (a camera or server that reorders, such as VLC serving an x264 file) arrive in decode
order with presentation times going back and forth; decode times are made strictly increasing and
never after the presentation time, as MP4 requires.
"""

from __future__ import annotations

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
DTS_TICK = 1 / 90000  # the least step between decode times (one tick of the MP4 time base)


@dataclass(frozen=True)
class Placement:
    dts: float  # wall-clock decode time: strictly increasing
    pts: float  # wall-clock presentation time, never before dts
    hole: float = 0.0  # seconds the camera sent nothing before this frame (a gap to journal)


@dataclass
class Timeline:
    step: float = DEFAULT_STEP  # the camera's frame interval, as last seen
    reanchors: int = 0
    _head: tuple[float, float] | None = field(default=None, repr=False)  # (camera s, wall) of the newest frame
    _last_dts: float | None = field(default=None, repr=False)
    _behind_since: float | None = field(default=None, repr=False)
    _reorder: float = field(default=0.0, repr=False)  # how far presentation runs ahead of decode
    _since_head: int = field(default=0, repr=False)  # frames since the newest (B-frames come between)

    def restart(self) -> None:
        """A new session (reconnect): the camera's clock starts over, ours goes on."""
        self._head, self._behind_since, self._reorder = None, None, 0.0

    def place(self, camera_seconds: float, now: float) -> Placement:
        """Wall-clock times of a frame with presentation time camera_seconds, arrived at now."""
        hole = 0.0
        self._since_head += 1
        if self._head is None:
            pts = now if self._last_dts is None else max(now, self._last_dts + self.step)
            self._head = (camera_seconds, pts)
        else:
            head_cam, head_wall = self._head
            delta = camera_seconds - head_cam
            if -MAX_REORDER < delta <= 0:  # a reordered frame: shown before the newest one
                pts = head_wall + delta
                self._reorder = min(MAX_REORDER, max(self._reorder, -delta))
            else:
                pts, hole = self._advance(delta, head_wall, now)
                self._head = (camera_seconds, pts)
                self._since_head = 0
        dts = pts - self._reorder
        if self._last_dts is not None:
            dts = max(dts, self._last_dts + DTS_TICK)
        self._last_dts = dts
        return Placement(dts, max(pts, dts), hole)

    def _advance(self, delta: float, head_wall: float, now: float) -> tuple[float, float]:
        """(wall time, hole) of a new newest frame, delta camera seconds after the previous one."""
        if not 0 < delta <= MAX_STEP:  # the camera's clock jumped, reset or rewound
            self.reanchors += 1
            if now - head_wall > MAX_STEP:  # and our clock says time passed meanwhile: it really paused
                return self._jump(head_wall, now)
            delta = self.step  # it streamed on: keep the spacing, drop the jump
        else:
            self.step = delta / max(1, self._since_head)  # with B-frames, several frames per step of the newest
        pts = head_wall + delta
        lead = pts - self._reorder - now  # B-frames: the newest frame is shown after later-decoded ones
        if lead > STEER_LEAD:  # ahead of arrival (a burst): shrink intervals until back
            shrink = SLEW + (MAX_SLEW - SLEW) * min(1.0, lead / MAX_LEAD)  # harder the further ahead
            pts = max(head_wall + delta * (1 - shrink), now + self._reorder + STEER_LEAD)
            if pts - now > MAX_LEAD:
                self.reanchors += 1
                pts = max(now, head_wall + self.step / 4)
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
