"""Test helpers for ingest: a NATS subscriber in a thread, an `camctl ingest` child, HTTP fetches."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import nats

from tests.harness import CamctlProcess

Event = tuple[str, dict[str, Any], float]  # subject, payload, when received


class EventTap:
    """Subscribes to subjects on a real NATS server; events land in a queue the test reads with a
    timeout. nats-py reconnects by itself when the server restarts."""

    def __init__(self, url: str, subjects: list[str], **options: Any) -> None:
        """options: more for nats.connect (tls=...)."""
        self.url = url
        self.options = options
        self.subjects = subjects
        self.events: queue.Queue[Event] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        nc = await nats.connect(self.url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.5, **self.options)

        async def handler(msg: Any) -> None:
            self.events.put((msg.subject, json.loads(msg.data), time.time()))

        for subject in self.subjects:
            await nc.subscribe(subject, cb=handler)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.close()

    def wait(self, what: str, match: Callable[[Event], bool], timeout: float) -> Event:
        """The next event that matches; fails the test after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if match(event):
                return event

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10), "could not subscribe to NATS"
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def Ingest(config: Path, data_dir: Path) -> CamctlProcess:  # noqa: N802 - reads as a class
    """`camctl ingest` as a child process."""
    return CamctlProcess(config, data_dir, "ingest")


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body); status 0 when nothing answers (not started yet, or gone)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback test URLs
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
    except OSError:
        return 0, {}, b""


def write_ingest_config(path: Path, camera_urls: dict[str, str], nats_url: str, port: int, extra: str = "") -> Path:
    """A camctl.yaml for ingest tests and benchmarks: the cameras, a test NATS, HTTP on a loopback port."""
    cameras = "".join(f"  {cam}: {url}\n" for cam, url in camera_urls.items())
    path.write_text(f"cameras:\n{cameras}nats: {{url: '{nats_url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n{extra}")
    return path
