"""What a camera says about itself over ONVIF: maker, model, firmware, serial, its profiles (codec,
size, fps, bitrate, stream URI), its snapshot URI and its clock against ours.

onvif-zeep-async waits 30 s to connect and 90 s for an answer; every call here has the caller's
timeout instead. Its many exceptions become three, each one line with the documented exit status:
unreachable (3), not an ONVIF device (3), authentication refused (4)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from camctl.errors import CamctlError, ExitStatus
from camctl.onvif.address import OnvifAddress
from camctl.secrets import redact

STREAM_SETUP = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
DRIFT_WARNING = 5.0  # seconds between the camera's clock and ours before it is worth saying
T = TypeVar("T")


class OnvifError(CamctlError):
    exit_status = ExitStatus.UNREACHABLE
    kind = "unreachable"

    def __init__(self, address: OnvifAddress, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{address.shown}: {reason}")


class OnvifUnreachable(OnvifError):
    pass


class NotOnvif(OnvifError):
    kind = "not-onvif"


class OnvifAuthRefused(OnvifError):
    exit_status = ExitStatus.AUTH
    kind = "auth"


@dataclass(frozen=True)
class Profile:
    token: str
    name: str
    codec: str | None  # H264, H265, JPEG as the camera names it
    width: int | None
    height: int | None
    fps: float | None  # the encoder's frame rate limit
    bitrate_kbps: int | None  # its bitrate limit
    stream_uri: str | None  # rtsp://, credentials never in it, the host the one asked

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)


@dataclass(frozen=True)
class Device:
    address: str  # onvif://user:***@host:port
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    profiles: list[Profile] = field(default_factory=list)
    snapshot_uri: str | None = None
    clock_drift_s: float | None = None  # the camera's clock minus ours (whole seconds: ONVIF's resolution)
    clock_source: str | None = None  # NTP or Manual, as the camera says

    @property
    def main(self) -> Profile | None:
        """The largest profile that streams: what is recorded."""
        streams = [p for p in self.profiles if p.stream_uri]
        return max(streams, key=lambda p: p.pixels) if streams else None

    @property
    def sub(self) -> Profile | None:
        """The smallest other profile: what is watched and analysed; None with one profile."""
        main = self.main
        others = [p for p in self.profiles if p.stream_uri and main is not None and p.stream_uri != main.stream_uri]
        return min(others, key=lambda p: p.pixels) if others else None

    @property
    def clock_warning(self) -> str | None:
        if self.clock_drift_s is None or abs(self.clock_drift_s) < DRIFT_WARNING:
            return None
        ahead = "ahead of" if self.clock_drift_s > 0 else "behind"
        return f"the camera's clock is {abs(self.clock_drift_s):.0f} s {ahead} this box's: set its NTP server"

    def to_json(self) -> dict[str, Any]:
        chosen = {"main": self.main.token if self.main else None, "sub": self.sub.token if self.sub else None}
        return asdict(self) | chosen | {"clock_warning": self.clock_warning}


def read_device(address: OnvifAddress, timeout: float = 10.0) -> Device:
    """Everything `camctl probe onvif://` shows; raises OnvifUnreachable, NotOnvif, OnvifAuthRefused."""
    return asyncio.run(_guarded(address, timeout, lambda cam: _read_device(cam, address)))


def stream_uri(address: OnvifAddress, which: str, timeout: float = 10.0) -> str:
    """The RTSP URL of the camera's main (largest) or sub (smallest) profile, asked anew: some
    cameras hand out URIs with session tokens. OnvifError when it has no such profile."""
    device = asyncio.run(_guarded(address, timeout, lambda cam: _read_device(cam, address, brief=True)))
    profile = device.main if which == "main" else device.sub or device.main  # one profile: it is both
    if profile is None or profile.stream_uri is None:
        have = ", ".join(p.token for p in device.profiles) or "none"
        raise OnvifError(address, f"no {which} stream among its ONVIF profiles ({have})")
    return profile.stream_uri


async def _guarded(address: OnvifAddress, timeout: float, work: Callable[[Any], Awaitable[T]]) -> T:
    from onvif import ONVIFCamera  # type: ignore[import-untyped]  # heavy (zeep): only where ONVIF is used

    password = address.password.reveal() if address.password else ""
    # adjust_time: a camera whose clock is off refuses digests stamped with ours;
    # nat_override: its services at the address asked, whatever address it gives for them
    cam = ONVIFCamera(address.host, address.port, address.username or "", password, adjust_time=True,
                      nat_override=True)  # fmt: skip
    try:
        async with asyncio.timeout(timeout):
            await cam.update_xaddrs()
            return await work(cam)
    except TimeoutError:
        raise OnvifUnreachable(address, f"no ONVIF answer in {timeout:g} s") from None
    except OnvifError:
        raise
    except Exception as exc:  # noqa: BLE001 - zeep, aiohttp, httpx and onvif raise many kinds; three for people
        raise classify(address, exc) from None
    finally:
        with _quiet():
            await cam.close()


def classify(address: OnvifAddress, exc: BaseException) -> OnvifError:
    """What onvif-zeep-async raised, as one of our three errors (one line, no password)."""
    import zeep.exceptions
    from onvif.exceptions import ONVIFAuthError  # type: ignore[import-untyped]
    from onvif.util import is_auth_error  # type: ignore[import-untyped]

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 8:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    faults = [c for c in chain if isinstance(c, zeep.exceptions.Fault)]
    if any(isinstance(c, ONVIFAuthError) for c in chain) or any(is_auth_error(f) for f in faults):
        return OnvifAuthRefused(address, "authentication refused (check the user and password)")
    if any(isinstance(c, OSError | TimeoutError) or type(c).__name__.startswith(("ClientConnector", "Connect"))
           for c in chain):  # fmt: skip
        if any(isinstance(c, ConnectionRefusedError) or "Connect call failed" in str(c) for c in chain):
            reason = "connection refused: nothing listens on that port"
        elif any(isinstance(c, TimeoutError) for c in chain):
            reason = "no answer"
        else:
            reason = next((c.strerror for c in chain if isinstance(c, OSError) and c.strerror), type(exc).__name__)
        return OnvifUnreachable(address, f"unreachable ({redact(str(reason))})")
    if faults and faults[0].code is not None:
        return OnvifError(address, f"the camera refused: {redact(str(faults[0].message))}")
    return NotOnvif(address, "not an ONVIF device (its answer is no ONVIF SOAP)")


async def _read_device(cam: Any, asked: OnvifAddress, brief: bool = False) -> Device:
    media = await cam.create_media_service()
    profiles = []
    for raw in await media.GetProfiles():
        uri = (await media.GetStreamUri({"StreamSetup": STREAM_SETUP, "ProfileToken": raw.token})).Uri
        profiles.append(_profile(raw, _as_asked(uri, asked) if uri else None))
    if brief:
        return Device(asked.shown, profiles=profiles)
    device = await cam.create_devicemgmt_service()
    info = await device.GetDeviceInformation()
    snapshot = None
    if profiles:
        with _quiet():
            found = await cam.get_snapshot_uri(profiles[0].token)
            snapshot = _as_asked(found, asked) if found else None
    drift, source = await _clock(device)
    return Device(asked.shown, _text(info.Manufacturer), _text(info.Model), _text(info.FirmwareVersion),
                  _text(info.SerialNumber), profiles, snapshot, drift, source)  # fmt: skip


def _profile(raw: Any, uri: str | None) -> Profile:
    encoder = getattr(raw, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    rate = getattr(encoder, "RateControl", None)
    return Profile(
        token=str(raw.token), name=_text(getattr(raw, "Name", None)) or str(raw.token),
        codec=_text(getattr(encoder, "Encoding", None)),
        width=_int(getattr(resolution, "Width", None)), height=_int(getattr(resolution, "Height", None)),
        fps=_float(getattr(rate, "FrameRateLimit", None)), bitrate_kbps=_int(getattr(rate, "BitrateLimit", None)),
        stream_uri=uri,
    )  # fmt: skip


async def _clock(device: Any) -> tuple[float | None, str | None]:
    """The camera's UTC clock minus ours; asked without credentials first (as the spec allows),
    again with them (some cameras want them)."""
    answer = None
    for call in ("authless_GetSystemDateAndTime", "GetSystemDateAndTime"):
        with _quiet():
            asked_at = time.time()
            answer = await getattr(device, call)()
            ours = (asked_at + time.time()) / 2
            break
    utc = getattr(answer, "UTCDateTime", None)
    if utc is None:
        return None, None
    theirs = dt.datetime(utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour, utc.Time.Minute,
                         utc.Time.Second, tzinfo=dt.UTC).timestamp()  # fmt: skip
    return round(theirs - ours, 1), _text(getattr(answer, "DateTimeType", None))


def _as_asked(uri: str, asked: OnvifAddress) -> str:
    """The URI with the host that was asked (a camera behind NAT or with several interfaces hands
    out its own idea of its address); credentials in it left out (the camera's are used)."""
    parts = urlsplit(uri)
    if not parts.hostname:
        return uri
    host = f"[{asked.host}]" if ":" in asked.host else asked.host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


class _quiet:  # noqa: N801 - reads as contextlib.suppress
    """Suppresses what an optional ONVIF call raises (many cameras lack some)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], Exception)  # type: ignore[arg-type]
