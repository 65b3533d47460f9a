"""The README's first command, ``faceid demo``, on a slice of the shared LFW photos: enrolled
people are found, strangers come back unknown, the operating point is shown, and analyze
answers on a fresh data folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_finds_enrolled_people_and_turns_strangers_away(tmp_path, lfw_dir):
    env = {**os.environ, "FACEID_DATA_DIR": str(tmp_path), "COLUMNS": "200"}
    faceid = Path(sys.executable).with_name("faceid")
    run = subprocess.run(
        [str(faceid), "demo", "--limit", "300"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    found = re.search(r"rank-1 (\d+)/(\d+)", out)
    strangers = re.search(r"strangers accepted as someone (\d+)/(\d+)", out)
    assert found and strangers, out
    hits, probes = int(found[1]), int(found[2])
    accepted, n_strangers = int(strangers[1]), int(strangers[2])
    assert probes > 10 and n_strangers > 3, out
    assert hits >= 0.9 * probes, out
    assert accepted <= max(1, n_strangers // 4), out
    assert "operating point: FPIR 0.01" in out and "same person" in out, out
    # The analyze step answers from the published attribute models, with no training step.
    assert "4. analyze" in out and re.search(r"\b(male|female) \(0\.\d\d\)", out), out
