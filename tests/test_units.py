from __future__ import annotations

import pytest

from camctl.units import format_size, parse_bitrate, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        (90, 90),
        ("90s", 90),
        ("15m", 900),
        ("24h", 86400),
        ("1d12h", 129600),
        ("500ms", 0.5),
        ("1w", 604800),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24x", "h", "-5s", "1h-2m", True])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("5GB", 5 * 10**9), ("5 GiB", 5 * 2**30), ("500M", 500 * 10**6), ("1.5TB", 1_500_000_000_000), (1024, 1024)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "5XB", "-1GB", "GB"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_bitrates_and_formatting() -> None:
    assert parse_bitrate("2M") == 2_000_000
    assert parse_bitrate("2048k") == 2_048_000
    assert format_size(21.6e9) == "21.6 GB"
