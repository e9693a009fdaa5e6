"""The public surface, pinned: a change to it must be deliberate (update the sets here).

Public modules are ``kinesis_actors`` (the front door), ``kinesis_actors.messages`` (the actor
protocol), ``kinesis_actors.aio`` (asyncio), ``kinesis_actors.testing``,
``kinesis_actors.metrics`` and ``kinesis_actors.reliability``. Everything else is private and may change without notice.
"""

from __future__ import annotations

import importlib
import inspect
import types

import pytest

PUBLIC_SURFACE: dict[str, set[str]] = {
    "kinesis_actors": {
        "AsyncKinesisConsumer",
        "AsyncKinesisProducer",
        "AsyncProducerStats",
        "Attempt",
        "CheckpointerConf",
        "CompoundSequenceNumber",
        "ConfigError",
        "ConsumerConf",
        "ConsumerEvent",
        "ConsumerShutdown",
        "ConsumerWorkerFailure",
        "DeadLetterError",
        "DependencyError",
        "DynamoDBLeaseTable",
        "EventProcessed",
        "ExplicitHashKeyError",
        "FanoutError",
        "GetStats",
        "InvalidRecordError",
        "InvalidStateError",
        "KclConf",
        "KinesisActorsError",
        "KinesisConsumer",
        "KinesisProducer",
        "KinesisProducerActor",
        "KplConf",
        "LeaseCoordinator",
        "LeaseTableMissingError",
        "PartitionKeyError",
        "ProcessEvent",
        "ProcessingFailedError",
        "ProducerActorStats",
        "ProducerConf",
        "ProducerEvent",
        "ProducerStoppedError",
        "QueueFullError",
        "RecordTooLargeError",
        "Send",
        "SendFailed",
        "SendSuccessful",
        "SendWithCallback",
        "Sentinel",
        "ShutdownError",
        "ShutdownReason",
        "StreamNotFoundError",
        "ThrottlingConf",
        "ThrottlingError",
        "UserRecordFailedError",
        "UserRecordResult",
        "WorkerConf",
        "__version__",
        "load_config",
    },
    "kinesis_actors.aio": {
        "AsyncKinesisConsumer",
        "AsyncKinesisProducer",
        "AsyncProducerStats",
    },
    "kinesis_actors.messages": {
        "ConsumerShutdown",
        "ConsumerWorkerFailure",
        "EventProcessed",
        "GetStats",
        "ProcessEvent",
        "ProducerActorStats",
        "Send",
        "SendFailed",
        "SendSuccessful",
        "SendWithCallback",
        "ShutdownReason",
    },
    "kinesis_actors.testing": {
        "ApiCounts",
        "AwsLimits",
        "InMemoryKinesis",
        "InMemoryLeaseTable",
        "LocalKinesis",
        "LimitsProxy",
        "LimitsProxyProcess",
        "LimitsStats",
        "LocalMinistack",
        "StoredRecord",
        "free_port",
        "free_ports",
        "install_emulators",
        "temporary_stream",
    },
    "kinesis_actors.metrics": {
        "CloudWatchMetrics",
        "InMemoryMetrics",
        "MetricsSink",
        "PrometheusMetrics",
        "StructlogMetrics",
        "configure",
        "count",
        "dimensions_for",
        "gauge",
        "in_memory",
        "observe",
    },
    "kinesis_actors.reliability": {
        "ConsumerState",
        "GetProducerStats",
        "GetState",
        "ProducerStats",
        "ReliabilitySettings",
        "SimpleKinesisConsumer",
        "SimpleKinesisProducer",
        "Start",
        "Verdict",
        "load_reliability_config",
    },
}

PUBLIC_MODULES = sorted(PUBLIC_SURFACE)


def _is_private(module_name: str) -> bool:
    return any(part.startswith("_") for part in module_name.split("."))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_all_is_exactly_the_pinned_set(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ lists a name twice"
    assert set(exported) == PUBLIC_SURFACE[module_name]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_exported_name_is_importable(module_name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from {module_name} import *", namespace)  # what a user's star import gets
    namespace.pop("__builtins__")
    assert set(namespace) == PUBLIC_SURFACE[module_name]
    module = importlib.import_module(module_name)
    for name in module.__all__:
        exec(f"from {module_name} import {name}", {})  # and each name on its own


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_exports_are_library_objects_their_home_module_exports(module_name: str) -> None:
    """A re-exported class or function is one its (private) home module lists in ``__all__``:
    a helper a private module keeps for its siblings is not exposed by accident; and no
    private-looking name, submodule or third-party object is re-exported."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        if name == "__version__":
            continue
        assert not name.startswith("_"), f"{module_name} exports the private name {name}"
        obj = getattr(module, name)
        assert not isinstance(obj, types.ModuleType), f"{module_name}.{name} is a module"
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        home = obj.__module__
        assert home.split(".")[0] == "kinesis_actors", f"{module_name}.{name} comes from {home}"
        assert obj.__name__ == name, f"{module_name}.{name} is an alias of {obj.__name__}"
        if home != module_name and _is_private(home):
            home_all = getattr(importlib.import_module(home), "__all__", ())
            assert name in home_all, f"{module_name}.{name} is not exported by {home}"


def test_a_public_name_means_one_thing_everywhere() -> None:
    """Two public modules exporting the same name export the same object (one ``GetStats``)."""
    seen: dict[str, tuple[str, object]] = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if name in seen:
                first_module, first = seen[name]
                assert obj is first, f"{module_name}.{name} differs from {first_module}.{name}"
            else:
                seen[name] = (module_name, obj)


def test_the_actor_protocol_is_on_the_front_door_too() -> None:
    import kinesis_actors
    import kinesis_actors.messages

    producer_protocol = {"Send", "SendWithCallback", "SendSuccessful", "SendFailed", "GetStats"}
    assert producer_protocol <= set(kinesis_actors.messages.__all__)
    for name in producer_protocol:
        assert getattr(kinesis_actors, name) is getattr(kinesis_actors.messages, name)
