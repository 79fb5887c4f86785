"""Places each frame on the wall clock, so that segments line up with real time and with each other.

A camera's timestamps start anywhere, may reset when it reboots or jump when its clock is set, and
restart on every reconnect. The timeline anchors the camera's clock to the host's at the first frame
of a session and follows the camera's own spacing from there (smooth, no network jitter); when the
camera's clock goes backwards or drifts too far from ours, it re-anchors instead of writing a
non-monotonic or absurd timestamp into a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_STEP = 1 / 25  # until the camera's own frame interval has been seen


@dataclass
class Timeline:
    max_skew: float = 5.0  # seconds the camera clock may stray from ours before re-anchoring
    step: float = DEFAULT_STEP  # the latest frame interval, for the duration of the last frame
    reanchors: int = 0
    _anchor: tuple[float, float] | None = field(default=None, repr=False)  # (wall, camera seconds)
    _last: float | None = field(default=None, repr=False)

    def restart(self) -> None:
        """A new session (reconnect): the camera's clock starts over, ours goes on."""
        self._anchor = None

    def place(self, camera_seconds: float, now: float) -> float:
        """Wall-clock time of a frame; strictly increasing across the whole life of the timeline."""
        if self._anchor is None:
            t = now if self._last is None else max(now, self._last + self.step)
            self._anchor = (t, camera_seconds)
        else:
            wall, cam = self._anchor
            t = wall + (camera_seconds - cam)
            if self._last is not None and (t <= self._last or abs(t - now) > self.max_skew):
                t = max(now, self._last + self.step) if abs(t - now) > self.max_skew else self._last + self.step
                self._anchor = (t, camera_seconds)
                self.reanchors += 1
        if self._last is not None and 0 < t - self._last < 1.0:
            self.step = t - self._last
        self._last = t
        return t
