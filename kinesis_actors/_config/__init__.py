"""HOCON configuration: reference.conf merged under the application's config, typed and validated.

The tree and key names are the Scala library's, so its application.conf files load unchanged.
Rooms: ``_reference`` (the packaged defaults, parsing), ``_load`` (merge and resolve),
``_convert`` (raw value -> typed value), ``_schema`` (settings declared once, as fields),
``_blocks`` (named blocks over their defaults), ``_entry`` (what both entry blocks share),
``_producer_conf`` / ``_consumer_conf`` (the settings classes and the one resolver of each entry
point), ``_lint`` (load-time checks).
"""

from __future__ import annotations

from kinesis_actors._config._consumer_conf import (
    CheckpointerConf,
    ConsumerConf,
    KclConf,
    WorkerConf,
    resolve_consumer_conf,
)
from kinesis_actors._config._convert import to_seconds
from kinesis_actors._config._load import load_config
from kinesis_actors._config._producer_conf import (
    KplConf,
    ProducerConf,
    ThrottlingConf,
    resolve_producer_conf,
)
from kinesis_actors._config._reference import load_reference

__all__ = [
    "CheckpointerConf",
    "ConsumerConf",
    "KclConf",
    "KplConf",
    "ProducerConf",
    "ThrottlingConf",
    "WorkerConf",
    "load_config",
    "load_reference",
    "resolve_consumer_conf",
    "resolve_producer_conf",
    "to_seconds",
]
