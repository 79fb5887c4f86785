"""Parsing and formatting of durations and byte sizes as people write them in configs."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?i?b?)", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "p": 10**15,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}


def parse_duration(value: str | int | float) -> float:
    """Seconds from `90`, `90s`, `15m`, `24h`, `1d12h`, `500ms`. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 15m, 24h")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        elif text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"bad duration {value!r} (use e.g. 30s, 15m, 24h, 1d)")
    if seconds < 0:
        raise ValueError(f"bad duration {value!r}: must not be negative")
    return seconds


def parse_size(value: str | int | float) -> int:
    """Bytes from `5GB` (10^9), `5GiB` (2^30), `500M`, `1.5TB` or a plain number. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 500MB or 5GB")
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        m = _SIZE.fullmatch(value.strip())
        if not m or m[2].lower() not in _SIZE_UNITS:
            raise ValueError(f"bad size {value!r} (use e.g. 500MB, 5GB, 2TiB)")
        size = float(m[1]) * _SIZE_UNITS[m[2].lower()]
    if size < 0:
        raise ValueError(f"bad size {value!r}: must not be negative")
    return int(size)


def parse_bitrate(value: str | int | float) -> int:
    """Bits per second from `2M`, `2048k`, `4000000`. Raises ValueError."""
    text = str(value).strip().lower().removesuffix("bps").removesuffix("b")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kmg]?)", text)
    if isinstance(value, bool) or not m:
        raise ValueError(f"bad bitrate {value!r} (use e.g. 2M, 2048k)")
    return int(float(m[1]) * {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[m[2]])


def format_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    if seconds % 86400 == 0 and seconds:
        return f"{seconds / 86400:g}d"
    if seconds % 3600 == 0 and seconds:
        return f"{seconds / 3600:g}h"
    if seconds % 60 == 0 and seconds:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def iso_time(epoch: float) -> str:
    """UTC ISO 8601 with milliseconds: 2026-11-24T18:00:00.000Z."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str, now: float) -> float:
    """A moment as epoch seconds: ISO 8601 (no zone: local time), `now`, or relative to now
    like `-10m`, `-1h30m`, `-90s`."""
    from datetime import datetime

    text = value.strip()
    if text.lower() == "now":
        return now
    if text.startswith("-"):
        return now - parse_duration(text[1:])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time (use ISO 8601 like 2026-11-24T18:00:00Z, or -10m, or now)") from None
    return moment.timestamp()  # naive: the host's local time, as a person types it
