"""Argument checks shared by the subcommands: a bad flag is one usage line and exit code 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

__all__ = [
    "OneLineParser",
    "non_negative_float",
    "non_negative_int",
    "port_number",
    "positive_float",
    "positive_int",
    "usage_error",
]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_N = TypeVar("_N", int, float)


def _number_type(
    convert: Callable[[str], _N], kind: str, ok: Callable[[_N], bool], expected: str
) -> Callable[[str], _N]:
    """An argparse ``type``: ``convert`` the text (``kind`` names what it must be), then check
    ``ok`` (``expected`` says what passes)."""

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


def _finite(value: float) -> bool:
    return value != float("inf")


#: An integer >= 1.
positive_int = _number_type(int, "an integer", lambda v: v >= 1, "an integer >= 1")
#: An integer >= 0.
non_negative_int = _number_type(int, "an integer", lambda v: v >= 0, "an integer >= 0")
#: A TCP port, 0 (pick a free one) to 65535.
port_number = _number_type(int, "an integer", lambda v: 0 <= v <= 65535, "a port from 0 to 65535")
#: A finite number > 0 (seconds).
positive_float = _number_type(float, "a number", lambda v: v > 0 and _finite(v), "a number > 0")
#: A finite number >= 0 (milliseconds).
non_negative_float = _number_type(
    float, "a number", lambda v: v >= 0 and _finite(v), "a number >= 0"
)


def usage_error(command: str, message: str) -> int:
    """Report a usage error found after parsing (e.g. a missing ``--yes``); exit code 2."""
    print(f"kinesis-actors {command}: error: {message}", file=sys.stderr)
    return 2
