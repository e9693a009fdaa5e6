"""Unit tests of the local servers (emulator install, backend choice, LocalKinesis, the `local`
command): no server is started, no npm is run."""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kinesis_actors._cli import local as local_command
from kinesis_actors._cli import main
from kinesis_actors._cli.local import add_arguments, run_local
from kinesis_actors._errors import LocalBackendError
from kinesis_actors.testing import _backends as backends
from kinesis_actors.testing import _emulators as emulators
from kinesis_actors.testing._backends import BACKEND_EMULATORS, BACKEND_MOTO, resolve_backend
from kinesis_actors.testing._emulators import (
    EMULATOR_PACKAGES,
    EMULATORS_ENV_VAR,
    default_install_folder,
    emulator_folders,
    emulators_installed,
    find_emulators,
    install_emulators,
    installed_version,
)
from kinesis_actors.testing._local import LocalKinesis
from kinesis_actors.testing._processes import free_port, free_ports


def fake_install(folder: Path, versions: dict[str, str] | None = None) -> Path:
    """Write node_modules/<pkg>/package.json files as npm would."""
    for package, version in (versions or dict(EMULATOR_PACKAGES)).items():
        manifest = folder / "node_modules" / package / "package.json"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps({"name": package, "version": version}))
    return folder


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Working directory, repository root and home all inside tmp_path, env var unset."""
    paths = {name: tmp_path / name for name in ("cwd", "repo", "home", "env")}
    for path in paths.values():
        path.mkdir()
    monkeypatch.delenv(EMULATORS_ENV_VAR, raising=False)
    monkeypatch.chdir(paths["cwd"])
    monkeypatch.setenv("HOME", str(paths["home"]))
    monkeypatch.setattr(emulators, "_package_repo_root", lambda: paths["repo"])
    return paths


@pytest.fixture
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected subprocess: {args}")

    monkeypatch.setattr(subprocess, "run", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)


# -- ports ---------------------------------------------------------------------------------------


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5


def test_free_ports_rejects_zero() -> None:
    with pytest.raises(ValueError, match="count"):
        free_ports(0)


# -- folders -------------------------------------------------------------------------------------


def test_folder_order_without_env(isolated: dict[str, Path]) -> None:
    assert emulator_folders() == [
        isolated["cwd"] / ".emulators",
        isolated["repo"] / ".emulators",
        isolated["home"] / ".cache" / "kinesis-actors" / "emulators",
    ]


def test_folder_order_env_first(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EMULATORS_ENV_VAR, str(isolated["env"]))
    assert emulator_folders()[0] == isolated["env"]
    assert len(emulator_folders()) == 4


def test_folder_order_deduplicates_cwd_and_repo(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(isolated["repo"])
    assert emulator_folders() == [
        isolated["repo"] / ".emulators",
        isolated["home"] / ".cache" / "kinesis-actors" / "emulators",
    ]


def test_folder_order_installed_package(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulators, "_package_repo_root", lambda: None)
    assert emulator_folders() == [
        isolated["cwd"] / ".emulators",
        isolated["home"] / ".cache" / "kinesis-actors" / "emulators",
    ]


def test_find_emulators_follows_the_order(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_emulators() is None
    home = fake_install(isolated["home"] / ".cache" / "kinesis-actors" / "emulators")
    assert find_emulators() == home
    repo = fake_install(isolated["repo"] / ".emulators")
    assert find_emulators() == repo
    cwd = fake_install(isolated["cwd"] / ".emulators")
    assert find_emulators() == cwd
    monkeypatch.setenv(EMULATORS_ENV_VAR, str(isolated["env"]))
    assert find_emulators() == cwd  # env folder empty: fall through
    fake_install(isolated["env"])
    assert find_emulators() == isolated["env"]


def test_find_emulators_skips_wrong_versions(isolated: dict[str, Path]) -> None:
    fake_install(isolated["cwd"] / ".emulators", {"kinesalite": "3.3.2", "dynalite": "4.0.0"})
    repo = fake_install(isolated["repo"] / ".emulators")
    assert find_emulators() == repo


def test_default_install_folder(isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_install_folder() == isolated["repo"] / ".emulators"
    monkeypatch.setattr(emulators, "_package_repo_root", lambda: None)
    assert default_install_folder() == isolated["home"] / ".cache" / "kinesis-actors" / "emulators"
    (isolated["cwd"] / "pyproject.toml").write_text("")
    assert default_install_folder() == isolated["cwd"] / ".emulators"
    monkeypatch.setenv(EMULATORS_ENV_VAR, str(isolated["env"]))
    assert default_install_folder() == isolated["env"]


# -- installed versions --------------------------------------------------------------------------


def test_installed_version_reads_package_json(tmp_path: Path) -> None:
    fake_install(tmp_path, {"kinesalite": "3.3.3"})
    assert installed_version(tmp_path, "kinesalite") == "3.3.3"
    assert installed_version(tmp_path, "dynalite") is None


def test_installed_version_tolerates_broken_manifests(tmp_path: Path) -> None:
    manifest = tmp_path / "node_modules" / "kinesalite" / "package.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{not json")
    assert installed_version(tmp_path, "kinesalite") is None
    manifest.write_text(json.dumps({"version": 3}))
    assert installed_version(tmp_path, "kinesalite") is None
    manifest.write_text(json.dumps(["3.3.3"]))
    assert installed_version(tmp_path, "kinesalite") is None


def test_emulators_installed_needs_every_pinned_version(tmp_path: Path) -> None:
    assert not emulators_installed(tmp_path)
    fake_install(tmp_path, {"kinesalite": "3.3.3"})
    assert not emulators_installed(tmp_path)
    fake_install(tmp_path, {"dynalite": "4.0.1"})
    assert not emulators_installed(tmp_path)
    fake_install(tmp_path)
    assert emulators_installed(tmp_path)


def test_pinned_versions() -> None:
    assert dict(EMULATOR_PACKAGES) == {"kinesalite": "3.3.3", "dynalite": "4.0.0"}


# -- install_emulators ---------------------------------------------------------------------------


@pytest.mark.usefixtures("no_subprocess")
def test_install_is_a_no_op_when_installed(tmp_path: Path) -> None:
    fake_install(tmp_path)
    assert install_emulators(tmp_path) == tmp_path.absolute()


@pytest.mark.usefixtures("no_subprocess")
def test_install_without_folder_reuses_found_install(isolated: dict[str, Path]) -> None:
    repo = fake_install(isolated["repo"] / ".emulators")
    assert install_emulators() == repo


@pytest.mark.usefixtures("no_subprocess")
def test_install_without_npm_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "npm" else "/x/node")
    with pytest.raises(LocalBackendError, match="'npm' not found"):
        install_emulators(tmp_path / "emulators")


def test_install_runs_pinned_npm_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        fake_install(Path(command[command.index("--prefix") + 1]))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)
    target = tmp_path / "emulators"
    assert install_emulators(target) == target
    assert len(calls) == 1
    assert calls[0][:4] == ["/usr/bin/npm", "install", "--prefix", str(target)]
    assert calls[0][-2:] == ["kinesalite@3.3.3", "dynalite@4.0.0"]
    manifest = json.loads((target / "package.json").read_text())
    assert manifest["dependencies"] == {"kinesalite": "3.3.3", "dynalite": "4.0.0"}
    install_emulators(target)  # second call: already installed, npm not run again
    assert len(calls) == 1


def test_install_failure_raises_with_npm_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "npm error code E404\nnot found\n")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(LocalBackendError, match=r"exit code 1:\nnpm error code E404"):
        install_emulators(tmp_path)


def test_install_with_wrong_versions_afterwards_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        fake_install(tmp_path, {"kinesalite": "3.3.1", "dynalite": "4.0.0"})
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(LocalBackendError, match=r"3\.3\.1"):
        install_emulators(tmp_path)


# -- backend choice ------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_subprocess")
def test_auto_falls_back_to_moto_without_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    choice = resolve_backend("auto")
    assert choice.backend == BACKEND_MOTO
    assert choice.folder is None
    assert choice.fallback_reason is not None
    assert "node" in choice.fallback_reason


@pytest.mark.usefixtures("no_subprocess")
def test_emulators_without_node_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(LocalBackendError, match="'node' not found"):
        resolve_backend("emulators")


@pytest.mark.usefixtures("no_subprocess")
def test_auto_falls_back_when_npm_missing(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/node" if name == "node" else None)
    choice = resolve_backend("auto")
    assert choice.backend == BACKEND_MOTO
    assert "'npm' not found" in (choice.fallback_reason or "")


@pytest.mark.usefixtures("no_subprocess")
def test_auto_uses_installed_emulators(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    folder = fake_install(isolated["cwd"] / ".emulators")
    assert resolve_backend("auto") == backends.BackendChoice(BACKEND_EMULATORS, folder)


@pytest.mark.usefixtures("no_subprocess")
def test_no_install_means_no_npm(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(LocalBackendError, match="--install"):
        resolve_backend("emulators", install=False)


@pytest.mark.usefixtures("no_subprocess")
def test_moto_is_chosen_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert resolve_backend("moto") == backends.BackendChoice(BACKEND_MOTO)


@pytest.mark.usefixtures("no_subprocess")
def test_auto_without_node_or_moto_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(backends, "_moto_server_available", lambda: False)
    with pytest.raises(LocalBackendError, match="no local backend"):
        resolve_backend("auto")


def test_unknown_backend_is_rejected() -> None:
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("localstack")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend"):
        LocalKinesis(backend="aws")  # type: ignore[arg-type]


# -- LocalKinesis without servers ----------------------------------------------------------------


@pytest.mark.usefixtures("no_subprocess")
def test_stop_before_start_is_a_no_op() -> None:
    server = LocalKinesis()
    server.stop()
    server.stop()
    assert server.pids == {}
    assert not server.running
    assert "stopped" in repr(server)
    with pytest.raises(LocalBackendError, match="not running"):
        _ = server.kinesis_endpoint
    with pytest.raises(LocalBackendError, match="not running"):
        server.environ()


def test_environ_and_exports() -> None:
    server = LocalKinesis(region="eu-west-1")
    server._kinesis_endpoint = "http://127.0.0.1:1111"
    server._dynamodb_endpoint = "http://127.0.0.1:2222"
    assert server.environ() == {
        "AWS_ENDPOINT_URL_KINESIS": "http://127.0.0.1:1111",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:2222",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
    }
    assert server.shell_exports()[0] == "export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:1111"
    client = server.kinesis_client()
    assert client.meta.endpoint_url == "http://127.0.0.1:1111"
    assert client.meta.region_name == "eu-west-1"


def test_wrappers_are_shipped() -> None:
    assert backends._KINESALITE_WRAPPER.is_file()
    source = backends._KINESALITE_WRAPPER.read_text()
    assert "'127.0.0.1'" in source
    assert "createStreamMs: 0" in source
    for wrapper in (backends._KINESALITE_WRAPPER, backends._DYNALITE_WRAPPER):
        assert "require('./emulator-process')" in wrapper.read_text()
    assert (backends._WRAPPERS / "emulator-process.js").is_file()


# -- CLI -----------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_defaults() -> None:
    args = parse()
    assert args.backend == "auto"
    assert args.kinesis_port == 0
    assert args.dynamodb_port == 0
    assert args.region == "us-east-1"
    assert args.install is False
    assert parse("--backend", "moto", "--kinesis-port", "4567").kinesis_port == 4567


def test_cli_install_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[object] = []

    def fake_install_emulators(folder: object = None) -> Path:
        seen.append(folder)
        return tmp_path

    monkeypatch.setattr(local_command, "install_emulators", fake_install_emulators)
    assert run_local(parse("--install", "--emulators-dir", str(tmp_path))) == 0
    assert seen == [tmp_path]
    assert f"kinesalite 3.3.3, dynalite 4.0.0 installed in {tmp_path}" in capsys.readouterr().out


def test_cli_install_failure(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(folder: object = None) -> Path:
        raise LocalBackendError("'npm' not found on PATH")

    monkeypatch.setattr(local_command, "install_emulators", failing)
    assert main(["local", "--install"]) == 1
    assert "'npm' not found" in capsys.readouterr().err


def test_latency_needs_the_limits_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="latency_ms needs aws_limits=True"):
        LocalKinesis(latency_ms=5)
    assert main(["local", "--latency-ms", "5"]) == 1
    assert "--latency-ms needs --aws-limits" in capsys.readouterr().err
