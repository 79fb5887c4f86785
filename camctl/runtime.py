"""The one asyncio main of camctl's long-running services (`ingest`, a run-all worker, `run-all`),
and their start-up: the embedded NATS when none is configured, the bus, the HTTP server.

Nothing here waits for NATS (the bus connects in the background); the HTTP server is up before
the service starts its cameras, and a port that cannot be taken is one clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from camctl.bus.client import Bus
from camctl.bus.embedded import EmbeddedNats
from camctl.config import NatsConfig
from camctl.errors import CamctlError, ExitStatus
from camctl.lifecycle import die_with_parent, exit_if_shutdown_hangs, stop_if_orphaned

Body = Callable[[asyncio.Event, asyncio.Event], Awaitable[None]]


def run_until_signalled(body: Body, hang_after: float = 15.0, reload: bool = False, child: bool = False) -> None:
    """Runs body(stop, hup) on a new event loop. SIGTERM/SIGINT set `stop` (and the process exits
    anyway `hang_after` seconds later if shutting down hangs); with reload, SIGHUP sets `hup`;
    a child dies with its parent."""

    async def main() -> None:
        stop, hup = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_stop() -> None:
            stop.set()
            exit_if_shutdown_hangs(hang_after)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_stop)
        if child:
            die_with_parent()
            stop_if_orphaned()
        if reload:
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        await body(stop, hup)

    asyncio.run(main())


class ListenError(CamctlError):
    """The HTTP address cannot be taken (in use, not this machine's): the config's to fix (exit 2)."""

    exit_status = ExitStatus.USAGE


def check_listen(label: str, host: str, port: int) -> None:
    """Fails now, before a banner promises an address that cannot be had (another camctl runs,
    or another program has the port). The server binds it again a moment later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            sock.bind((host or "0.0.0.0", port))
    except OSError as exc:
        hint = "; is another camctl running? (camctl status)" if exc.errno == errno.EADDRINUSE else ""
        raise ListenError(f"cannot listen on {label}: {exc.strerror or exc}{hint}") from None


@dataclass(frozen=True)
class Listen:
    """Where the HTTP server listens: TCP host:port, or a unix socket (a run-all worker)."""

    label: str  # as the config says it, for errors
    host: str = ""
    port: int = 0
    unix: Path | None = None


@contextlib.asynccontextmanager
async def bus_and_http(
    nats_url: str | None,
    bus_name: str,
    app: Callable[[Bus], web.Application],
    listen: Listen,
    credentials: NatsConfig | None = None,
) -> AsyncIterator[Bus]:
    """The service's bus (with an embedded nats-server when nats_url is None) and its HTTP server
    serving app(bus), for the duration of the block; stopped in reverse order after it."""
    embedded = None
    if nats_url is None:
        embedded = EmbeddedNats()
        await embedded.start()
        nats_url = embedded.url
    bus = Bus(nats_url, name=bus_name, credentials=credentials if embedded is None else None)
    # Endless streams (live video, MJPEG, events) never finish by themselves: at shutdown their
    # handlers get a moment, then are cancelled, instead of aiohttp's minute.
    runner = web.AppRunner(app(bus), access_log=None, shutdown_timeout=1.0)
    try:
        await bus.connect()
        await runner.setup()
        try:
            if listen.unix is not None:
                await web.UnixSite(runner, str(listen.unix)).start()
            else:
                await web.TCPSite(runner, listen.host, listen.port).start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {listen.label}: {exc.strerror or exc}") from None
        yield bus
    finally:
        await runner.cleanup()
        await bus.close()
        if embedded is not None:
            embedded.stop()
