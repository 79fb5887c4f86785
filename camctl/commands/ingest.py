"""`camctl ingest` (and run-all's per-camera worker): decode cameras, publish frames and status on
NATS, serve the JPEG behind each event over HTTP. The service itself is `camctl.ingest.service`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from camctl.config import CameraConfig, Config
from camctl.ingest.service import IngestService, WorkerOptions


def ingest(config: Config, cameras: list[CameraConfig], reload: Callable[[], Config] | None) -> None:
    """Until SIGTERM/SIGINT; SIGHUP re-reads the config when `reload` is given."""
    IngestService(config, cameras, reload=reload).serve()


def camera_worker(config: Config, camera_id: str, socket: Path, nats_url: str, restarts: int) -> None:
    """One camera under run-all: ingest and record it, serve its routes on `socket` for the front."""
    worker = WorkerOptions(socket, nats_url, restarts)
    IngestService(config, [config.camera(camera_id)], record=True, worker=worker).serve()
