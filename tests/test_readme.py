"""The README's walkthrough, run as written: every command of its `sh` blocks, in order, against a
fresh system, and every `# →` checked against the answer.

What is changed to run it here, and nothing else: the port (`:8088`) and the data directory
(`var/`) are this test system's, `.venv/bin/` is the virtual environment running the tests, and
`. .venv/bin/activate` becomes that venv's bin/ first on PATH. Commands run in bash from the
checkout with a terminal on stdin, as typed (HTTPie reads a stdin that is not a terminal as the
request body). The system's deadline is 2 s instead of 10, so `sleep N` lines are not slept:
instead, a read-only command (a GET) whose answer does not hold yet is asked again until it does,
for up to 30 s, which is what a person waiting and looking does. A command that writes is run once.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.system import ROOT

pytestmark = pytest.mark.system

README = ROOT / "README.md"
EXPECT = "# →"
RETRY_SECONDS = 30.0


def walkthrough_lines() -> list[str]:
    """The command lines of the `sh` blocks of the README's walkthrough section, in order."""
    text = README.read_text()
    section = text[text.index("## The original walkthrough"):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.S | re.M)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def split_expectation(line: str) -> tuple[str, str | None]:
    command, sep, expected = line.partition(EXPECT)
    return command.strip(), expected.strip() if sep else None


def read_only(command: str) -> bool:
    """A GET: an HTTPie call with no data items (`k=v`, `k:=v`; `k==v` is a query), or curl with
    no body. Only those are asked again while an expectation does not hold yet."""
    words = command.split()
    if words[0] == "http":
        return not any(re.match(r"^[\w.-]+:?=(?!=)", word) for word in words[2:])
    if words[0] == "curl":
        return not any(word in ("-d", "--data", "--json") or word.startswith("-d") for word in words[1:])
    return False


def matches(actual, expected) -> bool:
    """`expected` is in `actual`: the fields of an expected object (others may be there too), in the
    object or in one element of a list of them; lists of equal length element by element; values
    equal (JSON's 9500 and 9500.0 alike)."""
    if isinstance(expected, dict):
        if isinstance(actual, list):
            return any(matches(item, expected) for item in actual)
        return isinstance(actual, dict) and all(k in actual and matches(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(actual) == len(expected) and all(map(matches, actual, expected))
    return actual == expected


def holds(output: str, expected: str) -> bool:
    """The answer holds what the README says: JSON against JSON (a bare `"k": v, ...` list of fields
    is an object's fields), anything else as text."""
    try:
        actual = json.loads(output)
    except ValueError:
        return expected in output
    wanted = json.loads(expected if expected[0] in "{[" else "{" + expected + "}")
    return matches(actual, wanted)


class Terminal:
    """Runs a README line in bash from the checkout, stdin a terminal (a pty), as a person types it."""

    def __init__(self, system, path: str):
        self.system = system
        self.bin = Path(sys.executable).parent
        self.env = {**system.env, "PATH": path, "HTTPIE_CONFIG_DIR": str(system.tmp / "httpie")}

    def typed(self, command: str) -> str:
        data_dir = self.system.env["SAGA_DATA_DIR"]
        return (command.replace(":8088", f":{self.system.port}")
                .replace(".venv/bin/", f"{self.bin}/")
                .replace("var/", f"{data_dir}/"))

    def run(self, command: str) -> subprocess.CompletedProcess:
        leader, follower = os.openpty()
        try:
            return subprocess.run(["bash", "-c", self.typed(command)], cwd=ROOT, env=self.env, stdin=follower,
                                  capture_output=True, text=True, timeout=60)
        finally:
            os.close(leader)
            os.close(follower)


def test_every_walkthrough_command_works_as_written(system):
    lines = walkthrough_lines()
    assert lines[0] == ". .venv/bin/activate", "the walkthrough starts by activating the venv"
    assert (Path(sys.executable).parent / "activate").exists()
    commands = [split_expectation(line) for line in lines[1:]]
    assert sum(1 for _, expected in commands if expected) >= 25, "the walkthrough checks what each step answers"
    assert {c.split()[0] for c, _ in commands} == {"http", "curl", "sleep", ".venv/bin/supervisorctl"}
    terminal = Terminal(system, f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin")
    for command, expected in commands:
        if command.split()[0] == "sleep":
            continue  # the next check waits for what the sleep waits for (see the docstring)
        end = time.monotonic() + RETRY_SECONDS
        while True:
            done = terminal.run(command)
            assert done.returncode == 0, (command, done.returncode, done.stdout, done.stderr)
            if expected is None or holds(done.stdout, expected):
                break
            assert read_only(command) and time.monotonic() < end, \
                f"README: `{command}` should answer {expected}; it answered {done.stdout!r} {done.stderr!r}"
            time.sleep(0.2)


def test_a_script_gives_httpie_ignore_stdin(system):
    """The README's advice for scripts: with stdin not a terminal, `--ignore-stdin` makes it work."""
    assert "`http --ignore-stdin :8088/points/jjy`" in README.read_text()
    env = {**system.env, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HTTPIE_CONFIG_DIR": str(system.tmp / "httpie")}
    done = subprocess.run(["http", "--ignore-stdin", f":{system.port}/points", "userId=script", "point=5"],
                          env=env, stdin=subprocess.PIPE, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and holds(done.stdout, '{"userId": "script", "point": "5.00"}'), (done.stdout, done.stderr)


def test_the_banner_names_a_supervisorctl_that_works_without_the_venv_on_path(system):
    """`manage.py run` prints how to control the system; that command works as printed, from the
    directory it was started in, with no virtual environment active."""
    banner = re.search(r"^\s+control\s+(.+?) status\|stop NAME\|start NAME", system.log_path.read_text(), re.M)
    assert banner, system.tail()
    command = banner.group(1)
    assert command.split()[0].endswith("bin/supervisorctl") and "-c" in command.split()
    done = subprocess.run(["bash", "-c", f"{command} status"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(system.tmp)})
    assert re.search(r"^exchange\s+RUNNING", done.stdout, re.M), (command, done.stdout, done.stderr)


def test_the_idempotency_key_example_orders_once(system):
    """The HTTP API section's curl with an Idempotency-Key, run twice as written: one order, the
    second answer replayed."""
    text = README.read_text()
    block = re.search(r"^```sh\n(curl [^\n]*Idempotency-Key.*?)^```", text, re.S | re.M).group(1)
    command = block.replace("\\\n", " ")
    system.grant("jjy", 1000)
    terminal = Terminal(system, f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin")
    answers = []
    for _ in range(2):
        done = terminal.run(command)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        answers.append(json.loads(done.stdout))
    assert answers[0]["id"] == answers[1]["id"] and answers[0]["holderId"] == "jjy", answers
    assert sum(1 for o in system.get("/orders") if o["id"] == answers[0]["id"]) == 1
    replayed = terminal.run(command.replace("curl -s", "curl -s -D -", 1))
    assert "idempotent-replayed: true" in replayed.stdout.lower(), replayed.stdout
