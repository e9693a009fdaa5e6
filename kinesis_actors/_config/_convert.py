"""Converters: one HOCON value in, one typed value out, or a ``ValueError`` saying why not.

pyhocon hands back strings for much of what HOCON allows (``NaN``, ``inf``, "1.5 seconds"), so
every converter takes ``object`` and checks; numbers must be finite, because ``NaN`` passes every
range check and fails only later, far from its key.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pyhocon import ConfigTree

__all__ = [
    "Converter",
    "boolean",
    "callable_path",
    "choice",
    "duration",
    "endpoint_host",
    "integer",
    "metrics_namespace",
    "number",
    "string",
    "string_list",
    "string_map",
    "timestamp",
    "to_seconds",
]

#: Turns one raw HOCON value into a typed one; raises ``ValueError`` with the reason.
Converter = Callable[[object], Any]

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_UNIT_SECONDS = {
    "ns": 1e-9, "nano": 1e-9, "nanos": 1e-9, "nanosecond": 1e-9, "nanoseconds": 1e-9,
    "us": 1e-6, "micro": 1e-6, "micros": 1e-6, "microsecond": 1e-6, "microseconds": 1e-6,
    "ms": 1e-3, "milli": 1e-3, "millis": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3,
    "s": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}  # fmt: skip
_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def _finite(number: float, value: object) -> float:
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def to_seconds(value: object, number_unit: float) -> float:
    """Convert a HOCON duration to seconds.

    pyhocon returns durations as ``timedelta``, ``relativedelta``, plain numbers (in the key's
    unit, ``number_unit`` seconds each) or, for forms it does not parse such as "1.5 seconds",
    strings; all are accepted. NaN and infinities are refused.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got boolean {value!r}")
    if isinstance(value, int | float):
        return _finite(float(value) * number_unit, value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if type(value).__name__ == "relativedelta":
        return ((_EPOCH + value) - _EPOCH).total_seconds()  # type: ignore[operator]
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            unit = match.group(2).lower()
            if not unit:
                return _finite(float(match.group(1)) * number_unit, value)
            if unit in _UNIT_SECONDS:
                return _finite(float(match.group(1)) * _UNIT_SECONDS[unit], value)
    raise ValueError(f"expected a duration (a number or e.g. '250 ms', '2 seconds'), got {value!r}")


def _allowed(lo: float, hi: float | None) -> str:
    return f"{lo} .. {hi}" if hi is not None else f">= {lo}"


def integer(lo: int, hi: int | None = None) -> Converter:
    def convert(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected an integer, got boolean {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value.strip())
        if not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise ValueError(f"{value} is out of range, allowed {_allowed(lo, hi)}")
        return value

    return convert


def number(lo: float, hi: float | None = None) -> Converter:
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            parsed = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        parsed = _finite(parsed, value)
        if parsed < lo or (hi is not None and parsed > hi):
            raise ValueError(f"{value} is out of range, allowed {_allowed(lo, hi)}")
        return parsed

    return convert


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "yes", "no", "on", "off"}:
        return value.lower() in {"true", "yes", "on"}
    raise ValueError(f"expected true or false, got {value!r}")


def string(value: object) -> str:
    if isinstance(value, ConfigTree | list | dict):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def choice(*choices: str) -> Converter:
    def convert(value: object) -> str:
        text = string(value)
        for option in choices:
            if text.lower() == option.lower():
                return option
        raise ValueError(f"{text!r} is not one of {', '.join(choices)}")

    return convert


def duration(
    number_unit: float, minimum_s: float = 0.0, maximum_s: float | None = None
) -> Converter:
    def convert(value: object) -> float:
        seconds = to_seconds(value, number_unit)
        if seconds < minimum_s or (maximum_s is not None and seconds > maximum_s):
            hi = f" .. {maximum_s * 1000:g} ms" if maximum_s is not None else ""
            raise ValueError(f"{value} is out of range, allowed {minimum_s * 1000:g} ms{hi}")
        return seconds

    return convert


def timestamp(value: object) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(_finite(float(value), value), tz=UTC)
    text = string(value)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected an ISO-8601 timestamp or epoch seconds, got {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def string_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(string(item) for item in value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def string_map(value: object) -> tuple[tuple[str, str], ...]:
    """An object of string values (e.g. tags), as sorted (key, value) pairs."""
    if not isinstance(value, ConfigTree | dict):
        raise ValueError(f"expected an object of strings, e.g. {{ team = orders }}, got {value!r}")
    return tuple(sorted((str(key), string(item)) for key, item in value.items()))


def endpoint_host(value: object) -> str:
    text = string(value)
    if not re.fullmatch(r"[A-Za-z0-9.\-]+", text):
        raise ValueError(f"{text!r} is not a host name (pattern ^([A-Za-z0-9-\\.]+)?$)")
    return text


def metrics_namespace(value: object) -> str:
    text = string(value)
    if text.startswith("AWS/"):
        raise ValueError(f"{text!r} must not start with 'AWS/'")
    return text


def callable_path(value: object) -> Callable[..., Any]:
    """``"package.module:function"`` (or ``package.module.function``), imported now, so an
    unimportable or non-callable value fails at load time, not at the first skipped record."""
    text = string(value).strip()
    module_name, sep, attribute = text.partition(":")
    if not sep:
        module_name, _, attribute = text.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"expected 'package.module:function', got {text!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"cannot import module {module_name!r}: {exc!r}") from None
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise ValueError(f"{text!r} is a {type(target).__name__}, not a callable")
    return target  # type: ignore[no-any-return]
