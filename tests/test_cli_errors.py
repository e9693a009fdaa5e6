"""The command line's error battery: each subcommand with each bad input gives exactly one line
on stderr, no traceback, and the documented exit code (2: usage, 1: failure). No server runs
here except a loopback HTTP server that is not AWS."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest

from kinesis_actors._cli import main
from kinesis_actors.testing import free_port

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(autouse=True)
def _dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors about the endpoint, not about credentials this machine does not have."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")


USAGE_ERRORS = [
    ["reliability", "run", "--messages", "-5"],
    ["reliability", "run", "--messages", "many"],
    ["reliability", "run", "--consumers", "0"],
    ["reliability", "run", "--rate", "0"],
    ["reliability", "run", "--shards", "0"],
    ["reliability", "run", "--timeout", "0"],
    ["reliability", "run", "--timeout", "nan"],
    ["reliability", "run", "--chaos", "meteor"],
    ["reliability", "consumer", "--messages", "0"],
    ["reliability", "producer", "--messages", "-1"],
    ["reliability", "walk"],
    ["local", "--kinesis-port", "70000"],
    ["local", "--dynamodb-port", "-1"],
    ["local", "--startup-timeout", "0"],
    ["local", "--env-file", "/no/such/folder/local.env"],
    ["create-stream", "s", "--shards", "0"],
    ["create-stream"],
    ["create-stream", "s", "--wait", "-1"],
    ["tail", "s", "--from", "yesterday"],
    ["tail", "s", "--limit", "0"],
    ["tail", "s", "--idle", "soon"],
    ["no-such-command"],
]


@pytest.mark.parametrize("argv", USAGE_ERRORS, ids=" ".join)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 1, captured.err
    assert "error:" in err[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    "argv",
    [["delete-stream", "s"], ["leases", "app-table", "--delete"]],
    ids=" ".join,
)
def test_deleting_without_yes_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "--yes" in err[0]


ENDPOINT_COMMANDS = [
    ["tail", "s"],
    ["leases", "app-table"],
    ["create-stream", "s"],
    ["delete-stream", "s", "--yes"],
    ["put", "s"],
]


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == 1, captured.err
    assert "Traceback" not in captured.err
    return err[0]


@pytest.mark.parametrize("argv", ENDPOINT_COMMANDS, ids=" ".join)
def test_a_malformed_endpoint_names_it(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--endpoint-url", "notaurl", "--region", "us-east-1"]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"kinesis-actors {argv[0]}: ")
    assert "notaurl" in line


@pytest.mark.parametrize("argv", ENDPOINT_COMMANDS, ids=" ".join)
def test_an_unreachable_server_names_the_endpoint(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main([*argv, "--endpoint-url", url, "--region", "us-east-1"]) == 1
    assert url in one_error_line(capsys)


class _NotAws(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = b"<!DOCTYPE html><html><body>" + b"<p>Welcome to a web server</p>" * 200
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_aws() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotAws)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("argv", ENDPOINT_COMMANDS[:4], ids=" ".join)
def test_a_server_that_is_not_aws_is_one_short_line(
    argv: list[str],
    not_aws: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([*argv, "--endpoint-url", not_aws, "--region", "us-east-1"]) == 1
    line = one_error_line(capsys)
    assert "not an AWS answer" in line
    assert not_aws in line
    assert len(line) < 250
    assert "<" not in line


@pytest.mark.parametrize(
    "argv",
    [
        ["reliability", "run", "--config", "/nope.conf"],
        ["reliability", "consumer", "--config", "/nope.conf"],
        ["reliability", "producer", "--config", "/nope.conf"],
    ],
    ids=" ".join,
)
def test_a_missing_config_file_is_named_before_anything_starts(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1
    line = one_error_line(capsys)
    assert "/nope.conf" in line
    assert capsys.readouterr().out == ""


def test_a_bad_config_value_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.conf"
    config.write_text("kinesis.test.producer.batchSize = -3\n")
    assert main(["reliability", "run", "--config", str(config)]) == 1
    assert "kinesis.test.producer.batchSize" in one_error_line(capsys)


def test_the_installed_entry_point_has_the_same_error_style() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kinesis_actors._cli",
            "tail",
            "s",
            "--endpoint-url",
            "notaurl",
            "--region",
            "x-1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "notaurl" in result.stderr
