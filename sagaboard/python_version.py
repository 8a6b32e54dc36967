"""Is this Python one Sagaboard runs on? The answer comes from `requires-python` in pyproject.toml,
the one place the supported versions are written.

    python3 sagaboard/python_version.py          # exit 0, or 1 with a one-line message on stderr
    python3 sagaboard/python_version.py --quiet  # the same, without the message (the Makefile's probe)
    python3 sagaboard/python_version.py --versions   # prints the supported versions: 3.11 3.12 3.13 (.ci/run)

It runs before the virtual environment exists, on whatever Python the user has, so it imports
nothing outside the standard library and parses only the specifier forms pyproject.toml uses
(`>=X.Y` and `<X.Y`, comma-separated); `tomllib` is not used since Pythons before 3.11 lack it.
"""
import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def supported_range(pyproject_text):
    """((lowest major, minor), (first unsupported major, minor)) from `requires-python = ">=3.11,<3.14"`.

    Raises ValueError if the line is missing or uses another form."""
    found = re.search(r'^requires-python\s*=\s*"\s*>=\s*(\d+)\.(\d+)\s*,\s*<\s*(\d+)\.(\d+)\s*"', pyproject_text, re.M)
    if not found:
        raise ValueError('pyproject.toml must say requires-python = ">=X.Y,<X.Z"')
    a, b, c, d = (int(g) for g in found.groups())
    return (a, b), (c, d)


def versions(low, high):
    """['3.11', '3.12', '3.13'] for the range [low, high) within one major version."""
    return ["%d.%d" % (low[0], minor) for minor in range(low[1], high[1])]


def describe(low, high):
    """'3.11, 3.12 or 3.13' for the range [low, high) within one major version."""
    names = versions(low, high)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def check(version=None, pyproject_text=None):
    """None when `version` ((major, minor), default this interpreter's) is supported, else the message."""
    version = tuple(version or sys.version_info[:2])
    low, high = supported_range(pyproject_text if pyproject_text is not None else PYPROJECT.read_text())
    if low <= version < high:
        return None
    return ("Sagaboard runs on Python %s; %s is Python %d.%d. Choose another, e.g. `make run PYTHON=python%d.%d`."
            % (describe(low, high), sys.executable or "this interpreter", version[0], version[1], high[0], high[1] - 1))


if __name__ == "__main__":
    if "--versions" in sys.argv:
        print(" ".join(versions(*supported_range(PYPROJECT.read_text()))))
        sys.exit(0)
    problem = check()
    if problem and "--quiet" not in sys.argv:
        print(problem, file=sys.stderr)
    sys.exit(1 if problem else 0)
