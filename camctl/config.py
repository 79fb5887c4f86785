"""Typed configuration: discovery, `${ENV}` interpolation, strict validation.

Every error names the file and the key path, e.g. `camctl.yaml: cameras.cam_2.transprot: unknown key`.
Validation does no I/O beyond reading the file: cameras are not contacted here.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import yaml

from camctl.demo_spec import DemoSpec, parse_demo_url
from camctl.envfile import EnvFile
from camctl.errors import ConfigError, UsageError
from camctl.paths import default_data_dir
from camctl.rules.encoders import ENCODERS, X264_PRESETS
from camctl.rules.layout import MAX_TILES, grid_size_ok
from camctl.rules.target import Target
from camctl.secrets import Secret, mask_url, redact
from camctl.units import format_duration, parse_bitrate, parse_duration, parse_size

Transport = Literal["tcp", "udp", "auto"]
TRANSPORTS: tuple[Transport, ...] = ("tcp", "udp", "auto")
_T = TypeVar("_T")

BUILTIN_DEMO = "<built-in demo config>"
DEFAULT_TIMEOUT = 10.0

_CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class TranscodeConfig:
    """Re-encode the camera's stream at `bitrate` before recording (stream copy when absent)."""

    bitrate: int
    encoder: str = "auto"
    min_bitrate: int | None = None  # floor for the dynamic bitrate; default a quarter of bitrate
    preset: str | None = None  # libx264's preset, pinned (the encoder ladder then only halves the rate)


ANALYSIS_FORMATS = ("yuv420p", "gray", "rgb24", "bgr24")


@dataclass(frozen=True)
class AnalysisConfig:
    """How the camera's analysis frames go into shared memory (for consumers on this box)."""

    width: int | None = None  # scaled to this width, keeping the shape; None: the camera's size
    format: str = "yuv420p"  # the decoder's own (no conversion), or gray, rgb24, bgr24
    slots: int = 4  # pictures kept: a consumer that falls that far behind skips to the newest


@dataclass(frozen=True)
class MotionConfig:
    """`camctl motion`'s sensitivity for the camera."""

    threshold: float = 25.0  # grey levels a pixel must change by (above the sensor's noise)
    min_area: float = 0.005  # fraction of the picture that must change
    hold: float = 2.0  # seconds without motion before it ends


@dataclass(frozen=True)
class CameraConfig:
    id: str
    url: str  # credentials removed; see connect_url()
    username: str | None = None
    password: Secret | None = None
    transport: Transport = "tcp"
    timeout: float = DEFAULT_TIMEOUT
    name: str = ""
    enabled: bool = True
    analysis_fps: float | None = None
    slug: str = ""
    transcode: TranscodeConfig | None = None
    audio: bool = True  # record the camera's audio (AAC/Opus copied, G.711 as AAC) when it sends any
    restream: Secret | None = None  # rtsp:// URL the camera's packets are published to (may hold a password)
    analysis: AnalysisConfig = AnalysisConfig()
    motion: MotionConfig = MotionConfig()

    @property
    def restream_shown(self) -> str | None:
        return mask_url(self.restream.reveal()) if self.restream else None

    @property
    def is_demo(self) -> bool:
        return self.url.startswith("demo:")

    @property
    def demo(self) -> DemoSpec:
        return parse_demo_url(self.url)

    @property
    def display_url(self) -> str:
        """The URL for people and logs: the password is always masked."""
        if self.is_demo:
            return self.url
        return mask_url(self.url, self.username, self.password is not None)

    def connect_url(self) -> str:
        """The URL handed to FFmpeg, credentials included: never print it."""
        if self.is_demo or self.username is None:
            return self.url
        parts = urlsplit(self.url)
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.reveal(), safe="")
        return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, ""))


@dataclass(frozen=True)
class RetentionConfig:
    max_age: float | None = 86400.0
    max_bytes: int | None = None
    min_free: int | None = 5 * 10**9


@dataclass(frozen=True)
class StorageConfig:
    root: Path = field(default_factory=lambda: default_data_dir() / "recordings")
    segment_seconds: float = 60.0
    retention: RetentionConfig = RetentionConfig()


@dataclass(frozen=True)
class IngestConfig:
    status_interval: float = 5.0  # seconds between status events (and at once on any change)
    stall_seconds: float = 5.0  # no frame for this long: offline, and reconnect
    hardware_decode: bool = True  # NVDEC / V4L2 M2M when the box has them


