"""`onvif://user:pass@host[:port]`: where a camera's ONVIF service is, and who logs in."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from camctl.errors import UsageError
from camctl.secrets import Secret, redact

DEFAULT_PORT = 80


@dataclass(frozen=True)
class OnvifAddress:
    host: str
    port: int = DEFAULT_PORT
    username: str | None = None
    password: Secret | None = None

    @property
    def shown(self) -> str:
        """For people and logs: the password is never in it."""
        user = f"{quote(self.username, safe='')}:***@" if self.username else ""
        return f"onvif://{user}{self.netloc}"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORT else f"{host}:{self.port}"


def parse_onvif_url(text: str) -> OnvifAddress:
    """onvif://[user[:password]@]host[:port]; UsageError (one line, no password) otherwise."""
    text = text.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise UsageError(f"{redact(text)!r} is not a valid onvif:// URL (bad port?)") from None
    if parts.scheme.lower() != "onvif" or not parts.hostname:
        raise UsageError(f"{redact(text)!r} is not an onvif://[user:password@]host[:port] URL")
    password = Secret(unquote(parts.password)) if parts.password is not None else None
    redact.register(password)
    user = unquote(parts.username) if parts.username is not None else None
    return OnvifAddress(parts.hostname, port or DEFAULT_PORT, user, password)
