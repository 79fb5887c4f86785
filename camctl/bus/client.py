"""camctl's NATS connections: a publisher that never stops ingest (`Bus`), a consumer's connection
that fails in one line (`connect_or_fail`), the configured credentials as nats-py's options."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats
from nats.aio.client import Client

from camctl.bus.embedded import EMBEDDED_URL
from camctl.bus.subjects import encode
from camctl.config import NatsConfig
from camctl.errors import BusUnreachable
from camctl.secrets import redact

log = logging.getLogger("camctl.bus")


AUTH_REFUSED = "credentials refused (authorization violation)"


def connect_options(credentials: NatsConfig | None) -> dict[str, Any]:
    """nats-py's options for the configured credentials (none for the embedded server, which
    listens on loopback only). A missing or unreadable file is a ValueError naming it."""
    if credentials is None:
        return {}
    options: dict[str, Any] = {}
    if credentials.user is not None and credentials.password is not None:
        options |= {"user": credentials.user, "password": credentials.password.reveal()}
    if credentials.token is not None:
        options["token"] = credentials.token.reveal()
    if credentials.creds is not None:
        if not credentials.creds.is_file():
            raise ValueError(f"nats.creds {credentials.creds}: no such file")
        options["user_credentials"] = str(credentials.creds)
    if credentials.tls_ca or credentials.tls_cert:
        try:
            context = ssl.create_default_context(cafile=str(credentials.tls_ca) if credentials.tls_ca else None)
            if credentials.tls_cert and credentials.tls_key:
                context.load_cert_chain(str(credentials.tls_cert), str(credentials.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"nats.tls: {exc.strerror or exc}") from None
        options["tls"] = context
    return options


def bus_of(config: NatsConfig) -> tuple[str, NatsConfig | None]:
    """Where a consumer finds camctl's events, and how it logs in: the configured NATS with its
    user, token, creds and TLS, or run-all's embedded server (loopback, no credentials)."""
    return (config.url, config) if config.url else (EMBEDDED_URL, None)


