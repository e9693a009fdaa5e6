"""What several benchmarks share (imported by them; not a benchmark itself)."""

from __future__ import annotations

import uuid

from kinesis_actors import ConsumerConf, load_config

__all__ = ["consumer_conf"]


def consumer_conf(stream: str, kcl: str) -> ConsumerConf:
    """A consumer of ``stream`` with the ``kcl`` keys given (HOCON), no shutdown hook, and an
    application name of its own (so a lease table of its own)."""
    text = f"""
    kinesis {{
      application-name = "bench-{uuid.uuid4().hex[:8]}"
      bench {{
        stream-name = "{stream}"
        worker {{ gracefulShutdownHook = false }}
        kcl {{ {kcl} }}
      }}
    }}
    """
    return ConsumerConf.from_config(load_config(text), "bench")
