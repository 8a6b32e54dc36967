"""The supported Pythons: one range, in pyproject.toml; a one-line answer for any other; `make`
choosing a supported interpreter by itself (README "Two commands")."""
import os
import subprocess
import sys
from pathlib import Path

from sagaboard import python_version
from tests.system import ROOT


def test_the_range_is_pyprojects_and_this_interpreter_is_in_it():
    low, high = python_version.supported_range(python_version.PYPROJECT.read_text())
    assert (low, high) == ((3, 11), (3, 14))
    assert python_version.versions(low, high) == ["3.11", "3.12", "3.13"]
    assert python_version.check() is None


def test_too_old_or_too_new_gets_one_line_that_names_what_works():
    for version in ((3, 10), (3, 14), (2, 7)):
        message = python_version.check(version)
        assert message is not None and "\n" not in message
        assert message.startswith("Sagaboard runs on Python 3.11, 3.12 or 3.13;")
        assert f"is Python {version[0]}.{version[1]}." in message and "PYTHON=python3.13" in message
    assert all(python_version.check(v) is None for v in ((3, 11), (3, 12), (3, 13)))


def test_a_pyproject_without_a_range_it_can_read_is_an_error():
    try:
        python_version.supported_range('requires-python = "~=3.11"\n')
    except ValueError as exc:
        assert "requires-python" in str(exc)
    else:
        raise AssertionError("an unreadable range was accepted")


def _fake(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_make_skips_an_unsupported_python3_and_refuses_one_given_before_installing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake(bin_dir / "python3", "exit 1")  # stands for an unsupported python3: its check fails
    (bin_dir / "python3.11").symlink_to(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    for inherited in ("PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"):  # `make test PYTHON=...` passes them down
        env.pop(inherited, None)
    shown = subprocess.run(["make", "-s", "--eval=show-python: ; @echo $(PYTHON)", "show-python"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert shown.stdout.strip() == "python3.11", shown
    venv = tmp_path / "venv"
    refused = subprocess.run(["make", "-s", "setup", f"PYTHON={bin_dir / 'python3'}", f"VENV={venv}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and not venv.exists(), refused
