"""`camctl motion`: motion detection on the cameras' analysis frames, as events on NATS.

A consumer of camctl like any other (the example a YOLO service copies): `camctl.client.Frames`
per camera (shared memory on the camera's box, JPEG elsewhere), `MotionDetector` on each picture,
`seguranca.camera.motion` events when motion starts and when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable

from camctl.analysis.motion import MotionDetector, MotionEvent, Sensitivity, luma_of
from camctl.bus.client import bus_of, connect_or_fail
from camctl.bus.subjects import MOTION_SUBJECT
from camctl.client import Frames, NoFrames, UnknownCamera
from camctl.config import CameraConfig, Config, NatsConfig
from camctl.errors import BusUnreachable
from camctl.lifecycle import stop_on_signals
from camctl.recording.motion_log import append_motion
from camctl.storage.retention import Limits

log = logging.getLogger("camctl.motion")


def watch_camera(
    camera: CameraConfig,
    bus: tuple[str, NatsConfig | None],
    fps: float,
    stop: threading.Event,
    on_event: Callable[[MotionEvent], None],
) -> None:
    """Runs in a thread per camera until stop; reattaches when frames stop coming."""
    detector = MotionDetector(camera.id, Sensitivity.of(camera.motion))
    while not stop.is_set():
        try:
            with Frames(camera.id, fps=fps, nats_url=bus[0], nats=bus[1], timeout=5.0) as frames:
                while not stop.is_set():
                    frame = frames.next()
                    event = detector.push(luma_of(frame.array, frame.format), frame.timestamp, frame.number)
                    if event is not None:
                        on_event(event)
        except NoFrames:
            log.warning("%s: no frames for 5s; waiting for the camera", camera.id)
        except (UnknownCamera, BusUnreachable) as exc:
            log.error("%s; trying again in 5s", exc)
            stop.wait(5.0)
        except Exception:  # a bug must show, and not silence the other cameras' watchers
            log.exception("%s: motion watcher failed; starting again in 5s", camera.id)
            stop.wait(5.0)


def run_motion(config: Config, cameras: list[CameraConfig], fps: float, printer: Callable[[MotionEvent], None]) -> None:
    """Until SIGTERM/SIGINT: a watcher per camera, events published and printed, and movements
    that ended noted beside the camera's footage when it is recorded on this box."""
    bus = bus_of(config.nats)
    storage = config.storage

    def note(event: MotionEvent) -> None:
        printer(event)
        if event.state == "end" and event.end is not None:
            try:
                # kept as long as the footage it keeps (the motion tier)
                keep = Limits.of(storage.retention).age_of("motion")
                append_motion(storage.root, event.camera_id, event.start, event.end, event.score, keep)
            except OSError as exc:  # the events went out; only the timeline's marks are missing
                log.warning("%s: motion not noted beside the footage: %s", event.camera_id, exc)

    asyncio.run(_run(bus, cameras, fps, note))


async def _run(
    bus: tuple[str, NatsConfig | None], cameras: list[CameraConfig], fps: float, printer: Callable[[MotionEvent], None]
) -> None:
    nc = await connect_or_fail(bus[0], 5.0, bus[1])  # the command's own connection, for publishing
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    sending: set[asyncio.Task[None]] = set()  # held until sent: the loop keeps tasks only weakly

    def send(payload: bytes) -> None:
        task = loop.create_task(nc.publish(MOTION_SUBJECT, payload))
        sending.add(task)
        task.add_done_callback(sending.discard)

    def publish(event: MotionEvent) -> None:  # from a camera's thread
        printer(event)
        loop.call_soon_threadsafe(send, json.dumps(event.to_json()).encode())

    threads = [threading.Thread(target=watch_camera, args=(cam, bus, fps, stop, publish), daemon=True,
                                name=f"motion-{cam.id}") for cam in cameras]  # fmt: skip
    with stop_on_signals(stop):
        for thread in threads:
            thread.start()
        log.info("watching %d camera(s) for motion at %g fps; events on %s", len(cameras), fps, MOTION_SUBJECT)
        while not stop.is_set():
            await asyncio.sleep(0.2)
    for thread in threads:
        await loop.run_in_executor(None, thread.join, 6.0)
    with contextlib.suppress(Exception):  # NATS away at the end: the events were printed anyway
        await nc.flush(timeout=2)
    await nc.close()
