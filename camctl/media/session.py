"""One session per camera, shared by every consumer (recorder, decoder for analysis, grid).

Cameras often allow only one or two RTSP sessions, so a camera is read once and each packet is
handed to every consumer in turn, in the session's thread. The session owns connecting, the
reconnect backoff (exponential with jitter, so that cameras behind one switch do not retry in
lockstep; longer for a refused password, which will not fix itself within seconds) and the
stall timeout; consumers only hear about it through the callbacks below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import tenacity

from camctl.config import StreamView
from camctl.errors import AuthFailed, CameraError, CameraTimeout
from camctl.lifecycle import StoppableThread
from camctl.media.connect import open_source
from camctl.media.source import Packet, Source, StreamInfo

log = logging.getLogger("camctl.session")


class Consumer(Protocol):
    def on_connected(self, info: StreamInfo) -> None: ...

    def on_packet(self, packet: Packet, arrived: float) -> None: ...

    def on_audio(self, packet: Packet, arrived: float) -> None:
        """An audio packet (only when the camera sends audio and its config keeps it)."""

    def on_offline(self, reason: str, kind: str) -> None:
        """The camera could not be reached or dropped out; kind: unreachable, timeout, auth."""

    def on_stopped(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    auth_maximum: float = 300.0
    jitter: float = 1.0


DEFAULT_BACKOFF = Backoff()


class CameraSession(StoppableThread):
    def __init__(
        self,
        camera: StreamView,
        consumers: Sequence[Consumer],
        backoff: Backoff = DEFAULT_BACKOFF,
        read_timeout: float | None = None,
        open_camera: Callable[[StreamView, float | None], Source] = open_source,
    ) -> None:
        super().__init__(f"camera-{camera.id}")
        self.camera = camera
        self.consumers = list(consumers)
        self.backoff = backoff
        self.read_timeout = read_timeout
        self.open_camera = open_camera
        self.online = False  # what consumers report (health, counters) they measure themselves

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                source = self._connect()
                if source is None:
                    break
                try:
                    self._read(source)
                except CameraError as exc:
                    self._offline(exc)
                finally:
                    source.close()
        except Exception:  # a bug must not go unnoticed, nor take the other cameras down
            log.exception("%s: camera session failed", self.camera.id)
        finally:
            self.online = False
            self._notify("on_stopped")

    def _connect(self) -> Source | None:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CameraError),
            wait=self._wait,
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._sleep,
            before_sleep=self._retry_log,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self.open_camera(self.camera, self.read_timeout)
        except CameraError:
            return None  # stopped while the camera was down
        return None

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop request cuts the backoff short

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        ceiling = self.backoff.auth_maximum if isinstance(exc, AuthFailed) else self.backoff.maximum
        wait = tenacity.wait_exponential_jitter(initial=self.backoff.initial, max=ceiling, jitter=self.backoff.jitter)
        return float(wait(state))

    def _retry_log(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, CameraError):
            self._offline(exc, quiet=True)
            wait = state.next_action.sleep if state.next_action else 0.0
            log.warning("%s: %s; retrying in %.1fs (%s)", self.camera.label, exc.reason, wait, self.camera.display_url)

    def _read(self, source: Source) -> None:
        info = source.info
        audio = self.camera.camera.audio and info.audio is not None
        self.online = True
        log.info("%s: connected (%s)", self.camera.label, info.describe())
        self._notify("on_connected", info)
        # Audio keeps the socket busy: a camera whose video stalls must still count as stalled.
        stall = self.read_timeout or self.camera.timeout
        last_video = time.monotonic()
        for packet in source.packets(audio=audio):
            if self._stop.is_set():
                return
            arrived = time.time()
            if audio and source.is_audio(packet):
                if time.monotonic() - last_video > stall:
                    raise CameraTimeout(self.camera.id, f"no video for {stall:g}s (audio goes on)")
                self._hand("on_audio", packet, arrived)
                continue
            last_video = time.monotonic()
            self._hand("on_packet", packet, arrived)

    def _hand(self, method: str, packet: Packet, arrived: float) -> None:
        for consumer in self.consumers:
            try:
                getattr(consumer, method)(packet, arrived)
            except CameraError:
                raise
            except Exception:  # one consumer's bug must not starve the others
                log.exception("%s: %s failed on a packet", self.camera.id, type(consumer).__name__)

    def _offline(self, exc: CameraError, quiet: bool = False) -> None:
        was_online, self.online = self.online, False
        if was_online and not quiet:
            log.warning("%s: offline: %s", self.camera.label, exc.reason)
        self._notify("on_offline", exc.reason, exc.kind)

    def _notify(self, method: str, *args: object) -> None:
        for consumer in self.consumers:
            try:
                getattr(consumer, method)(*args)
            except Exception:  # one consumer's bug must not starve the others
                log.exception("%s: %s failed in %s", self.camera.id, method, type(consumer).__name__)
