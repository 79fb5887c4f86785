"""camctl's HTTP server: where it listens, how others reach it, who may look, and its limits."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from camctl.config.base import Between, Duration, PathError, SecretText, Section, Text
from camctl.secrets import Secret


class HttpConfig(Section):
    listen: Text = Field("127.0.0.1:8080", description="HOST:PORT; beyond loopback, users are required")
    public_url: Text = Field(
        "http://127.0.0.1:8080",
        description="this box as other machines reach it: the base of event URLs and the page's links",
    )
    max_viewers: Annotated[int, Between(1, 1000, integer=True)] = Field(20, description="live viewers per camera")
    max_connections: Annotated[int, Between(1, 100000, integer=True)] = Field(256, description="requests at once")
    max_connections_per_client: Annotated[int, Between(1, 100000, integer=True)] = Field(
        32, description="requests at once from one client address"
    )
    max_clip: Duration = Field(3600.0, description="the longest range one recording.mp4 request may ask for")
    # HTTP basic users (name -> password); None: no authentication (loopback, or `users: none`)
    users: dict[str, SecretText] | None = Field(
        None, description="{name: password} for HTTP basic (required beyond loopback), or none"
    )

    @classmethod
    def prepare(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        listen = str(data.get("listen", "127.0.0.1:8080"))
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise PathError("listen", f"{listen!r} is not HOST:PORT (e.g. 0.0.0.0:8080)")
        if not _valid_host(host.strip("[]")):
            raise PathError("listen", f"{host!r} is not an IP address or host name")
        if data.get("public_url") is None:
            shown_host = "127.0.0.1" if host.strip("[]") in ("", "0.0.0.0", "::") else host
            data["public_url"] = f"http://{shown_host}:{port}"
        users = data.get("users")
        if isinstance(users, str) and users.strip().lower() == "none":
            data["users"] = None
        elif users is None and not _loopback(host):
            raise PathError(
                "users",
                f"http.listen {listen} is reachable from other machines and no users are set: add "
                "users: {operator: ${CAMCTL_HTTP_PASSWORD}} (HTTP basic), or users: none to serve "
                "cameras and recordings to anyone on the network",
            )
        if data.get("max_clip") is None:
            data.pop("max_clip", None)
        return data

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str) -> str:
        url = url.rstrip("/")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url

    @field_validator("users")
    @classmethod
    def _users(cls, users: dict[str, Secret] | None) -> dict[str, Secret] | None:
        if users is None:
            return None
        for name, password in users.items():
            if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name):
                raise PathError(name, "user names use letters, digits and _ . @ -")
            if len(password.reveal()) < 8:
                raise PathError(name, "a password of at least 8 characters")
        if not users:
            raise ValueError("no users: name at least one, or say users: none")
        return users

    @property
    def authenticated(self) -> bool:
        return bool(self.users)

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "0.0.0.0"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def local_url(self) -> str:
        """Where a client on this box reaches the server: loopback when it listens on every address."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host if ':' not in host else f'[{host}]'}:{self.port}"


def _valid_host(host: str) -> bool:
    """An IP address, or a host name; text that looks like an address must be one (256.1.1.1)."""
    if not host:
        return True  # all addresses
    if ":" in host or re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return False
        return True
    return re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.?)*", host) is not None


def _loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    return host in ("localhost", "::1") or host.startswith("127.")
