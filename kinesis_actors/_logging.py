"""The library's loggers: structlog's API, routed to the standard `logging` module.

A library must configure nothing. Each logger here wraps ``logging.getLogger(name)`` (names
under ``kinesis_actors``), so the application's `logging` configuration decides what is shown
and where: with none, Python's last-resort handler prints warnings and errors to stderr. The
level is checked first, so a debug line costs one ``isEnabledFor`` call when it is off. An
event that passes runs through structlog's processors *as configured when it is logged*, so a
structlog user (``structlog.stdlib.ProcessorFormatter`` and friends) keeps structured output.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

__all__ = ["get_logger"]


def _configured_processors(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> Any:
    """Run the processors structlog is configured with now (its defaults render a line)."""
    result: Any = event_dict
    for processor in structlog.get_config()["processors"]:
        result = processor(logger, method_name, result)
    return result


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger over the standard logger ``name``, filtered by its level first."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[structlog.stdlib.filter_by_level, _configured_processors],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger
