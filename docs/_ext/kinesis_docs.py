"""Pages generated from the code itself, so they cannot drift from it.

``.. reference-conf::`` renders every key of ``kinesis_actors/reference.conf`` with its default
and its comment; ``.. cli-reference::`` renders the help of the ``kinesis-actors`` command and of
each of its subcommands, from the argument parser the command uses.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging as sphinx_logging
from sphinx.util.docutils import SphinxDirective

logger = sphinx_logging.getLogger(__name__)

_ASSIGNMENT = re.compile(r"^(?P<key>[A-Za-z0-9_.\-\"]+)\s*(?:=|:)\s*(?P<value>.*)$")
_OPEN = re.compile(r"^(?P<key>[A-Za-z0-9_.\-\"]+)\s*\{\s*$")


@dataclass
class ConfKey:
    """One leaf of reference.conf: its full path, default (as written) and comment."""

    path: str
    default: str
    comment: str


def reference_keys(text: str) -> list[ConfKey]:
    """Every leaf key of a HOCON file written one key per line, with the comment above it."""
    keys: dict[str, ConfKey] = {}
    stack: list[str] = []
    comment: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comment.append(line.lstrip("#").strip())
            continue
        if not line:
            comment = [] if not stack else comment
            continue
        if match := _OPEN.match(line):
            stack.append(match["key"].strip('"'))
            comment = []
        elif line == "}":
            stack.pop()
            comment = []
        elif match := _ASSIGNMENT.match(line):
            path = ".".join([*stack, match["key"].strip('"')])
            value = match["value"].strip()
            if path in keys:  # a later ``${?ENV}`` line: the environment may override
                keys[path].default += f" (or {value})"
            else:
                keys[path] = ConfKey(path, value, " ".join(comment))
            comment = []
    return list(keys.values())


class ReferenceConf(SphinxDirective):
    """Every reference.conf key, grouped by block, as a definition list."""

    def run(self) -> list[nodes.Node]:
        text = resources.files("kinesis_actors").joinpath("reference.conf").read_text("utf-8")
        lines: list[str] = []
        for key in reference_keys(text):
            lines += [f"``{key.path}``", f"    Default: ``{key.default}``."]
            if key.comment:
                lines += ["", f"    {_escape(key.comment)}"]
            lines.append("")
        return self._parse(lines)

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="reference.conf"), 0, container)
        return list(container.children)


class CliReference(SphinxDirective):
    """The help text of the command and of every subcommand, from its argument parser."""

    def run(self) -> list[nodes.Node]:
        result: list[nodes.Node] = [_help_block([])]
        for name in _choices([]):
            section = nodes.section(ids=[f"cli-{name}"])
            section += nodes.title(text=f"kinesis-actors {name}")
            section += _help_block([name])
            for nested in _choices([name]):
                section += nodes.paragraph(text=f"kinesis-actors {name} {nested}:")
                section += _help_block([name, nested])
            result.append(section)
        return result


def _help(words: list[str]) -> str:
    """What ``kinesis-actors WORDS --help`` prints (the installed command's entry point)."""
    (command,) = importlib.metadata.entry_points(group="console_scripts", name="kinesis-actors")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        command.load()([*words, "--help"])
    return out.getvalue()


def _choices(words: list[str]) -> list[str]:
    """The subcommands ``kinesis-actors WORDS`` takes, read from its usage line."""
    usage = _help(words).split("\n\n", 1)[0]
    match = re.search(r"\{([a-z,\-]+)\}", usage)
    if match:
        return match[1].split(",")
    listed = re.search(r"^positional arguments:\n  COMMAND\n((?:    .*\n)+)", _help(words), re.M)
    return re.findall(r"^    ([a-z\-]+)", listed[1], re.M) if listed else []


def _help_block(words: list[str]) -> nodes.literal_block:
    text = _help(words)
    return nodes.literal_block(text, text)


def _escape(text: str) -> str:
    """Comment text as reStructuredText: backquoted HOCON stays literal."""
    text = text.replace("\\", "\\\\").replace("*", "\\*").replace("|", "\\|")
    return re.sub(r"`([^`]+)`", r"``\1``", text)


#: The public modules; every name in their ``__all__`` must be documented.
PUBLIC_MODULES = (
    "kinesis_actors",
    "kinesis_actors.messages",
    "kinesis_actors.testing",
    "kinesis_actors.metrics",
    "kinesis_actors.reliability",
    "kinesis_actors.aio",
)


def undocumented_public_names(documented: set[str]) -> list[str]:
    """Public names (``module.name``) with no entry in the API reference."""
    import importlib

    missing = []
    for module_name in PUBLIC_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for name in getattr(module, "__all__", ()):
            if name.startswith("__"):
                continue
            # A name re-exported at the package root is documented there once.
            if (
                f"kinesis_actors.{name}" not in documented
                and f"{module_name}.{name}" not in documented
            ):
                missing.append(f"{module_name}.{name}")
    return missing


def _check_api_reference(app: Sphinx, env: Any) -> None:
    documented = set(env.get_domain("py").objects)
    for name in undocumented_public_names(documented):
        logger.warning("public name missing from the API reference: %s", name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("reference-conf", ReferenceConf)
    app.add_directive("cli-reference", CliReference)
    app.connect("env-check-consistency", _check_api_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
