"""The README's snippets are the runnable files in experiments/, and each one runs."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)
FILES = ["experiments/quickstart_sim.py", "experiments/quickstart_real.py"]


def test_quickstart_is_two_commands():
    quick = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)[0]
    commands = [line.split("#")[0].strip() for line in bash.splitlines() if line.split("#")[0].strip()]
    assert commands == ["bash demo.sh", "bash test.sh"]
    assert "bash test.sh" in (ROOT / ".ci" / "run").read_text()


def test_every_python_snippet_is_an_experiments_file():
    assert len(BLOCKS) == len(FILES)
    for block, path in zip(BLOCKS, FILES):
        assert block.rstrip() == (ROOT / path).read_text().rstrip(), path


@pytest.mark.parametrize("path", FILES)
def test_snippet_runs(path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()