@dataclass(frozen=True)
class NatsConfig:
    url: str | None = None  # None: camctl starts an embedded nats-server
    user: str | None = None
    password: Secret | None = field(default=None, compare=False)
    token: Secret | None = field(default=None, compare=False)
    creds: Path | None = None  # a NATS credentials file (JWT + nkey seed)
    tls_ca: Path | None = None  # the CA that signed the servers' certificates
    tls_cert: Path | None = None  # a client certificate, when the servers ask for one
    tls_key: Path | None = None


@dataclass(frozen=True)
class HttpConfig:
    listen: str = "127.0.0.1:8080"
    public_url: str = "http://127.0.0.1:8080"
    max_viewers: int = 20  # live viewers per camera; more are answered 503
    max_connections: int = 256  # requests served at once (streams hold theirs); more: 503
    max_connections_per_client: int = 32  # the same, from one client address
    max_clip: float = 3600.0  # seconds of footage one recording.mp4 request may ask for
    # HTTP basic users (name -> password); None: no authentication (loopback, or `users: none`)
    users: dict[str, Secret] | None = field(default=None, compare=False)

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


@dataclass(frozen=True)
class GridConfig:
    """The grid `run-all` keeps running (camctl grid with these options, fed by the camera workers)."""

    output: str
    cameras: tuple[str, ...] | None = None  # None: every enabled camera (up to 9)
    width: int = 1920
    height: int = 1080
    fps: int = 30
    bitrate: int = 4_000_000
    min_bitrate: int | None = None
    preset: str | None = None  # libx264's preset, pinned (the encoder ladder then only halves the rate)


@dataclass(frozen=True)
class Config:
    source: str  # the file it came from, or BUILTIN_DEMO
    cameras: dict[str, CameraConfig]
    storage: StorageConfig = field(default_factory=StorageConfig)
    nats: NatsConfig = NatsConfig()
    http: HttpConfig = HttpConfig()
    ingest: IngestConfig = IngestConfig()
    encoder: str = "auto"  # auto: the best that opens (camctl probe --encoders), or an FFmpeg encoder name
    node: str = field(default_factory=socket.gethostname)  # names this box in events (a fleet shares NATS)
    grid: GridConfig | None = None

    def camera(self, camera_id: str) -> CameraConfig:
        """Look a camera up by id or slug (`cam_1` or `cam1`)."""
        for cam in self.cameras.values():
            if camera_id in (cam.id, cam.slug):
                return cam
        known = ", ".join(self.cameras) or "none"
        raise ConfigError(f"unknown camera {camera_id!r} (known: {known})")

    def select(self, camera_ids: list[str] | None) -> list[CameraConfig]:
        """The named cameras, or every enabled one when none are named."""
        if camera_ids:
            return [self.camera(c) for c in camera_ids]
        return [c for c in self.cameras.values() if c.enabled]


