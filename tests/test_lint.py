"""The code base is ruff-clean: ``ruff check`` and ``ruff format --check``.

ruff is a test requirement (the ``test`` extra): it runs as ``python -m ruff`` of
the interpreter running the tests, so the check never depends on ``PATH``.
"""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
