"""The wheel carries reference.conf and the typing marker, and the defaults load from it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (built,) = out.glob("kinesis_actors-*.whl")
    return built


def test_wheel_contains_reference_conf_and_py_typed(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "kinesis_actors/reference.conf" in names
    assert "kinesis_actors/py.typed" in names
    packaged = zipfile.ZipFile(wheel).read("kinesis_actors/reference.conf").decode()
    assert packaged == (ROOT / "reference.conf").read_text()


def test_wheel_contains_every_module_of_the_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = ROOT / "kinesis_actors"
    sources = {path.relative_to(ROOT).as_posix() for path in package.rglob("*.py")}
    assert "kinesis_actors/_aws/__init__.py" in sources
    assert sources - names == set()


def test_installed_wheel_loads_its_defaults(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    script = (
        "import kinesis_actors, kinesis_actors._config as c;"
        "from pathlib import Path;"
        f"assert Path(kinesis_actors.__file__).is_relative_to({str(target)!r}), kinesis_actors.__file__;"
        "k = c.load_config('kinesis.p.stream-name = s');"
        "print(c.ProducerConf.from_config(k, 'p').kpl.aggregation_max_size)"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert result.stdout.strip() == "51200"
