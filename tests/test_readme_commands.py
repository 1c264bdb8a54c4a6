"""The README's quick start runs as written: every shell command of its ```bash blocks is run from
the repository's root, as a newcomer would paste it, and must succeed; the proving command must
print the level this machine can give (PROVEN with a sandbox), and the figures the README shows
must be the ones it prints."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.proof import PROOF_LEVEL

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SECTION = "## Quick start"
SHARED = "../shared"


def section(text: str, heading: str) -> str:
    """The text from ``heading`` to the next heading of the same or a higher level."""
    start = text.index(heading + "\n")
    level = heading.split()[0]
    rest = text[start + len(heading):]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[: end.start()] if end else rest


def blocks(text: str) -> list:
    """The fenced blocks of ``text`` as (language, body), in order."""
    out, lang, body = [], None, []
    for line in text.splitlines():
        if line.startswith("```"):
            if lang is None:
                lang, body = line[3:].strip(), []
            else:
                out.append((lang, "\n".join(body) + "\n"))
                lang = None
        elif lang is not None:
            body.append(line)
    return out


def commands(text: str) -> list:
    """Shell commands of the ```bash blocks: continuation lines joined, comments dropped."""
    out = []
    for lang, body in blocks(text):
        if lang != "bash":
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = "" if line.lstrip().startswith("#") else line.split(" #", 1)[0].strip()
            if line:
                out.append(line)
    return out


def shown_output(text: str) -> list:
    """The blocks without a language: what the README says a command prints."""
    return [body for lang, body in blocks(text) if not lang]


QUICK_START = section(README.read_text(), SECTION)
COMMANDS = commands(QUICK_START)


def test_the_quick_start_is_short_and_has_commands():
    assert len(QUICK_START.splitlines()) <= 60
    assert any("--prove" in c for c in COMMANDS), COMMANDS


def _name(command: str) -> str:
    """A test id that says which command: its subcommand and the flags that set its level."""
    argv = command.split()
    return " ".join([argv[1], *[a for a in argv if a in ("--audit", "--prove", "--json")]])


@pytest.mark.parametrize("command", [c for c in COMMANDS if not c.startswith("make ")], ids=_name)
def test_a_quick_start_command_runs_as_written(command):
    if SHARED in command and not (ROOT / SHARED).is_dir():
        pytest.skip(f"needs {SHARED} beside the repository")
    argv = shlex.split(command)
    assert argv[0] == "pgolf-core", "the quick start runs the installed command"
    # the console script of this interpreter's environment, whether or not it is activated
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
    if "--prove" in argv:
        first = proc.stdout.splitlines()[0]
        assert PROOF_LEVEL.upper() in first, proc.stdout
        shown = next(b for b in shown_output(QUICK_START) if b.startswith("BPB"))
        # the figures are this command's: its BPB line, and every line but the time and the
        # sandbox's ABI (which depend on the machine) printed as shown
        assert shown.splitlines()[0].split()[1] == first.split()[1], (shown, proc.stdout)
        for want in shown.splitlines()[1:6]:
            assert want in proc.stdout, (want, proc.stdout)
    elif "--audit" in argv:
        assert "AUDITED" in proc.stdout.splitlines()[0], proc.stdout
