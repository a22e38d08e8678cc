"""Run a Python snippet under the venv's `mpirun -np N` (the mpich wheel's launcher)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


def run_mpi(script: str, tmp_path: Path, np: int = 2, timeout: int = 300) -> str:
    path = tmp_path / "mpi_script.py"
    path.write_text(textwrap.dedent(script))
    mpirun = Path(sys.executable).parent / "mpirun"
    result = subprocess.run(
        [str(mpirun), "-np", str(np), sys.executable, str(path)],
        capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout
