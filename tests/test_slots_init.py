"""slots_init: the quicker __init__ must be the dataclass's own in every observable way."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from kinesis_actors._models import Attempt, ProducerEvent, UserRecordResult
from kinesis_actors._producer.messages import Send, SendFailed, SendSuccessful, SendWithCallback
from kinesis_actors._slots_init import slots_init

_counter = iter(range(1_000_000))


def _next_label() -> str:
    return f"label-{next(_counter)}"


def _twins() -> tuple[type[Any], type[Any]]:
    """One frozen slotted class with every field kind, with and without slots_init."""

    def make() -> type[Any]:
        @dataclass(frozen=True, slots=True)
        class Sample:
            required: int
            label: str = field(default_factory=_next_label)
            plain_default: str | None = None
            derived: int = field(init=False, repr=False, compare=False)
            fixed: str = field(init=False, default="fixed")
            flag: bool = field(default=False, kw_only=True)

            def __post_init__(self) -> None:
                if self.required < 0:
                    raise ValueError("required must be >= 0")
                object.__setattr__(self, "derived", self.required * 2)

        return Sample

    return make(), slots_init(make())


def _state(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def test_the_quick_init_has_the_dataclass_signature_and_sets_every_field_alike() -> None:
    plain, quick = _twins()
    assert str(inspect.signature(quick)) == str(inspect.signature(plain))
    assert quick.__init__.__qualname__ == "_twins.<locals>.make.<locals>.Sample.__init__"
    for args, kwargs in [((1,), {}), ((2, "given"), {"flag": True}), ((3, "x", "y"), {})]:
        made, expected = quick(*args, **kwargs), plain(*args, **kwargs)
        state, wanted = _state(made), _state(expected)
        if "label" not in kwargs and len(args) < 2:  # each side drew its own factory value
            assert state.pop("label") != wanted.pop("label")
        assert state == wanted
        assert made.derived == args[0] * 2 and made.fixed == "fixed"


def test_the_quick_init_keeps_checks_frozenness_and_equality() -> None:
    plain, quick = _twins()
    with pytest.raises(ValueError, match="required must be >= 0"):
        quick(-1)
    with pytest.raises(TypeError):
        quick()
    with pytest.raises(TypeError):
        quick(1, "a", None, True)  # flag is keyword-only
    made = quick(5, "same")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.required = 6
    assert made == quick(5, "same") and hash(made) == hash(quick(5, "same"))
    assert copy.deepcopy(made) == made
    assert dataclasses.replace(made, required=7).derived == 14
    assert repr(made) == repr(plain(5, "same"))
    assert repr(made).endswith(
        "Sample(required=5, label='same', plain_default=None, fixed='fixed', flag=False)"
    )


def test_a_class_it_could_not_reproduce_is_refused() -> None:
    class NotADataclass:
        pass

    @dataclass(frozen=True)
    class NoSlots:
        value: int

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        value: int
        scale: InitVar[int] = 1

    for cls in (NotADataclass, NoSlots, WithInitVar):
        with pytest.raises(TypeError, match=cls.__qualname__):
            slots_init(cls)


@pytest.mark.parametrize(
    "cls",
    [Send, SendWithCallback, SendSuccessful, SendFailed, ProducerEvent, Attempt, UserRecordResult],
)
def test_the_per_record_classes_use_it(cls: type[Any]) -> None:
    """Their __init__ is the quick one (its setters are in its namespace), with their fields."""
    assert "_set_0" in cls.__init__.__globals__
    parameters = [name for name in inspect.signature(cls).parameters]
    assert parameters == [f.name for f in dataclasses.fields(cls) if f.init]


def test_the_per_record_classes_build_as_before() -> None:
    event = ProducerEvent("pk", "text")
    assert event.data == b"text" and event.explicit_hash_key is None
    with pytest.raises(TypeError, match=r"ProducerEvent\.payload must be bytes"):
        ProducerEvent("pk", 42)  # type: ignore[arg-type]
    send = SendWithCallback(event)
    assert send.reply_to is None and send.message_id != SendWithCallback(event).message_id
    assert SendWithCallback(event, message_id="given").message_id == "given"
    attempt = Attempt(0.1, 0.2)
    assert (attempt.error_code, attempt.error_message, attempt.success) == (None, None, False)
    result = UserRecordResult("shardId-0", "1", (attempt,), True)
    reply = SendSuccessful("id", result)
    assert reply == SendSuccessful("id", UserRecordResult("shardId-0", "1", (attempt,), True))
    for made in (event, send, attempt, result, reply):
        assert pickle.loads(pickle.dumps(made)) == made
