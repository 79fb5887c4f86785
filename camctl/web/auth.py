"""Who may use the HTTP front: HTTP basic users from the config, and URLs signed by this node.

Analysis services that only hear NATS get each frame event's `url` signed (an HMAC of the path and
an expiry, with a key kept in camctl's data folder), so they fetch the JPEG without a password; a
signature is good for its path only, until it expires. Failed logins are counted per client
address and answered 429 when too many; the log names the user and address, never the password.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from camctl.config import HttpConfig
from camctl.secrets import Secret
from camctl.signing import Signer, url_key

log = logging.getLogger("camctl.http")

MAX_FAILURES = 10  # failed logins from one address within FAILURE_WINDOW before it is refused
FAILURE_WINDOW = 60.0
MAX_TRACKED = 4096  # addresses whose failures are remembered, before quiet ones are forgotten
# container health checks; the app's manifest and icons (a home screen fetches them without the
# password; they show no camera)
OPEN_PATHS = frozenset({"/healthz", "/static/manifest.webmanifest", "/static/icon.svg", "/static/icon-180.png",
                        "/static/icon-192.png", "/static/icon-512.png"})  # fmt: skip
REALM = 'Basic realm="camctl", charset="UTF-8"'

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """The middleware: basic users, or a signed URL, or 401."""

    def __init__(self, users: dict[str, Secret], signer: Signer) -> None:
        self._users = {name.encode(): secret.reveal().encode() for name, secret in users.items()}
        self.signer = signer
        self._failures: dict[str, collections.deque[float]] = {}

    def user(self, header: str | None) -> str | None:
        """The user a valid `Authorization: Basic` header names, else None (constant time per user)."""
        given = _basic(header)
        if given is None:
            return None
        name, password = given
        found = None
        for user, expected in self._users.items():
            if hmac.compare_digest(name, user) & hmac.compare_digest(password, expected):
                found = user.decode()
        return found

    def _refused(self, address: str, now: float) -> bool:
        failures = self._failures.get(address)
        if failures is None:
            return False
        while failures and failures[0] < now - FAILURE_WINDOW:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return False
        return len(failures) >= MAX_FAILURES

    def _failed(self, address: str, header: str, now: float) -> None:
        if len(self._failures) > MAX_TRACKED:  # many addresses failing: forget the ones that went quiet
            self._failures = {a: f for a, f in self._failures.items() if f and f[-1] >= now - FAILURE_WINDOW}
        failures = self._failures.setdefault(address, collections.deque())
        failures.append(now)
        given = _basic(header)
        name = given[0].decode("utf-8", "replace") if given else "?"
        if len(failures) in (1, MAX_FAILURES):  # the first, and when it starts being refused
            log.warning("HTTP login refused for user %r from %s (%d in %gs)", name[:64], address, len(failures),
                        FAILURE_WINDOW)  # fmt: skip

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        address = request.remote or "?"
        now = time.monotonic()
        if self._refused(address, now):
            raise web.HTTPTooManyRequests(text='{"error": "too many failed logins; wait a minute"}',
                                          content_type="application/json", headers={"Retry-After": "60"})  # fmt: skip
        header = request.headers.get("Authorization")
        if self.user(header) is not None:
            return await handler(request)
        if "sig" in request.query:
            why = self.signer.check(request.path, request.query.get("exp", ""), request.query["sig"])
            if why is None:
                return await handler(request)
            raise web.HTTPForbidden(text=f'{{"error": "{why}"}}', content_type="application/json")
        if header:
            self._failed(address, header, now)
        raise web.HTTPUnauthorized(text='{"error": "authentication required"}', content_type="application/json",
                                   headers={"WWW-Authenticate": REALM})  # fmt: skip


def _basic(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) of an `Authorization: Basic` header."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        name, _, password = base64.b64decode(header[6:].strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return None
    return name, password


def signer_for(http: HttpConfig, data_dir: Path) -> Signer | None:
    """What signs event URLs: only when HTTP has users (else URLs are plain)."""
    return Signer(url_key(data_dir)) if http.authenticated else None


def gate_for(http: HttpConfig, data_dir: Path) -> Gate | None:
    return Gate(http.users or {}, Signer(url_key(data_dir))) if http.authenticated else None
