"""A quicker ``__init__`` for the frozen dataclasses the producer makes once per record.

A frozen dataclass's generated ``__init__`` stores every field through ``object.__setattr__``
(its own ``__setattr__`` refuses), about 100 ns a field. In a slotted class each field is a
member descriptor, whose ``__set__`` makes the same store in about half that. A record sent
through the producer actor makes five such objects (the event, the send, its attempt, its result
and the reply), so this is several percent of the actor's cost per record
(``benchmarks/producer_actor.py``).

``slots_init`` gives a frozen, slotted dataclass an ``__init__`` with the same parameters,
defaults, annotations and ``__post_init__`` call that stores through the descriptors. Everything
else (repr, eq, hash, frozenness, pickling, ``dataclasses.fields``) stays the dataclass's own;
``tests/test_slots_init.py`` checks that both ``__init__`` agree on every kind of field, and
that each class using it keeps its fields as its parameters.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

__all__ = ["slots_init"]

T = TypeVar("T")


class _Factory:
    """The default shown for a field made by its ``default_factory`` (as dataclasses show it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def slots_init(cls: type[T]) -> type[T]:
    """Replace ``cls.__init__`` (of a frozen ``@dataclass(slots=True)``) by a quicker twin.

    Apply it above the ``@dataclass`` decorator. Refuses a class it could not reproduce exactly.
    """
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"slots_init needs a @dataclass(slots=True), got {cls.__qualname__}")
    fields = dataclasses.fields(cls)
    generated = inspect.signature(cls.__init__)
    expected = ["self", *(f.name for f in fields if f.init)]
    if list(generated.parameters) != expected:  # an InitVar, or a hand-written __init__
        raise TypeError(f"slots_init cannot reproduce the __init__ of {cls.__qualname__}")
    namespace: dict[str, Any] = {"_FACTORY": _FACTORY}
    parameters: list[str] = []
    body: list[str] = []
    keyword_only = False
    for index, f in enumerate(fields):
        setter = f"_set_{index}"
        namespace[setter] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{index}"] = f.default
            value = f"_default_{index}"
            parameter = f"{f.name}=_default_{index}"
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{index}"] = f.default_factory
            value = f"_factory_{index}()"
            parameter = f"{f.name}=_FACTORY"
        else:
            value = None
            parameter = f.name
        if not f.init:
            if value is not None:  # set as dataclasses set it; else left to __post_init__
                body.append(f"{setter}(self, {value})")
            continue
        if f.kw_only and not keyword_only:
            parameters.append("*")
            keyword_only = True
        parameters.append(parameter)
        if f.default_factory is not dataclasses.MISSING:
            body.append(f"{setter}(self, {value} if {f.name} is _FACTORY else {f.name})")
        else:
            body.append(f"{setter}(self, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = f"def __init__(self, {', '.join(parameters)}):\n" + "".join(
        f"    {line}\n" for line in body or ["pass"]
    )
    exec(source, namespace)  # built from field names only, as dataclasses build theirs
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
