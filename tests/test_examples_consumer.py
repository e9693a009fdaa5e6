"""The consumer example runs as documented, with both processor kinds (moto in-process here)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import structlog

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "consume_orders.py"


@pytest.mark.parametrize("processor", ["function", "actor"])
def test_the_consumer_example_processes_every_order(
    processor: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL_KINESIS", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")  # the example sets these for moto
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    main = runpy.run_path(str(EXAMPLE))["main"]
    logging_config = structlog.get_config()  # the example configures logging, as apps do
    try:
        assert main(["--moto", "--processor", processor]) == 0
    finally:
        structlog.configure(**logging_config)
    out = capsys.readouterr().out
    assert f"processed 400 of 400 orders ({processor})" in out
    assert "records processed more than once: 0" in out
    assert out.count("owner None") == 2  # both leases handed over on stop
