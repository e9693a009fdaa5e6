"""Loading: the application config merged over reference.conf, resolved, then checked.

Both are parsed unresolved and merged before substitutions are resolved (Typesafe semantics), so
``${...}`` in reference.conf sees the application's overrides and ``${?ENV}`` lets the
environment win.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pyhocon import ConfigTree
from pyhocon.exceptions import ConfigException

from kinesis_actors._config._lint import check_tree
from kinesis_actors._config._reference import parse, reference_text
from kinesis_actors._errors import ConfigError

__all__ = ["load_config"]


def _application_source(source: str | os.PathLike[str] | None) -> ConfigTree:
    if source is None:
        env_path = os.environ.get("KINESIS_ACTORS_CONFIG")
        if env_path:
            source = env_path
        elif Path("application.conf").is_file():
            source = "application.conf"
        else:
            source = ""
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith(".conf")
    ):
        path = Path(source)
        if not path.is_file():
            raise ConfigError(str(path), "config file not found")
        return parse(path.read_text("utf-8"), str(path))
    return parse(source, "<string>")


def load_config(
    source: str | os.PathLike[str] | None = None, *, layers: Sequence[str] = ()
) -> ConfigTree:
    """Load the application config merged over reference.conf, resolved and validated.

    ``source`` is a path to a HOCON file, a HOCON string, or None for ``$KINESIS_ACTORS_CONFIG``
    or else ``./application.conf`` when present. ``layers`` are HOCON texts that sit between the
    application config and reference.conf (a tool's own defaults, such as the reliability test's
    sample config). Returns the whole tree; pass it (or ``tree["kinesis"]``) with a block name
    to an entry point or to ``ProducerConf.from_config`` / ``ConsumerConf.from_config``. Every
    named producer and consumer block is checked now: errors name the full key path; warnings
    name unknown keys (with the closest known one) and ignored keys.
    """
    merged = _application_source(source)
    for index, layer in enumerate(layers):
        merged = merged.with_fallback(parse(layer, f"<layer {index}>"), resolve=False)
    try:
        merged = merged.with_fallback(parse(reference_text(), "reference.conf"), resolve=True)
    except ConfigException as exc:
        raise ConfigError("<config>", f"cannot resolve substitutions: {exc}") from exc
    kinesis = merged.get("kinesis", None)
    if not isinstance(kinesis, ConfigTree):
        raise ConfigError("kinesis", f"must be an object, got {kinesis!r}")
    check_tree(kinesis)
    return merged
