"""Typed configuration: discovery, `${ENV}` interpolation, and the models of each section (pydantic,
one module per section), with errors that name the file and the key path, e.g.
`camctl.yaml: cameras.cam_2.transprot: unknown key (did you mean transport?)`.
Validation does no I/O beyond reading the file (and camctl.env beside it): cameras are not contacted."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from camctl.config.base import first_error, secrets_of
from camctl.config.camera import (
    ANALYSIS_FORMATS,
    DEFAULT_TIMEOUT,
    TRANSPORTS,
    AnalysisConfig,
    CameraConfig,
    CameraDefaults,
    MotionConfig,
    TranscodeConfig,
    Transport,
)
from camctl.config.http import HttpConfig
from camctl.config.model import BUILTIN_DEMO, Config
from camctl.config.sections import CopyConfig, GridConfig, IngestConfig, NatsConfig, RetentionConfig, StorageConfig
from camctl.config.stream_view import StreamView, stream_view
from camctl.envfile import EnvFile
from camctl.errors import ConfigError
from camctl.secrets import redact
from camctl.units import format_duration

__all__ = [
    "ANALYSIS_FORMATS",
    "BUILTIN_DEMO",
    "DEFAULT_TIMEOUT",
    "TRANSPORTS",
    "AnalysisConfig",
    "CameraConfig",
    "CameraDefaults",
    "Config",
    "CopyConfig",
    "GridConfig",
    "HttpConfig",
    "IngestConfig",
    "LoadedConfig",
    "MotionConfig",
    "NatsConfig",
    "RetentionConfig",
    "StorageConfig",
    "StreamView",
    "TranscodeConfig",
    "Transport",
    "config_schema",
    "demo_config",
    "effective_config",
    "find_config_file",
    "load_config",
    "parse_config",
    "read_config",
    "secrets_of",
    "stream_view",
]

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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


@dataclass(frozen=True)
class LoadedConfig:
    """What loading found, and nothing done with it yet: the program's entry point registers the
    secrets with the redactor and hands the variables on (camctl.lifecycle.adopt_config), so two
    configs loaded in one process (tests, a reload) never leak into each other."""

    config: Config
    secrets: frozenset[str] = frozenset()  # every password and token the config holds
    variables: Mapping[str, str] = field(default_factory=dict)  # read from the camctl.env beside the file


def read_config(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """The config (found as find_config_file says, else the demo), validated, with what it found.
    Reads the file and the camctl.env beside it; writes nothing, registers nothing."""
    env = os.environ if environ is None else environ
    path = find_config_file(explicit, env)
    if path is None:
        return LoadedConfig(demo_config())
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    env_file = EnvFile.beside(path)
    variables = dict(env_file.values) if env_file is not None else {}
    unreadable = f"{env_file.path} is not readable: {env_file.problem}" if env_file and env_file.problem else None
    # The process environment wins over the file, as a variable given on the command line should.
    config = parse_config(text, str(path), {**variables, **env}, unreadable)
    return LoadedConfig(config, secrets_of(config), variables)


def load_config(explicit: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """The config alone (read_config without what it found), for a library reading camctl's settings."""
    return read_config(explicit, environ).config


DEMO_MAIN = "demo:?size=1280x720&fps=15"
DEMO_SUB = "demo:?size=640x360&fps=15&bitrate=300k"


def demo_config() -> Config:
    """Four synthetic cameras, no network, recordings in the user's data directory. Each has a main
    and a sub stream of the same scene, as real cameras: main recorded, sub analysed and in tiles."""
    patterns = ("testsrc2", "smptehdbars", "testsrc", "rgbtestsrc")
    streams = {p: {"main": f"{DEMO_MAIN}&pattern={p}", "sub": f"{DEMO_SUB}&pattern={p}"} for p in patterns}
    cams = {f"cam_{i}": {"name": f"Demo camera {i}", "streams": streams[p]} for i, p in enumerate(patterns, 1)}
    http = {"listen": "127.0.0.1:8080", "public_url": "http://127.0.0.1:8080"}
    return Config.model_validate({"source": BUILTIN_DEMO, "cameras": cams, "http": http})


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
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (cameras:, storage: ...)")
    data = _interpolated(data, "", source, env, env_hint)
    for key in Config.filled:  # what the loader fills in is no key of the file
        if key in data:
            raise ConfigError(f"{source}: {key}: unknown key")
    try:
        return Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        path, message = first_error(exc)
        raise ConfigError(f"{source}: {path}: {message}" if path else f"{source}: {message}") from None


