"""The packaged reference.conf, parsed once, and HOCON parsing with errors as ``ConfigError``."""

from __future__ import annotations

import copy
import functools
from importlib import resources

from pyhocon import ConfigFactory, ConfigTree

from kinesis_actors._errors import ConfigError

__all__ = ["load_reference", "parse", "reference", "reference_text"]


def reference_text() -> str:
    return resources.files("kinesis_actors").joinpath("reference.conf").read_text("utf-8")


def parse(text: str, origin: str) -> ConfigTree:
    """``text`` parsed unresolved (substitutions are resolved after the merge)."""
    try:
        return ConfigFactory.parse_string(text, resolve=False)
    except Exception as exc:
        raise ConfigError(origin, f"cannot parse HOCON: {exc}") from exc


@functools.cache
def reference() -> ConfigTree:
    """reference.conf resolved on its own: shared, never to be changed."""
    return ConfigFactory.parse_string(reference_text(), resolve=True)


def load_reference() -> ConfigTree:
    """The library's defaults alone, resolved (a copy the caller may change)."""
    return copy.deepcopy(reference())
