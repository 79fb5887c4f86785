"""Keeping credentials out of every output: a Secret type and a redactor for free text."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@")


class Secret:
    """A string that never shows itself in repr/str/format; `reveal()` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class Redactor:
    """Masks URL passwords and every password camctl has been told about, wherever they appear."""

    def __init__(self) -> None:
        self._known: set[str] = set()

    def register(self, secret: Secret | str | None) -> None:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        # Very short values would mask innocent text; URL userinfo is masked separately anyway.
        if value and len(value) >= 3:
            self._known.add(value)

    def __call__(self, text: str) -> str:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        for value in sorted(self._known, key=len, reverse=True):
            text = text.replace(value, MASK)
        return text

    def data(self, value: Any) -> Any:
        """Masks every string value of JSON-like data, leaving keys alone (a key named
        `password` is not a secret, even where some camera's password is the word "password")."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: self.data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(v) for v in value]
        return value


redact = Redactor()


def mask_url(url: str, username: str | None = None, has_password: bool = False) -> str:
    """The URL as shown to people: `rtsp://admin:***@host/path`, never the password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # as written, also when its port is out of range
    user = parts.username if parts.username is not None else username
    if user is not None:
        shown = f"{user}:{MASK}" if (has_password or parts.password is not None) else user
        host = f"{shown}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
