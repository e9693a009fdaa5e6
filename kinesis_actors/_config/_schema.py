"""The key schema: each setting is declared once, as a field of its settings class.

A field made with ``setting("RecordTtl", duration(MS))`` says which HOCON key (relative to the
class's block, dotted for a key in a sub-block) fills it and how the raw value is converted;
``section("kpl", KplConf)`` says a sub-block is read as another settings class. Reading a block
(``read_settings``) and knowing which keys exist (``key_paths``, for the linter) both come from
these declarations, so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, dataclass_transform

from pyhocon import ConfigFactory, ConfigTree

from kinesis_actors._config._convert import Converter
from kinesis_actors._errors import ConfigError

__all__ = [
    "IGNORED",
    "REQUIRED",
    "Section",
    "Setting",
    "find_key",
    "key_paths",
    "lookup",
    "read_settings",
    "section",
    "setting",
    "settings",
    "sub_block",
]

_META = "kinesis_actors.config"
#: ``key_paths`` marks keys accepted for compatibility and ignored with this value.
IGNORED = "ignored"


@dataclass(frozen=True)
class Setting:
    """One HOCON key (dotted, relative to the block) and how its value becomes a field."""

    key: str
    convert: Converter
    unset: object


@dataclass(frozen=True)
class Section:
    """A sub-block read as another settings class; ``None`` unless ``present_if`` is set in it."""

    key: str
    settings_class: type[Any]
    present_if: str | None = None


#: ``setting(..., unset=REQUIRED)``: the key must be set (reference.conf sets it).
REQUIRED = object()


def setting(key: str, convert: Converter, *, unset: object = REQUIRED) -> Any:
    """A field filled from ``key``; when the key is unset the field is ``unset`` (if allowed)."""
    return dataclasses.field(metadata={_META: Setting(key, convert, unset)})


def section(key: str, settings_class: type[Any], *, present_if: str | None = None) -> Any:
    """A field holding the sub-block ``key`` read as ``settings_class``; ``key=""`` reads the
    block's own keys (a group of keys that several blocks share, declared once)."""
    return dataclasses.field(metadata={_META: Section(key, settings_class, present_if)})


_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(setting, section, dataclasses.field))
def settings(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen dataclass whose ``setting``/``section`` fields form its schema.

    A class may list ``IGNORED_KEYS`` (a ``ClassVar``): keys of its block, dotted, that the JVM
    libraries read and that mean nothing here; they are accepted, and warned about when set.
    """
    if "IGNORED_KEYS" not in cls.__dict__:
        cls.IGNORED_KEYS = frozenset()  # type: ignore[attr-defined]
    return dataclass(frozen=True)(cls)


def _declarations(cls: type[Any]) -> Iterator[tuple[str, Setting | Section]]:
    for item in dataclasses.fields(cls):
        meta = item.metadata.get(_META)
        if isinstance(meta, Setting | Section):
            yield item.name, meta


def find_key(block: Mapping[str, Any], key: str) -> str | None:
    """The key as spelled in ``block``; KCL/KPL property names match case-insensitively."""
    if key in block:
        return key
    lowered = key.lower()
    for candidate in block:
        if str(candidate).lower() == lowered:
            return str(candidate)
    return None


def sub_block(tree: Mapping[str, Any], key: str, path: str) -> ConfigTree:
    """``tree[key]`` as an object (empty when unset); any other shape names its full path."""
    found = find_key(tree, key)
    value = tree.get(found) if found is not None else None
    if value is None:
        return ConfigTree()
    if isinstance(value, ConfigTree):
        return value
    if isinstance(value, dict):
        converted: ConfigTree = ConfigFactory.from_dict(value)
        return converted
    raise ConfigError(f"{path}.{key}" if path else key, f"must be an object, got {value!r}")


def lookup(block: Mapping[str, Any], dotted: str, path: str) -> object:
    """The raw value at ``dotted`` in ``block`` (None when unset), objects checked on the way."""
    *parents, leaf = dotted.split(".")
    current: Mapping[str, Any] = block
    for part in parents:
        current = sub_block(current, part, path)
        path = f"{path}.{part}"
    found = find_key(current, leaf)
    return current.get(found) if found is not None else None


def _convert(meta: Setting, raw: object, path: str) -> Any:
    try:
        return meta.convert(raw)
    except ValueError as exc:
        raise ConfigError(f"{path}.{meta.key}", str(exc)) from None


def _check_values(cls: type[Any], block: Mapping[str, Any], path: str) -> None:
    """Convert every setting of ``cls`` that ``block`` sets, for its errors only."""
    for _attr, meta in _declarations(cls):
        if isinstance(meta, Setting):
            raw = lookup(block, meta.key, path)
            if raw is not None:
                _convert(meta, raw, path)


def read_settings(cls: type[_T], block: Mapping[str, Any], path: str, **extra: Any) -> _T:
    """Build ``cls`` from ``block`` (its keys already merged with their fallbacks).

    Fields that are not settings come from ``extra``. Errors name the full key path.
    """
    values: dict[str, Any] = dict(extra)
    for attr, meta in _declarations(cls):
        if isinstance(meta, Section):
            sub = sub_block(block, meta.key, path) if meta.key else ConfigFactory.from_dict(block)
            sub_path = f"{path}.{meta.key}" if meta.key else path
            if meta.present_if is not None and lookup(sub, meta.present_if, sub_path) is None:
                _check_values(meta.settings_class, sub, sub_path)  # unused, but never wrong
                values[attr] = None
            else:
                values[attr] = read_settings(meta.settings_class, sub, sub_path)
            continue
        raw = lookup(block, meta.key, path)
        if raw is None:
            if meta.unset is REQUIRED:
                raise ConfigError(f"{path}.{meta.key}", "is required")
            values[attr] = meta.unset
            continue
        values[attr] = _convert(meta, raw, path)
    return cls(**values)


def key_paths(cls: type[Any], prefix: str = "") -> dict[str, str]:
    """Every key ``cls`` reads or ignores, dotted from its block: ``{path: "setting"|IGNORED}``.

    A section contributes its own keys under its name, and its name as ``"section"``.
    """
    paths: dict[str, str] = {}
    for _attr, meta in _declarations(cls):
        if isinstance(meta, Section) and not meta.key:
            paths.update(key_paths(meta.settings_class, prefix))
        elif isinstance(meta, Section):
            paths[prefix + meta.key] = "section"
            paths.update(key_paths(meta.settings_class, f"{prefix}{meta.key}."))
        else:
            parts = meta.key.split(".")
            for depth in range(1, len(parts)):
                paths.setdefault(prefix + ".".join(parts[:depth]), "section")
            paths[prefix + meta.key] = "setting"
    ignored: frozenset[str] = getattr(cls, "IGNORED_KEYS", frozenset())
    for key in ignored:
        paths.setdefault(prefix + key, IGNORED)
    return paths
