"""What every config section shares: a frozen pydantic model that refuses unknown keys (naming the
one it thinks was meant), value types that read camctl's durations, sizes, bitrates and secrets,
and the turn of pydantic's errors into one line with the key path."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from camctl.secrets import Secret
from camctl.units import parse_bitrate, parse_duration, parse_size

ENV_HINT = "${VAR} and ${VAR:-default} read the environment (or camctl.env beside the config)"


class PathError(PydanticCustomError):
    """A problem at a key path below the model being validated (`users`, `cam_2.slug`)."""

    def __new__(cls, path: str, message: str) -> PathError:
        return super().__new__(cls, "at_path", "{message}", {"path": path, "message": message})


def _drop_hidden(schema: dict[str, Any], model: type[BaseModel]) -> None:
    for name in getattr(model, "hidden", ()):
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)


class Section(BaseModel):
    """A config section: frozen, and an unknown key is an error that suggests the known one."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        arbitrary_types_allowed=True,
        json_schema_extra=_drop_hidden,
    )
    hidden: ClassVar[tuple[str, ...]] = ()  # fields camctl fills in, not written in YAML (out of the schema)
    given: ClassVar[tuple[str, ...]] = ()  # hidden keys the loader passes in (a camera's id, the file)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = [name for name in cls.model_fields if name not in cls.hidden]
            for key in data:
                if not isinstance(key, str):
                    raise PathError("", f"keys must be strings, got {key!r}")
                if key not in allowed and key not in cls.given:
                    hint = difflib.get_close_matches(key, allowed, n=1)
                    more = f" (did you mean {hint[0]}?)" if hint else f" (known: {', '.join(allowed)})"
                    raise PathError(key, "unknown key" + more)
        elif data is not None and not isinstance(data, (BaseModel, str)):
            raise ValueError(f"expected a mapping, got {type_name(data)}")
        return cls.prepare(data)

    @classmethod
    def prepare(cls, data: Any) -> Any:
        """The raw mapping before its keys are checked: a section fills in what follows from it."""
        return data


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), type(value).__name__)


# --- value types: each reads what a person writes in YAML, and says what it accepts -------------


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected a string, got {type_name(value)}")
    return str(value)


def _parsed(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def read(value: Any) -> Any:
        return None if value is None else parse(_text(value))

    return read


def number(low: float, high: float, integer: bool = False) -> Callable[[Any], float | int | None]:
    def read(value: Any) -> float | int | None:
        if value is None:
            return None
        try:
            if isinstance(value, bool):
                raise ValueError
            result = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {type_name(value)} {value!r}") from None
        if not low <= result <= high:
            raise ValueError(f"{result:g} is out of range ({low:g} to {high:g})")
        return int(result) if integer else result

    return read


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
    raise ValueError(f"expected true or false, got {value!r}")


def _secret(value: Any) -> Secret | None:
    # Not registered with the redactor here: loading has no side effects (secrets_of, then the
    # program's entry point registers what the config holds).
    return value if value is None or isinstance(value, Secret) else Secret(_text(value))


def secrets_of(value: Any) -> frozenset[str]:
    """Every secret a loaded config (or any part of it) holds, and the password inside each one
    that is a URL (a restream target): what the redactor must mask in logs and errors."""
    found: set[str] = set()
    if isinstance(value, Secret):
        found.add(value.reveal())
        with contextlib.suppress(ValueError):
            password = urlsplit(value.reveal()).password
            if password:
                found.add(unquote(password))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found |= secrets_of(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            found |= secrets_of(item)
    elif isinstance(value, list | tuple):
        for item in value:
            found |= secrets_of(item)
    return frozenset(found)


def _path(value: Any) -> Path:
    return value if isinstance(value, Path) else Path(_text(value)).expanduser()


_VAR = {"type": "string", "pattern": r"^\$\{"}  # a ${VAR} where a number goes


@dataclass(frozen=True)
class Between:
    """A number from low to high (`Annotated[float, Between(2, 3600)]`), also written as a string
    ("60", or ${VAR}), refused with what is accepted."""

    low: float
    high: float
    integer: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(number(self.low, self.high, self.integer), handler(source))

    def __get_pydantic_json_schema__(self, _schema: CoreSchema, _handler: GetJsonSchemaHandler) -> dict[str, Any]:
        kind = "integer" if self.integer else "number"
        return {"anyOf": [{"type": kind, "minimum": self.low, "maximum": self.high}, _VAR, {"type": "null"}]}


Text = Annotated[str, BeforeValidator(_text), WithJsonSchema({"type": "string"})]
Bool = Annotated[bool, BeforeValidator(_boolean), WithJsonSchema({"type": "boolean"})]
Duration = Annotated[
    float,
    BeforeValidator(_parsed(parse_duration)),
    WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}], "description": "seconds, or 15m, 24h, 1d12h"}),
]
Size = Annotated[
    int,
    BeforeValidator(_parsed(parse_size)),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "description": "bytes, or 500MB, 5GB, 5GiB"}),
]
Bitrate = Annotated[
    int,
    BeforeValidator(_parsed(parse_bitrate)),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "description": "bits/s, or 2M, 800k"}),
]
SecretText = Annotated[
    Secret,
    BeforeValidator(_secret),
    PlainSerializer(lambda _s: "***", return_type=str),
    WithJsonSchema({"type": "string", "description": "a password: write ${VAR} to keep it in camctl.env"}),
]
PathText = Annotated[Path, BeforeValidator(_path), WithJsonSchema({"type": "string"})]


# --- errors ---------------------------------------------------------------------------------

_MISSING_HINTS = {
    "url": "missing (rtsp://host:554/stream or demo:)",
    "output": "missing (rtsp://mediamtx:8554/grid, a .mp4/.mkv file, or an HLS folder)",
    "bitrate": "missing (the target, e.g. 2M)",
}


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(key path, message) of the first problem, in camctl's words rather than pydantic's."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"] if not str(part).startswith(("function-", "union["))]
    ctx = error.get("ctx") or {}
    kind = error["type"]
    message = error["msg"]
    if kind == "at_path":
        loc += [p for p in str(ctx["path"]).split(".") if p]
        message = str(ctx["message"])
    elif kind == "missing":
        message = _MISSING_HINTS.get(loc[-1] if loc else "", "missing")
    elif kind == "value_error":
        message = message.removeprefix("Value error, ")
    elif kind == "extra_forbidden":
        message = "unknown key"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        message = f"expected a mapping, got {type_name(error.get('input'))}"
    if loc and loc[0] == "offsite":  # the config's `copy:` (see Config.offsite)
        loc[0] = "copy"
    return ".".join(loc), message
