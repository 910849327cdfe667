"""Running test code in a fresh interpreter (not a test module).

Forking is safe only in a process with one Python thread (``pytest-xdist``
workers have more), so the tests of the forked children run their code as
the command line does: in a new interpreter, with or without
``DEFACERT_NO_FORK``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_fresh(code: str, *args: str, no_fork: bool = False, timeout: float = 300) -> dict:
    """Run ``code`` (dedented; ``{testing}`` replaced by this folder) with
    ``args`` in a fresh interpreter, forking allowed unless ``no_fork``;
    returns the JSON object its last line of output prints."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DEFACERT_NO_FORK", None)
    if no_fork:
        env["DEFACERT_NO_FORK"] = "1"
    source = textwrap.dedent(code.format(testing=str(REPO / "Testing")))
    proc = subprocess.run([sys.executable, "-c", source, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
