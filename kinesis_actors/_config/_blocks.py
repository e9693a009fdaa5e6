"""Named blocks: ``kinesis.<name>`` found, copied, and laid over its ``default-*`` block.

Consumer blocks may use the spellings of the Scala library's README (``checkpoint``,
``kcl.initialPosition``, ...); they are read as the keys they meant, with a warning.
"""

from __future__ import annotations

import copy
from typing import Any

from pyhocon import ConfigTree

from kinesis_actors._config._schema import sub_block
from kinesis_actors._errors import ConfigError
from kinesis_actors._logging import get_logger

__all__ = [
    "CONSUMER_ALIASES",
    "DEFAULT_CONSUMER",
    "DEFAULT_PRODUCER",
    "application_name",
    "apply_aliases",
    "kinesis_block",
    "resolve_named",
]

log = get_logger(__name__)

DEFAULT_PRODUCER = "default-producer"
DEFAULT_CONSUMER = "default-consumer"

#: Spellings found in the Scala library's README, read as the keys they meant.
CONSUMER_ALIASES = {
    ("checkpoint",): ("checkpointer",),
    ("kcl", "initialPosition"): ("kcl", "initialPositionInStream"),
    ("kcl", "stream-name"): ("stream-name",),
    ("kcl", "batchTimeoutSeconds"): ("worker", "batchTimeoutSeconds"),
}


def kinesis_block(conf: ConfigTree) -> ConfigTree:
    """Accept either the ``kinesis`` block or the whole tree that contains it."""
    if DEFAULT_PRODUCER not in conf and DEFAULT_CONSUMER not in conf and "kinesis" in conf:
        return sub_block(conf, "kinesis", "")
    return conf


def _named_blocks(kinesis: ConfigTree) -> str:
    names = [k for k, v in kinesis.items() if isinstance(v, ConfigTree) and k != "akka"]
    return ", ".join(sorted(names)) or "none"


def _own_block(kinesis: ConfigTree, name: str) -> ConfigTree:
    """A private copy of ``kinesis.<name>``, before any fallback."""
    own = kinesis.get(name, None)
    if own is None:
        raise ConfigError(f"kinesis.{name}", f"no such block (known: {_named_blocks(kinesis)})")
    if not isinstance(own, ConfigTree):
        raise ConfigError(f"kinesis.{name}", f"must be an object, got {own!r}")
    return copy.deepcopy(own)


def resolve_named(
    kinesis_conf: ConfigTree, name: str, default: str
) -> tuple[ConfigTree, ConfigTree, str]:
    """(the kinesis block, ``kinesis.<name>`` over ``kinesis.<default>``, the block's path)."""
    kinesis = kinesis_block(kinesis_conf)
    path = f"kinesis.{name}"
    own = _own_block(kinesis, name)
    if default == DEFAULT_CONSUMER:
        own = apply_aliases(own, path)
    return kinesis, own.with_fallback(sub_block(kinesis, default, "kinesis"), resolve=False), path


def apply_aliases(block: ConfigTree, path: str) -> ConfigTree:
    """Move keys spelled as in the Scala README to where they belong; the proper key wins."""
    for old, new in CONSUMER_ALIASES.items():
        parent: Any = block
        for part in old[:-1]:
            parent = parent.get(part, None) if isinstance(parent, ConfigTree) else None
        if not isinstance(parent, ConfigTree) or old[-1] not in parent:
            continue
        value = parent.pop(old[-1])
        log.warning(
            "config key read under its intended name",
            key=f"{path}.{'.'.join(old)}",
            read_as=f"{path}.{'.'.join(new)}",
        )
        target: ConfigTree = block
        for part in new[:-1]:
            if not isinstance(target.get(part, None), ConfigTree):
                target.put(part, ConfigTree())
            target = target.get(part)
        existing = target.get(new[-1], None)
        if isinstance(existing, ConfigTree) and isinstance(value, ConfigTree):
            target.put(new[-1], existing.with_fallback(value, resolve=False))
        elif existing is None:
            target.put(new[-1], value)
    return block


def application_name(kinesis: ConfigTree) -> str:
    value = kinesis.get("application-name", None)
    if not isinstance(value, str) or not value:
        raise ConfigError("kinesis.application-name", f"expected a non-empty string, got {value!r}")
    return value