def _interpolated(value: Any, path: str, source: str, environ: Mapping[str, str], hint: str | None) -> Any:
    """Every string with its ${VAR}s replaced, walking the document so that an unset variable is
    named with the key path it sits under."""
    if isinstance(value, dict):
        return {k: _interpolated(v, f"{path}.{k}" if path else str(k), source, environ, hint) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolated(v, path, source, environ, hint) for v in value]
    if not isinstance(value, str):
        return value

    def replace(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        name, default = m[1], m[2]
        found = environ.get(name)
        if found:
            return found
        if default is not None:
            return default
        if found is not None:
            return found
        why = f"; {hint}" if hint else ""
        raise ConfigError(f"{source}: {path}: environment variable {name} is not set (use ${{{name}:-default}}){why}")

    return _ENV_REF.sub(replace, value)


def config_schema() -> dict[str, Any]:
    """A JSON Schema of camctl.yaml for editors (completion and checks as you type)."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "camctl.yaml"
    schema["properties"]["copy"] = {"anyOf": [CopyConfig.model_json_schema(mode="validation"), {"type": "null"}]}
    camera = schema["$defs"]["CameraConfig"]
    # `cam_1: rtsp://...` is short for `cam_1: {url: rtsp://...}`.
    schema["properties"]["cameras"]["additionalProperties"] = {"anyOf": [{"$ref": "#/$defs/CameraConfig"},
                                                                         {"type": "string"}]}  # fmt: skip
    camera.pop("required", None)
    camera["oneOf"] = [{"required": ["url"]}, {"required": ["streams"]}, {"required": ["onvif"]}]  # one, several, ONVIF
    found_by_onvif = "onvif://user:password@host[:port]: its largest and smallest profile, found at each connection"
    camera["properties"]["onvif"] = {"type": "string", "description": found_by_onvif}
    # `sub: rtsp://...` is short for `sub: {url: rtsp://...}`; a role left out takes its default.
    camera["properties"]["streams"]["additionalProperties"] = {"anyOf": [{"$ref": "#/$defs/StreamConfig"},
                                                                          {"type": "string"}]}  # fmt: skip
    roles = schema["$defs"]["RolesConfig"]
    roles.pop("required", None)
    record = roles["properties"]["record"]
    roles["properties"]["record"] = {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}],
                                     "description": record["description"]}  # fmt: skip
    # What the models take beyond their types: `false` for "none" and `users: none`.
    for model in ("CameraConfig", "CameraDefaults"):
        for key in ("transcode", "restream"):
            schema["$defs"][model]["properties"][key]["anyOf"].append({"const": False})
    users = schema["$defs"]["HttpConfig"]["properties"]["users"]
    users["anyOf"].append({"const": "none"})
    return schema


def effective_config(config: Config) -> dict[str, Any]:
    """The config as plain data for `config show`: defaults filled in, every secret masked."""
    data = config.model_dump(mode="json", exclude={"defaults"})  # a secret dumps as ***
    for cam in config.cameras.values():
        shown = data["cameras"][cam.id]
        del shown["id"], shown["url"], shown["restream"]  # the URLs as people may see them:
        shown["streams"] = {name: stream_view(cam, name).display_url for name in cam.streams}
        data["cameras"][cam.id] = {"url": cam.display_url, **shown, "restream": cam.restream_shown}
    data["http"]["max_clip"] = format_duration(config.http.max_clip)
    data["http"]["users"] = data["http"]["users"] or "none"
    if data["grid"] is not None:
        del data["grid"]["width"], data["grid"]["height"]  # in its size
    data["copy"] = data.pop("offsite")  # as written in the file
    shown_data: dict[str, Any] = redact.data(data)  # URL passwords (nats.url, grid.output)
    return shown_data
