"""Load-time checks: every producer and consumer block read now, every key known or warned.

A typo found at the first record or the first lease renewal is found too late, so ``load_config``
reads each named block as the settings it is (a block is a producer, a consumer, or both when
nothing tells them apart), and warns once per unknown key with the closest known key.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyhocon import ConfigTree

from kinesis_actors._config._blocks import (
    CONSUMER_ALIASES,
    DEFAULT_CONSUMER,
    DEFAULT_PRODUCER,
    apply_aliases,
)
from kinesis_actors._config._consumer_conf import ConsumerConf
from kinesis_actors._config._producer_conf import ProducerConf
from kinesis_actors._config._reference import reference
from kinesis_actors._config._schema import IGNORED, key_paths, lookup, sub_block
from kinesis_actors._logging import get_logger

__all__ = ["check_tree"]

log = get_logger(__name__)

#: Keys of ``kinesis`` that are not named producer / consumer blocks.
_TOP_KEYS = ("application-name", "akka", DEFAULT_PRODUCER, DEFAULT_CONSUMER, "test")
#: Blocks of ``kinesis`` whose keys are exactly reference.conf's (read by other parts).
_REFERENCE_BLOCKS = {"akka": IGNORED, "test": "setting"}
_NOT_SET = object()


@dataclass
class _Findings:
    ignored: list[str] = field(default_factory=list)
    unknown: list[tuple[str, str | None]] = field(default_factory=list)

    def emit(self) -> None:
        if self.ignored:
            log.warning(
                "config keys ignored: they have no meaning in Python",
                keys=sorted(set(self.ignored)),
            )
        for key, suggestion in self.unknown:
            log.warning("unknown config key", key=key, did_you_mean=suggestion)


def check_tree(kinesis: ConfigTree) -> None:
    """Validate every producer/consumer block now; warn about unknown and ignored keys."""
    ref_kinesis = sub_block(reference(), "kinesis", "")
    findings = _Findings()
    for key, value in kinesis.items():
        path = f"kinesis.{key}"
        if key in _REFERENCE_BLOCKS:
            ref_block = sub_block(ref_kinesis, key, "kinesis")
            known = {dotted: _REFERENCE_BLOCKS[key] for dotted, _ in _leaves(ref_block)}
            _check_keys(sub_block(kinesis, key, "kinesis"), known, ref_block, path, findings)
        elif isinstance(value, ConfigTree):
            _check_named(kinesis, ref_kinesis, str(key), value, findings)
        elif key not in _TOP_KEYS:
            findings.unknown.append((path, _closest(str(key), _TOP_KEYS)))
    findings.emit()


_PRODUCER_KEYS = key_paths(ProducerConf)
_CONSUMER_KEYS = key_paths(ConsumerConf) | {".".join(old): "setting" for old in CONSUMER_ALIASES}
_PRODUCER_ONLY = {k.lower() for k in _PRODUCER_KEYS} - {k.lower() for k in _CONSUMER_KEYS}
_CONSUMER_ONLY = {k.lower() for k in _CONSUMER_KEYS} - {k.lower() for k in _PRODUCER_KEYS}


def _kinds(name: str, block: ConfigTree) -> list[type[ProducerConf] | type[ConsumerConf]]:
    """What a named block is, from its keys; both when nothing tells them apart."""
    if name == DEFAULT_PRODUCER:
        return [ProducerConf]
    if name == DEFAULT_CONSUMER:
        return [ConsumerConf]
    paths = {prefix.lower() for dotted, _ in _leaves(block) for prefix in _prefixes(dotted)}
    kinds: list[type[ProducerConf] | type[ConsumerConf]] = []
    if paths & _PRODUCER_ONLY:
        kinds.append(ProducerConf)
    if paths & _CONSUMER_ONLY:
        kinds.append(ConsumerConf)
    return kinds or [ProducerConf, ConsumerConf]


def _check_named(
    kinesis: ConfigTree, ref_kinesis: ConfigTree, name: str, block: ConfigTree, found: _Findings
) -> None:
    path = f"kinesis.{name}"
    kinds = _kinds(name, block)
    own = copy.deepcopy(block)
    if ConsumerConf in kinds and name != DEFAULT_CONSUMER:
        own = apply_aliases(own, path)
    known: dict[str, str] = {}
    for kind in kinds:
        known |= _PRODUCER_KEYS if kind is ProducerConf else key_paths(ConsumerConf)
    defaults = ref_kinesis if name in (DEFAULT_PRODUCER, DEFAULT_CONSUMER) else kinesis
    for kind in kinds:
        default = DEFAULT_PRODUCER if kind is ProducerConf else DEFAULT_CONSUMER
        merged = own.with_fallback(sub_block(kinesis, default, "kinesis"), resolve=False)
        kind.from_block(kinesis, merged, name, path)
    default = DEFAULT_PRODUCER if kinds[0] is ProducerConf else DEFAULT_CONSUMER
    _check_keys(own, known, sub_block(defaults, default, "kinesis"), path, found)


def _check_keys(
    block: ConfigTree,
    known: Mapping[str, str],
    baseline: ConfigTree,
    path: str,
    found: _Findings,
) -> None:
    """Warn about each key of ``block`` not in ``known``, and each ignored one changed."""
    lowered = {key.lower(): kind for key, kind in known.items()}
    for dotted, value in _leaves(block):
        kind = lowered.get(dotted.lower())
        if kind is None:
            if not any(lowered.get(p.lower()) in {"setting", IGNORED} for p in _prefixes(dotted)):
                found.unknown.append((f"{path}.{dotted}", _suggest(dotted, known)))
        elif kind == IGNORED and _value_at(baseline, dotted) != value:
            found.ignored.append(f"{path}.{dotted}")


def _value_at(block: ConfigTree, dotted: str) -> object:
    try:
        found = lookup(block, dotted, "")
    except ValueError:
        return _NOT_SET
    return _NOT_SET if found is None else found


def _leaves(block: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, object]]:
    """(dotted path, value) of every non-object value; an empty object counts as one."""
    for key, value in block.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, ConfigTree) and len(value):
            yield from _leaves(value, f"{dotted}.")
        else:
            yield dotted, value


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[:depth]) for depth in range(1, len(parts) + 1)]


def _suggest(dotted: str, known: Mapping[str, str]) -> str | None:
    """The closest known key among the siblings of ``dotted`` (same parent block)."""
    parent, _, leaf = dotted.rpartition(".")
    siblings = [key.rpartition(".")[2] for key in known if key.rpartition(".")[0] == parent]
    return _closest(leaf, siblings)


def _closest(word: str, candidates: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return close[0] if close else None
