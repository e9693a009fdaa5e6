"""The one place that relies on Pykka beyond its documented API; ``tests/test_pykka_compat.py``
pins every behaviour used here and fails when a Pykka release changes it.

Two things are here, each for a reason measured or required:

- ``SimpleQueueInbox``: an actor mixin whose inbox is a ``queue.SimpleQueue`` instead of Pykka's
  ``queue.Queue`` (the ``_create_actor_inbox`` hook). Every record passes the producer actor's
  inbox once, and ``Queue.put`` + ``get`` (a lock and a condition per call) cost the actor a
  third of its throughput: ``benchmarks/producer_actor.py`` measures the actor path at about
  71 % of the engine with it and 47 % without it. Pykka uses only ``put``, ``get`` and
  ``empty`` of an inbox (its ``ActorInbox`` protocol), which ``SimpleQueue`` has, unbounded and
  FIFO like the default.
- ``drain_inbox``: messages told while an actor's stop is pending wait behind Pykka's stop
  message, and Pykka discards the told ones unanswered when the actor stops. An actor that
  promises an answer to every message reads them from its (public) ``actor_inbox`` in
  ``on_stop``; the envelopes it gets are Pykka's internal type (``message``, ``reply_to``).
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pykka

if TYPE_CHECKING:
    from pykka._actor import ActorInbox
    from pykka._envelope import Envelope

__all__ = ["SimpleQueueInbox", "drain_inbox"]


class SimpleQueueInbox:
    """Mix in before ``pykka.ThreadingActor``: the actor's inbox becomes a ``SimpleQueue``."""

    @staticmethod
    def _create_actor_inbox() -> ActorInbox:
        inbox: queue.SimpleQueue[Envelope[Any]] = queue.SimpleQueue()
        return inbox


def drain_inbox(actor: pykka.Actor, handle: Callable[[Any, pykka.Future[Any] | None], bool]) -> int:
    """Hand every message still in ``actor``'s inbox to ``handle(message, reply_to)``.

    Call it on the actor's own thread once the actor is stopping (``on_stop``, ``on_failure``):
    Pykka then refuses new tells, so the inbox only shrinks. ``reply_to`` is the asker's future
    (``None`` for a tell); ``handle`` answers it with ``reply_to.set(...)``. A message ``handle``
    declines (returns False: Pykka's own stop requests, messages it does not know) goes back to
    the inbox in order, for Pykka to settle as it always does. Returns how many were handled.
    """
    inbox = actor.actor_inbox
    declined: list[Envelope[Any]] = []
    handled = 0
    while not inbox.empty():
        envelope = inbox.get()
        if handle(envelope.message, envelope.reply_to):
            handled += 1
        else:
            declined.append(envelope)
    for envelope in declined:
        inbox.put(envelope)
    return handled