def find_config_file(explicit: Path | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """--config, then $CAMCTL_CONFIG, then ./camctl.yaml, then /etc/camctl/camctl.yaml; None: demo."""
    env = os.environ if environ is None else environ
    for named, how in ((explicit, "--config"), (env.get("CAMCTL_CONFIG") or None, "$CAMCTL_CONFIG")):
        if named is not None:
            path = Path(named)
            if not path.is_file():
                raise ConfigError(f"{path}: config file not found (given by {how})")
            return path
    for candidate in (Path("camctl.yaml"), Path("/etc/camctl/camctl.yaml")):
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    env = os.environ if environ is None else environ
    path = find_config_file(explicit, env)
    if path is None:
        return demo_config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    secrets = EnvFile.beside(path)
    if secrets is None:
        return parse_config(text, str(path), env)
    # The process environment wins over the file, as a variable given on the command line should.
    unreadable = f"{secrets.path} is not readable: {secrets.problem}" if secrets.problem else None
    return parse_config(text, str(path), {**secrets.values, **env}, unreadable)


def demo_config() -> Config:
    """Four synthetic cameras, no network, recordings in the user's data directory."""
    patterns = ("testsrc2", "smptehdbars", "testsrc", "rgbtestsrc")
    cams = {
        f"cam_{i}": CameraConfig(
            id=f"cam_{i}",
            url=f"demo:?size=1280x720&fps=15&pattern={patterns[i - 1]}",
            name=f"Demo camera {i}",
            slug=f"cam{i}",
        )
        for i in range(1, 5)
    }
    return Config(
        source=BUILTIN_DEMO,
        cameras=cams,
        http=HttpConfig(listen="127.0.0.1:8080", public_url="http://127.0.0.1:8080"),
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML where a key given twice in one mapping is an error, not "the last one wins" (two
    `cam_2:` entries would silently drop a camera)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_config(
    text: str, source: str = "camctl.yaml", environ: Mapping[str, str] | None = None, env_hint: str | None = None
) -> Config:
    """`env_hint` is added to a missing variable's error (why the secrets file gave nothing)."""
    env = os.environ if environ is None else environ
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: {where}{problem}") from None
    return _Parser(source, env, env_hint).config({} if data is None else data)


class _Parser:
    """Walks the parsed YAML, interpolating and checking each value against its key path."""

    def __init__(self, source: str, environ: Mapping[str, str], env_hint: str | None = None) -> None:
        self.source = source
        self.environ = environ
        self.env_hint = env_hint

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")

    # --- generic readers -------------------------------------------------------------------

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected a mapping, got {_type_name(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.error(path, f"keys must be strings, got {key!r}")
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                more = f" (did you mean {hint[0]}?)" if hint else f" (known: {', '.join(allowed)})"
                raise self.error(_join(path, key), "unknown key" + more)
        return cast(dict[str, Any], value)

    def text(self, value: Any, path: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(path, f"expected a string, got {_type_name(value)}")
        return self.interpolate(str(value), path) if isinstance(value, str) else str(value)

    def optional_text(self, value: Any, path: str) -> str | None:
        return None if value is None else self.text(value, path)

    def number(self, value: Any, path: str, low: float, high: float) -> float:
        raw = self.text(value, path) if isinstance(value, str) else value
        try:
            if isinstance(raw, bool):
                raise ValueError
            number = float(raw)
        except (TypeError, ValueError):
            raise self.error(path, f"expected a number, got {_type_name(value)} {value!r}") from None
        if not low <= number <= high:
            raise self.error(path, f"{number:g} is out of range ({low:g} to {high:g})")
        return number

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            text = self.interpolate(value, path).strip().lower()
            if text in ("true", "yes", "on", "1"):
                return True
            if text in ("false", "no", "off", "0"):
                return False
        raise self.error(path, f"expected true or false, got {value!r}")

    def duration(self, value: Any, path: str) -> float | None:
        return self._parsed(value, path, parse_duration)

    def size(self, value: Any, path: str) -> int | None:
        return self._parsed(value, path, parse_size)

    def _parsed(self, value: Any, path: str, parse: Callable[[str], _T]) -> _T | None:
        if value is None:
            return None
        try:
            return parse(self.text(value, path))
        except ValueError as exc:
            raise self.error(path, str(exc)) from None

    def interpolate(self, text: str, path: str) -> str:
        def replace(m: re.Match[str]) -> str:
            if m[0] == "$$":
                return "$"
            name, default = m[1], m[2]
            value = self.environ.get(name)
            if value:
                return value
            if default is not None:
                return default
            if value is not None:
                return value
            why = f"; {self.env_hint}" if self.env_hint else ""
            raise self.error(path, f"environment variable {name} is not set (use ${{{name}:-default}}){why}")

        return _ENV_REF.sub(replace, text)

    # --- sections -------------------------------------------------------------------------

    def config(self, data: Any) -> Config:
        top = self.mapping(
            data, "", ("defaults", "cameras", "storage", "nats", "http", "ingest", "encoder", "node", "grid")
        )
        defaults = self.camera_defaults(top.get("defaults", {}))
        cams_raw = top.get("cameras")
        if cams_raw is None or cams_raw == {}:
            raise self.error("cameras", "no cameras configured (add at least one under cameras:)")
        if not isinstance(cams_raw, dict):
            raise self.error("cameras", f"expected a mapping of camera id to settings, got {_type_name(cams_raw)}")
        cameras: dict[str, CameraConfig] = {}
        for cam_id, raw in cams_raw.items():
            cam = self.camera(str(cam_id), raw, defaults)
            clash = next((c.id for c in cameras.values() if cam.slug in (c.id, c.slug)), None)
            if clash:
                raise self.error(f"cameras.{cam.id}", f"slug {cam.slug!r} collides with camera {clash}")
            cameras[cam.id] = cam
        return Config(
            source=self.source,
            cameras=cameras,
            storage=self.storage(top.get("storage", {})),
            nats=self.nats(top.get("nats", {})),
            http=self.http(top.get("http", {})),
            ingest=self.ingest(top.get("ingest", {})),
            encoder=(encoder := self.encoder(top.get("encoder", "auto"))),  # checked in this order, then the grid
            node=self.text(top["node"], "node") if top.get("node") else socket.gethostname(),
            grid=self.grid(top["grid"], cameras, encoder) if top.get("grid") else None,
        )

    def grid(self, raw: Any, cameras: dict[str, CameraConfig], encoder: str) -> GridConfig:
        m = self.mapping(raw, "grid", ("output", "cameras", "size", "fps", "bitrate", "min_bitrate", "preset"))
        if "output" not in m:
            raise self.error("grid.output", "missing (rtsp://mediamtx:8554/grid, a .mp4/.mkv file, or an HLS folder)")
        chosen = None
        if m.get("cameras") is not None:
            if not isinstance(m["cameras"], list) or not m["cameras"]:
                raise self.error("grid.cameras", "expected a list of camera ids")
            for cam in m["cameras"]:
                if str(cam) not in cameras:
                    raise self.error("grid.cameras", f"unknown camera {cam!r}")
            chosen = tuple(str(cam) for cam in m["cameras"])
        count = len(chosen) if chosen else sum(1 for c in cameras.values() if c.enabled)
        if count > MAX_TILES:
            raise self.error("grid.cameras", f"a grid holds up to {MAX_TILES} cameras: name the {count} to show")
        width, height = 1920, 1080
        if "size" in m:
            size = re.fullmatch(r"(\d+)x(\d+)", self.text(m["size"], "grid.size").strip().lower())
            if not size or not grid_size_ok(int(size[1]), int(size[2])):
                raise self.error("grid.size", "expected WIDTHxHEIGHT, even, at least 64 (e.g. 1920x1080)")
            width, height = int(size[1]), int(size[2])
        rates = self.bitrates(m, "grid")
        output = self.text(m["output"], "grid.output")
        try:
            Target.parse(output)
        except UsageError as exc:
            raise self.error("grid.output", str(exc).removeprefix(f"output {output!r}: ")) from None
        return GridConfig(
            output=output,
            cameras=chosen,
            width=width,
            height=height,
            fps=int(self.number(m.get("fps", 30), "grid.fps", 1, 60)),
            bitrate=rates.get("bitrate", 4_000_000),
            min_bitrate=rates.get("min_bitrate"),
            preset=self.preset(m.get("preset"), "grid.preset", encoder),
        )

    def camera_defaults(self, raw: Any) -> dict[str, Any]:
        path = "defaults"
        m = self.mapping(raw or {}, path, ("username", "password", "transport", "timeout", "transcode", "audio",
                                           "restream", "analysis", "motion"))  # fmt: skip
        return {
            "motion": self.motion(m.get("motion"), f"{path}.motion"),
            "analysis": self.analysis(m.get("analysis"), f"{path}.analysis"),
            "restream": self.optional_text(m.get("restream"), f"{path}.restream"),
            "audio": self.boolean(m.get("audio", True), f"{path}.audio"),
            "transcode": self.transcode(m.get("transcode"), f"{path}.transcode"),
            "username": self.optional_text(m.get("username"), f"{path}.username"),
            "password": self.password(m.get("password"), f"{path}.password"),
            "transport": self.transport(m.get("transport", "tcp"), f"{path}.transport"),
            "timeout": self.timeout(m.get("timeout"), f"{path}.timeout", DEFAULT_TIMEOUT),
        }

    def camera(self, cam_id: str, raw: Any, defaults: dict[str, Any]) -> CameraConfig:
        path = f"cameras.{cam_id}"
        if not _CAMERA_ID.fullmatch(cam_id):
            raise self.error(path, "camera ids use letters, digits, _ and - (they name files and NATS subjects)")
        if isinstance(raw, str):  # shorthand: `cam_1: rtsp://...`
            raw = {"url": raw}
        keys = ("url", "name", "username", "password", "transport", "timeout", "enabled", "analysis_fps", "slug",
                "transcode", "audio", "restream", "analysis", "motion")  # fmt: skip
        m = self.mapping(raw, path, keys)
        if "url" not in m:
            raise self.error(f"{path}.url", "missing (rtsp://host:554/stream or demo:)")
        url = self.text(m["url"], f"{path}.url").strip()
        url, url_user, url_password = self.camera_url(url, f"{path}.url")
        if url_user is not None and ("username" in m or "password" in m):
            raise self.error(path, "credentials are both in the url and in username/password: keep one")
        username = url_user if url_user is not None else self.optional_text(m.get("username"), f"{path}.username")
        password = url_password or self.password(m.get("password"), f"{path}.password")
        if url_user is None and "username" not in m:
            username = defaults["username"]
        if url_user is None and "password" not in m:
            password = defaults["password"]
        if url.startswith("demo:"):
            username, password = None, None
        slug = self.text(m["slug"], f"{path}.slug") if "slug" in m else cam_id.replace("_", "").lower()
        if not _CAMERA_ID.fullmatch(slug):
            raise self.error(f"{path}.slug", "use letters, digits, _ and -")
        fps = m.get("analysis_fps")
        return CameraConfig(
            id=cam_id,
            url=url,
            username=username,
            password=password,
            transport=self.transport(m.get("transport", defaults["transport"]), f"{path}.transport"),
            timeout=self.timeout(m.get("timeout"), f"{path}.timeout", defaults["timeout"]),
            name=self.text(m.get("name", cam_id), f"{path}.name"),
            enabled=self.boolean(m.get("enabled", True), f"{path}.enabled"),
            analysis_fps=None if fps is None else self.number(fps, f"{path}.analysis_fps", 0.1, 120),
            slug=slug,
            transcode=self.transcode(m["transcode"], f"{path}.transcode")
            if "transcode" in m
            else defaults["transcode"],
            audio=self.boolean(m.get("audio", defaults["audio"]), f"{path}.audio"),
            restream=self.restream(m["restream"] if "restream" in m else defaults["restream"], cam_id, slug,
                                   f"{path}.restream" if "restream" in m else "defaults.restream"),
            analysis=self.analysis(m["analysis"], f"{path}.analysis") if "analysis" in m else defaults["analysis"],
            motion=self.motion(m["motion"], f"{path}.motion") if "motion" in m else defaults["motion"],
        )  # fmt: skip

    def motion(self, raw: Any, path: str) -> MotionConfig:
        m = self.mapping(raw or {}, path, ("threshold", "min_area", "hold"))
        base = MotionConfig()
        hold = self.duration(m.get("hold"), f"{path}.hold")
        return MotionConfig(
            threshold=self.number(m.get("threshold", base.threshold), f"{path}.threshold", 1, 254),
            min_area=self.number(m.get("min_area", base.min_area), f"{path}.min_area", 0.0001, 1),
            hold=base.hold if hold is None else hold,
        )

    def analysis(self, raw: Any, path: str) -> AnalysisConfig:
        m = self.mapping(raw or {}, path, ("width", "format", "slots"))
        width = m.get("width")
        fmt = self.text(m.get("format", "yuv420p"), f"{path}.format").strip()
        if fmt not in ANALYSIS_FORMATS:
            raise self.error(f"{path}.format", f"{fmt!r} is not one of {', '.join(ANALYSIS_FORMATS)}")
        return AnalysisConfig(
            width=None if width is None else int(self.number(width, f"{path}.width", 16, 7680)) // 2 * 2,
            format=fmt,
            slots=int(self.number(m.get("slots", 4), f"{path}.slots", 2, 64)),
        )

    def restream(self, raw: Any, cam_id: str, slug: str, path: str) -> Secret | None:
        """The publish target with {camera_id} and {slug} filled in; null or false: none."""
        if raw is None or raw is False:
            return None
        template = self.text(raw, path).strip()
        try:
            url = template.format(camera_id=cam_id, slug=slug)
        except (KeyError, IndexError, ValueError):
            raise self.error(path, f"{redact(template)!r}: the placeholders are {{camera_id}} and {{slug}}") from None
        parts = urlsplit(url)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise self.error(path, f"{redact(url)!r} is not an rtsp:// URL (e.g. rtsp://mediamtx:8554/{{camera_id}})")
        if parts.password:
            redact.register(unquote(parts.password))
        return Secret(url)

    def bitrates(self, m: dict[str, Any], path: str) -> dict[str, int]:
        """`bitrate` and `min_bitrate` of a section, those that are set."""
        rates = {}
        for key in ("bitrate", "min_bitrate"):
            if m.get(key) is not None:
                try:
                    rates[key] = parse_bitrate(m[key])
                except ValueError as exc:
                    raise self.error(f"{path}.{key}", str(exc)) from None
        return rates

    def transcode(self, raw: Any, path: str) -> TranscodeConfig | None:
        if raw is None or raw is False:
            return None
        m = self.mapping(raw, path, ("bitrate", "encoder", "min_bitrate", "preset"))
        if "bitrate" not in m:
            raise self.error(f"{path}.bitrate", "missing (the target, e.g. 2M)")
        rates = self.bitrates(m, path)
        encoder = self.encoder(m.get("encoder", "auto"), f"{path}.encoder")
        preset = self.preset(m.get("preset"), f"{path}.preset", encoder)
        return TranscodeConfig(rates["bitrate"], encoder, rates.get("min_bitrate"), preset)

    def preset(self, raw: Any, path: str, encoder: str) -> str | None:
        """libx264's preset; refused beside an encoder named explicitly that is not libx264."""
        if raw is None:
            return None
        name = self.text(raw, path).strip()
        if name not in X264_PRESETS:
            raise self.error(path, f"{name!r} is not a libx264 preset (one of: {', '.join(X264_PRESETS)})")
        if encoder not in ("auto", "libx264"):
            raise self.error(path, f"presets are libx264's; this encodes with {encoder}")
        return name

    def camera_url(self, url: str, path: str) -> tuple[str, str | None, Secret | None]:
        """Validates the URL and splits credentials out of it: (url, username, password)."""
        scheme = url.partition(":")[0].lower()
        if scheme == "demo":
            try:
                parse_demo_url(url)
            except ValueError as exc:
                raise self.error(path, str(exc)) from None
            return url, None, None
        shown = redact(mask_url(url)) if "://" in url else url
        if scheme not in ("rtsp", "rtsps"):
            raise self.error(path, f"{shown!r} is not an rtsp://, rtsps:// or demo: URL")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise self.error(path, f"{shown!r} is not a valid URL (bad port?)") from None
        if not parts.hostname:
            raise self.error(path, f"{shown!r} has no host")
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if port is not None:
            netloc += f":{port}"
        clean = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
        user = parts.username
        password = Secret(unquote(parts.password)) if parts.password is not None else None
        redact.register(password)
        return clean, unquote(user) if user is not None else None, password

    def password(self, value: Any, path: str) -> Secret | None:
        text = self.optional_text(value, path)
        if text is None:
            return None
        secret = Secret(text)
        redact.register(secret)
        return secret

    def transport(self, value: Any, path: str) -> Transport:
        text = self.text(value, path).strip().lower()
        if text not in TRANSPORTS:
            raise self.error(path, f"{text!r} is not one of {', '.join(TRANSPORTS)}")
        return text

    def timeout(self, value: Any, path: str, default: float) -> float:
        seconds = self.duration(value, path)
        if seconds is None:
            return default
        if not 0.1 <= seconds <= 600:
            raise self.error(path, "must be between 100ms and 10m")
        return seconds

    def storage(self, raw: Any) -> StorageConfig:
        m = self.mapping(raw or {}, "storage", ("root", "segment_seconds", "retention"))
        base = StorageConfig()
        root = Path(self.text(m["root"], "storage.root")).expanduser() if "root" in m else base.root
        seg = m.get("segment_seconds")
        r = self.mapping(m.get("retention") or {}, "storage.retention", ("max_age", "max_bytes", "min_free"))
        dflt = RetentionConfig()
        retention = RetentionConfig(
            max_age=self.duration(r["max_age"], "storage.retention.max_age") if "max_age" in r else dflt.max_age,
            max_bytes=self.size(r["max_bytes"], "storage.retention.max_bytes") if "max_bytes" in r else None,
            min_free=self.size(r["min_free"], "storage.retention.min_free") if "min_free" in r else dflt.min_free,
        )
        return StorageConfig(
            root=root,
            segment_seconds=(
                base.segment_seconds if seg is None else self.number(seg, "storage.segment_seconds", 2, 3600)
            ),
            retention=retention,
        )

    def encoder(self, raw: Any, path: str = "encoder") -> str:
        name = self.text(raw, path).strip()
        known = ("auto", *ENCODERS)
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            more = f" (did you mean {hint[0]}?)" if hint else f" (one of: {', '.join(known)})"
            raise self.error(path, f"{name!r} is not an encoder camctl knows{more}")
        return name

    def ingest(self, raw: Any) -> IngestConfig:
        m = self.mapping(raw or {}, "ingest", ("status_interval", "stall_seconds", "hardware_decode"))
        base = IngestConfig()

        def seconds(key: str, default: float) -> float:
            value = self.duration(m.get(key), f"ingest.{key}")
            if value is None:
                return default
            if not 0.5 <= value <= 3600:
                raise self.error(f"ingest.{key}", "must be between 500ms and 1h")
            return value

        return IngestConfig(
            status_interval=seconds("status_interval", base.status_interval),
            stall_seconds=seconds("stall_seconds", base.stall_seconds),
            hardware_decode=self.boolean(m.get("hardware_decode", True), "ingest.hardware_decode"),
        )

    def nats(self, raw: Any) -> NatsConfig:
        m = self.mapping(raw or {}, "nats", ("url", "user", "password", "token", "creds", "tls"))
        url = self.optional_text(m.get("url"), "nats.url")
        if url:
            for one in url.split(","):
                if urlsplit(one.strip()).scheme not in ("nats", "tls", "ws", "wss"):
                    shown = redact(one.strip())
                    raise self.error("nats.url", f"{shown!r} is not a nats://, tls://, ws:// or wss:// URL")
        user = self.optional_text(m.get("user"), "nats.user")
        password = self.password(m.get("password"), "nats.password")
        token = self.password(m.get("token"), "nats.token")
        creds = self.optional_text(m.get("creds"), "nats.creds")
        if (user is None) != (password is None):
            raise self.error("nats.user" if user is None else "nats.password", "user and password go together")
        if sum(x is not None for x in (user, token, creds)) > 1:
            raise self.error("nats", "use one of user/password, token or creds")
        if (user or token or creds or "tls" in m) and not url:
            raise self.error("nats.url", "credentials are for a NATS server of yours: set its url")
        tls = self.mapping(m.get("tls") or {}, "nats.tls", ("ca", "cert", "key"))
        paths = {k: Path(self.text(v, f"nats.tls.{k}")).expanduser() for k, v in tls.items() if v is not None}
        if ("cert" in paths) != ("key" in paths):
            raise self.error("nats.tls", "cert and key go together")
        return NatsConfig(url=url or None, user=user, password=password, token=token,
                          creds=Path(creds).expanduser() if creds else None,
                          tls_ca=paths.get("ca"), tls_cert=paths.get("cert"), tls_key=paths.get("key"))  # fmt: skip

    def http(self, raw: Any) -> HttpConfig:
        m = self.mapping(raw or {}, "http", ("listen", "public_url", "max_viewers", "max_connections",
                                             "max_connections_per_client", "max_clip", "users"))  # fmt: skip
        listen = self.text(m.get("listen", HttpConfig.listen), "http.listen")
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise self.error("http.listen", f"{listen!r} is not HOST:PORT (e.g. 0.0.0.0:8080)")
        if not _valid_host(host.strip("[]")):
            raise self.error("http.listen", f"{host!r} is not an IP address or host name")
        public = m.get("public_url")
        if public is None:
            shown_host = "127.0.0.1" if host.strip("[]") in ("", "0.0.0.0", "::") else host
            public_url = f"http://{shown_host}:{port}"
        else:
            public_url = self.text(public, "http.public_url").rstrip("/")
            if urlsplit(public_url).scheme not in ("http", "https") or not urlsplit(public_url).hostname:
                raise self.error("http.public_url", f"{public_url!r} is not an http:// or https:// URL")
        viewers = int(self.number(m.get("max_viewers", HttpConfig.max_viewers), "http.max_viewers", 1, 1000))
        total = int(
            self.number(m.get("max_connections", HttpConfig.max_connections), "http.max_connections", 1, 100000)
        )
        per_client = int(self.number(m.get("max_connections_per_client", HttpConfig.max_connections_per_client),
                                     "http.max_connections_per_client", 1, 1e5))  # fmt: skip
        max_clip = self.duration(m.get("max_clip", "1h"), "http.max_clip") or HttpConfig.max_clip
        users = self.users(m.get("users"), listen)
        return HttpConfig(listen=listen, public_url=public_url, max_viewers=viewers, max_connections=total,
                          max_connections_per_client=per_client, max_clip=max_clip, users=users)  # fmt: skip

    def users(self, raw: Any, listen: str) -> dict[str, Secret] | None:
        """Secure by default: beyond loopback, users are required (or `users: none`, said out loud)."""
        if isinstance(raw, str) and raw.strip().lower() == "none":
            return None
        if raw is None:
            if not _loopback(listen.rpartition(":")[0]):
                raise self.error(
                    "http.users",
                    f"http.listen {listen} is reachable from other machines and no users are set: add "
                    "users: {operator: ${CAMCTL_HTTP_PASSWORD}} (HTTP basic), or users: none to serve "
                    "cameras and recordings to anyone on the network",
                )
            return None
        m = self.mapping(raw, "http.users", tuple(str(k) for k in raw) if isinstance(raw, dict) else ())
        users = {}
        for name, value in m.items():
            if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", name) or ":" in name:
                raise self.error(f"http.users.{name}", "user names use letters, digits and _ . @ -")
            password = self.password(value, f"http.users.{name}")
            if password is None or len(password.reveal()) < 8:
                raise self.error(f"http.users.{name}", "a password of at least 8 characters")
            users[name] = password
        if not users:
            raise self.error("http.users", "no users: name at least one, or say users: none")
        return users


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


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)


def effective_config(config: Config) -> dict[str, Any]:
    """The config as plain data for `config show`: passwords masked, defaults filled in."""
    return {
        "source": config.source,
        "cameras": {
            cam.id: {
                "url": cam.display_url,
                "name": cam.name,
                "slug": cam.slug,
                "username": cam.username,
                "password": "***" if cam.password is not None else None,
                "transport": cam.transport,
                "timeout": cam.timeout,
                "enabled": cam.enabled,
                "analysis_fps": cam.analysis_fps,
                "analysis": {"width": cam.analysis.width, "format": cam.analysis.format, "slots": cam.analysis.slots},
                "motion": {"threshold": cam.motion.threshold, "min_area": cam.motion.min_area, "hold": cam.motion.hold},
                "audio": cam.audio,
                "restream": cam.restream_shown,
                "transcode": None
                if cam.transcode is None
                else {
                    "bitrate": cam.transcode.bitrate,
                    "encoder": cam.transcode.encoder,
                    "min_bitrate": cam.transcode.min_bitrate,
                    "preset": cam.transcode.preset,
                },
            }
            for cam in config.cameras.values()
        },
        "storage": {
            "root": str(config.storage.root),
            "segment_seconds": config.storage.segment_seconds,
            "retention": {
                "max_age": config.storage.retention.max_age,
                "max_bytes": config.storage.retention.max_bytes,
                "min_free": config.storage.retention.min_free,
            },
        },
        "nats": {
            "url": redact(config.nats.url) if config.nats.url else None,
            "user": config.nats.user,
            "password": "***" if config.nats.password else None,
            "token": "***" if config.nats.token else None,
            "creds": str(config.nats.creds) if config.nats.creds else None,
            "tls": {
                k: str(v)
                for k, v in (("ca", config.nats.tls_ca), ("cert", config.nats.tls_cert), ("key", config.nats.tls_key))
                if v
            }
            or None,
        },
        "http": {
            "listen": config.http.listen,
            "public_url": config.http.public_url,
            "max_viewers": config.http.max_viewers,
            "max_connections": config.http.max_connections,
            "max_connections_per_client": config.http.max_connections_per_client,
            "max_clip": format_duration(config.http.max_clip),
            "users": dict.fromkeys(config.http.users, "***") if config.http.users else "none",
        },
        "ingest": {
            "status_interval": config.ingest.status_interval,
            "stall_seconds": config.ingest.stall_seconds,
            "hardware_decode": config.ingest.hardware_decode,
        },
        "encoder": config.encoder,
        "node": config.node,
        "grid": None
        if config.grid is None
        else {
            "output": redact(config.grid.output),
            "cameras": list(config.grid.cameras or []) or None,
            "size": f"{config.grid.width}x{config.grid.height}",
            "fps": config.grid.fps,
            "bitrate": config.grid.bitrate,
            "min_bitrate": config.grid.min_bitrate,
            "preset": config.grid.preset,
        },
    }
