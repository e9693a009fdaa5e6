"""Small helpers for talking to Pykka actors that may already be gone."""

from __future__ import annotations

from typing import Any

import pykka

__all__ = ["tell"]


def tell(ref: pykka.ActorRef[Any] | None, message: object) -> bool:
    """Tell ``message`` unless ``ref`` is ``None`` or its actor is dead; False if not delivered.

    Actors stop independently (shutdown, crash, a shard handed over), so a late message to a
    stopped actor is normal and must not kill the sender. The caller decides whether the loss
    matters (count it, log it, fall back).
    """
    if ref is None:
        return False
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return False
    return True