async def connect_or_fail(url: str, timeout: float, credentials: NatsConfig | None = None) -> Client:
    """A client for a consumer of camctl's events (`camctl motion`, `camctl.client`): the first
    connect has `timeout` to succeed, else BusUnreachable in one line (nats-py alone would retry
    forever, printing a traceback each time); once connected it reconnects forever, quietly."""
    errors: list[str] = []
    refused = asyncio.Event()  # credentials refused: retrying until the timeout would not mend them

    async def quietly(exc: Exception) -> None:
        errors.append(nats_error_reason(exc))
        if errors[-1] == AUTH_REFUSED:
            refused.set()

    servers = [u.strip() for u in url.split(",")]
    connecting: asyncio.Task[Client] | None = None
    waiting = asyncio.ensure_future(refused.wait())
    try:
        options = connect_options(credentials)
        client = nats.connect(servers, connect_timeout=2, max_reconnect_attempts=-1, reconnect_time_wait=1,
                              error_cb=quietly, **options)  # fmt: skip
        connecting = asyncio.ensure_future(client)
        await asyncio.wait({connecting, waiting}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if connecting.done():
            return connecting.result()
        raise TimeoutError("timed out")
    except Exception as exc:  # noqa: BLE001 - nats-py raises several kinds; one for the caller
        # A refusal is the reason even when a later try saw only a reset (the server closes right after -ERR)
        reason = AUTH_REFUSED if AUTH_REFUSED in errors else errors[-1] if errors else nats_error_reason(exc)
        raise BusUnreachable(f"NATS at {redact(url)}: {reason}") from None
    finally:
        waiting.cancel()
        if connecting is not None and not connecting.done():
            connecting.cancel()


OUTBOX_MAX = 1000  # events waiting for NATS (a stalled flush) before new ones are dropped


class Bus:
    """Publishes without ever blocking or failing the caller: while NATS is away (down, refusing
    our credentials, not started yet), events are dropped and counted, and they flow once the
    client has connected by itself. Nothing waits for NATS: `connect` returns at once."""

    def __init__(self, url: str, name: str = "camctl", credentials: NatsConfig | None = None) -> None:
        self.url = url
        self.name = name
        self.credentials = credentials
        self.nc: Client | None = None
        self.published = 0
        self.dropped = 0
        self.connected = False
        self.error: str | None = None  # why NATS is not connected, for status and logs
        self._task: asyncio.Future[None] | None = None
        self._closing = False
        self._responders: list[tuple[str, Callable[[Any], Awaitable[None]]]] = []
        self._outbox: collections.deque[tuple[str, Mapping[str, Any]]] = collections.deque()
        self._outbox_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    def state(self) -> dict[str, Any]:
        """For /status: whether events go out, and why not."""
        return {"url": redact(self.url), "connected": self.connected, "error": None if self.connected else self.error,
                "published": self.published, "dropped": self.dropped}  # fmt: skip

    async def connect(self) -> None:
        """Starts connecting in the background (retried forever, also when the first try fails)."""
        self._task = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        async def disconnected() -> None:
            if self.connected and not self._closing:
                log.warning("NATS disconnected; events are dropped until it is back")
            self.connected = False

        async def reconnected() -> None:
            self.connected, self.error = True, None
            log.warning("NATS reconnected")

        async def error(exc: Exception) -> None:
            reason = nats_error_reason(exc)
            if self.error == AUTH_REFUSED and isinstance(exc, ConnectionError):
                return  # the server hangs up after refusing us: the refusal is the news
            if reason != self.error and not self.connected and not self._closing:
                # Before the first connect this is the only news; after a disconnect (its warning
                # said events are dropped) it is the retries' detail, also in /status.
                level = logging.DEBUG if self.nc is not None else logging.ERROR
                log.log(level, "NATS at %s: %s; events are dropped (and counted) until it answers",
                        redact(self.url), reason)  # fmt: skip
            self.error = reason

        self.error = "connecting"
        try:
            self.nc = await nats.connect(
                servers=[u.strip() for u in self.url.split(",")],
                name=self.name,
                allow_reconnect=True,
                max_reconnect_attempts=-1,  # forever, the first connect included: NATS may come later
                reconnect_time_wait=2,
                connect_timeout=2,
                **connect_options(self.credentials),
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad URL: events stay off, recording goes on
            self.error = nats_error_reason(exc)
            log.error("NATS at %s: %s; events are off", redact(self.url), self.error)
            return
        self.connected, self.error = True, None
        log.info("NATS connected (%s)", redact(self.url))
        for subject, handler in self._responders:
            await self.nc.subscribe(subject, cb=handler)
        self._responders.clear()

    async def publish(self, subject: str, payload: Mapping[str, Any]) -> None:
        nc = self.nc
        if nc is None or not nc.is_connected:
            self.dropped += 1
            return
        try:
            await nc.publish(subject, encode(payload))
            self.published += 1
        except Exception:  # noqa: BLE001 - a NATS hiccup never stops ingest or recording
            self.dropped += 1

    def publish_soon(self, subject: str, payload: Mapping[str, Any]) -> None:
        """Publishes from the loop without a task per message (a frame event, 30 times a second per
        camera: a Task each cost more than the rest of the event). One sender drains the outbox;
        past OUTBOX_MAX waiting (NATS stalled mid-flush) new events are dropped and counted."""
        if len(self._outbox) >= OUTBOX_MAX:
            self.dropped += 1
            return
        self._outbox.append((subject, payload))
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_outbox())
        self._outbox_ready.set()

    async def _send_outbox(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                subject, payload = self._outbox.popleft()
                await self.publish(subject, payload)

    async def respond(self, subject: str, handler: Callable[[Any], Awaitable[None]]) -> None:
        """Serves requests on subject (wildcards allowed) once connected; survives reconnects."""
        if self.nc is None:
            self._responders.append((subject, handler))  # subscribed when the first connect succeeds
            return
        await self.nc.subscribe(subject, cb=handler)

    async def close(self, timeout: float = 2.0) -> None:
        """Within `timeout`, whatever NATS is doing: a shutdown never waits for it."""
        self._closing = True
        if self._sender is not None:
            while self._outbox and self.nc is not None and self.nc.is_connected:  # what was queued still goes
                subject, payload = self._outbox.popleft()
                await self.publish(subject, payload)
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.drain() if self.nc.is_connected else self.nc.close(), timeout)


def nats_error_reason(exc: BaseException) -> str:
    """One line for people: what stops us from talking to NATS (never the URL's password)."""
    text = str(exc).strip().strip("'\"")
    lowered = text.lower()
    if "authorization" in lowered or "authentication" in lowered or "auth" in type(exc).__name__.lower():
        return AUTH_REFUSED
    if isinstance(exc, ConnectionRefusedError) or "connect call failed" in lowered or "refused" in lowered:
        return "connection refused (is nats-server running?)"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "no answer (timeout)"
    return redact(text or type(exc).__name__)
