"""`camctl status`: camera health from every camctl on the bus (a fleet), or from the local one.

Each running camctl answers a request on seguranca.camera.status.get with its cameras' status
(the seed's status payload plus error, reconnects, last frame age, node). Replies are gathered for
a short moment, so one command shows every node sharing the NATS cluster. Without NATS it asks
the local HTTP server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors

from camctl.bus.client import connect_options
from camctl.bus.embedded import EMBEDDED_URL
from camctl.bus.subjects import STATUS_REQUEST_SUBJECT
from camctl.config import Config, NatsConfig
from camctl.errors import CamctlError, ExitStatus
from camctl.paths import default_data_dir
from camctl.signing import local_url


class NoService(CamctlError):
    exit_status = ExitStatus.UNREACHABLE


@dataclass(frozen=True)
class FleetStatus:
    source: str  # where the answers came from
    cameras: list[dict[str, Any]]  # one per camera and node
    copy: dict[str, Any] | None = None  # this node's copy elsewhere (copy.to), when run-all says it

    @property
    def all_online(self) -> bool:
        return bool(self.cameras) and all(c.get("online") for c in self.cameras)


def gather_status(config: Config, wait: float = 0.5) -> FleetStatus:
    url = config.nats.url or EMBEDDED_URL
    cameras = asyncio.run(_ask_nats(url, wait, config.nats if config.nats.url else None))
    source = f"NATS {url}"
    if cameras is None:
        cameras, source = _ask_http(config), f"HTTP {config.http.local_url}/status"
    if cameras is None:
        raise NoService(
            f"no camctl service answered (NATS at {url}, HTTP at {config.http.local_url}): "
            "start camctl ingest or camctl run-all"
        )
    reported = {c["camera_id"] for c in cameras if c.get("node") == config.node}
    for cam in config.cameras.values():  # configured here, but no service reports it
        if cam.enabled and cam.id not in reported and not any(c["camera_id"] == cam.id for c in cameras):
            cameras.append({"camera_id": cam.id, "node": config.node, "online": False, "error": "not ingested"})
    cameras.sort(key=lambda c: (str(c.get("node")), str(c["camera_id"])))
    local = _local_status(config) if config.offsite is not None else None
    copy = local.get("copy") if isinstance(local, dict) else None
    return FleetStatus(source, cameras, copy if isinstance(copy, dict) else None)


async def _ask_nats(url: str, wait: float, credentials: NatsConfig | None) -> list[dict[str, Any]] | None:
    """Every node's reply within `wait` seconds; None when NATS is unreachable or nobody answers."""

    async def quietly(_exc: Exception) -> None:
        """nats-py would log a traceback per failed try; HTTP is asked next, which says enough."""

    try:
        servers = [u.strip() for u in url.split(",")]
        options = connect_options(credentials)
        # Bounded: nats-py retries a refused first connect forever, even without reconnects.
        connecting = nats.connect(servers, connect_timeout=1, max_reconnect_attempts=0, allow_reconnect=False,
                                  error_cb=quietly, **options)  # fmt: skip
        nc = await asyncio.wait_for(connecting, 2.0)
    except (OSError, TimeoutError, ValueError, nats.errors.Error):  # no NATS here (or it refuses us): try HTTP
        return None
    replies: list[dict[str, Any]] = []
    try:
        inbox = nc.new_inbox()

        async def collect(msg: Any) -> None:
            with contextlib.suppress(ValueError, TypeError):
                replies.append(json.loads(msg.data))

        await nc.subscribe(inbox, cb=collect)
        await nc.publish(STATUS_REQUEST_SUBJECT, b"", reply=inbox)
        await nc.flush()
        await asyncio.sleep(wait)  # a fleet: wait for every node, not just the first
    finally:
        await nc.close()
    if not replies:
        return None
    return [dict(c, node=r.get("node")) for r in replies for c in r.get("cameras", [])]


def _local_status(config: Config) -> Any:
    """The local service's /status, or None."""
    url = local_url(config.http, default_data_dir(), "/status")
    if url is None:
        return None
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:  # noqa: S310
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _ask_http(config: Config) -> list[dict[str, Any]] | None:
    data = _local_status(config)
    cameras = data.get("cameras") if isinstance(data, dict) else None
    return cameras if isinstance(cameras, list) else None
