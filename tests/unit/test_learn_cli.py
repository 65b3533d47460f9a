"""``faceid learn`` is registered and the CLI does not import torch until a learn verb runs."""

from __future__ import annotations

import subprocess
import sys


def test_cli_imports_without_torch_and_lists_learn_verbs():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from identity_service.cli import app\n"
        "r = CliRunner().invoke(app, ['learn', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert all(v in r.output for v in ('train', 'eval', 'plot')), r.output\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
