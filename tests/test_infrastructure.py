"""The small shared modules every job uses: progress lines off a terminal, MPI share-out and
rank-0 errors, typed tables, validated job configs."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import pytest
from mpi_helpers import run_mpi

from toolkit.config import ConfigError
from toolkit.evaluation import EvaluateConfig
from toolkit.md import MDRun
from toolkit.models.fitting import FitConfig
from toolkit.models.training import TrainingSettings
from toolkit.progress import PlainLines, progress
from toolkit.tables import TableError, read_table, write_table


# -- progress ---------------------------------------------------------------------------------
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_writes_few_whole_lines_when_not_on_a_terminal(monkeypatch):
    """10,000 updates with set_postfix (as the MD and training loops do): off a terminal one
    line at the start and one at the end (the interval is never reached), no carriage
    return; on a terminal tqdm's live bar, carriage returns and all."""
    log = io.StringIO()
    with progress(total=10_000, desc="md", unit="step", stream=log) as bar:
        assert isinstance(bar, PlainLines)
        for step in range(10_000):
            bar.update(1)
            bar.set_postfix(T=f"{step % 7}")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 2, lines
    assert lines[0].startswith("md:   0% 0/10000") and lines[1].startswith("md: 100% 10000/10000")
    # with a short interval: at most one line per interval, still whole lines
    monkeypatch.setenv("AETK_PROGRESS_SECONDS", "0")
    log = io.StringIO()
    for _ in progress(range(5), desc="fit", stream=log, leave=False):
        pass
    assert log.getvalue().count("\n") == 7 and "\r" not in log.getvalue()  # start, 5, end
    terminal = _Terminal()
    with progress(total=50, desc="md", stream=terminal, mininterval=0) as bar:
        for _ in range(50):
            bar.update(1)
    assert not isinstance(bar, PlainLines) and terminal.getvalue().count("\r") > 10
    silent = io.StringIO()
    for _ in progress(range(100), stream=silent, enabled=False):
        pass
    assert silent.getvalue() == ""


def test_md_log_off_a_terminal_has_no_carriage_returns(tmp_path):
    """`aetk md` with its output in a file (as under nohup): plain progress lines only."""
    log = tmp_path / "md.log"
    with open(log, "w") as handle:
        subprocess.run([sys.executable, "-m", "toolkit.cli", "md", "--potential",
                        "reference:lj", "--system", "Ar", "--atoms", "32", "--steps", "2000",
                        "--melt-steps", "200", "--equilibration-steps", "0", "--out",
                        str(tmp_path / "run")], stdout=handle, stderr=subprocess.STDOUT,
                       check=True, timeout=300)
    text = log.read_text()
    assert "\r" not in text
    progress_lines = [line for line in text.splitlines() if "step/s" in line or "steps/s" in line
                      or "% " in line]
    assert 2 <= len(progress_lines) <= 6, text  # start, end, a few phase changes at most


# -- MPI helpers -------------------------------------------------------------------------------
@pytest.mark.mpi
def test_share_gather_and_rank0_errors_on_three_ranks(tmp_path, arkr_atm_frames):
    """Two items on three ranks (one rank owns none): every item once, in order; an error
    raised on rank 0 reaches every rank as the same AetkError instead of a hang; the
    descriptors of two frames on three ranks equal the serial ones."""
    import numpy as np

    from toolkit.data import write_frames
    from toolkit.descriptors import DescriptorSpec, compute_descriptors

    write_frames(tmp_path / "two.extxyz", arkr_atm_frames[:2])
    out = run_mpi("""
        import numpy as np
        from toolkit.data import read_frames
        from toolkit.descriptors import DescriptorSpec, compute_descriptors
        from toolkit.parallel import (allgather_dict, gather_lists, is_rank0, on_rank0, share,
                                      share_indices, world)
        from toolkit.descriptor_spec import SpecError  # a user error whose module needs no torch
        comm = world()
        rank = comm.Get_rank()
        mine = share(["a", "b"], comm)
        merged = allgather_dict({i: i * i for i in share_indices(5, comm)}, comm)
        gathered = gather_lists(mine, comm)
        print(f"rank {rank} owns {mine} merged {sorted(merged.items())} gathered {gathered}")
        assert on_rank0(lambda: 41 + rank, comm) == 41
        def refuse():
            raise SpecError("the config changed")
        try:
            on_rank0(refuse, comm)
        except SpecError as exc:
            print(f"rank {rank} got SpecError: {exc}")
        d = compute_descriptors(read_frames("two.extxyz"), DescriptorSpec(), cache=False,
                                progress=False, comm=comm)
        np.save(f"descriptors-{rank}.npy", d.values)
    """, tmp_path, np=3)
    serial = compute_descriptors(arkr_atm_frames[:2], DescriptorSpec(), cache=False,
                                 progress=False).values
    for rank in range(3):  # every rank has all of them, rank 2 computed none itself
        np.testing.assert_array_equal(np.load(tmp_path / f"descriptors-{rank}.npy"), serial)
    assert "rank 0 owns ['a'] merged [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)] gathered " \
        "['a', 'b']" in out
    assert "rank 1 owns ['b']" in out and "rank 2 owns [] " in out
    assert "rank 2 owns [] merged [(0, 0), (1, 1), (2, 4), (3, 9), (4, 16)] gathered None" in out
    for rank in range(3):
        assert f"rank {rank} got SpecError: the config changed" in out


# -- tables -----------------------------------------------------------------------------------
def test_tables_round_trip_exactly_with_typed_columns(tmp_path):
    rows = [{"system": "Ar", "width": 3, "r2": 0.1 + 0.2, "local": math.nan},
            {"system": "ArKr", "width": 16, "r2": -1e-300, "local": None}]
    path = write_table(tmp_path / "t.csv", rows, ["system", "width", "r2", "local"])
    back = read_table(path, ints={"width"}, texts={"system"})
    assert back[0]["r2"] == 0.1 + 0.2 and back[1]["r2"] == -1e-300  # bit for bit
    assert back[0]["width"] == 3 and isinstance(back[0]["width"], int)
    assert math.isnan(back[0]["local"]) and math.isnan(back[1]["local"])  # empty cell: NaN
    with pytest.raises(TableError, match="column 'system' holds 'Ar', not float"):
        read_table(path, ints={"width"})
    with pytest.raises(TableError, match="no column\\(s\\) \\['seed'\\]"):
        read_table(path, texts={"system"}, require=["seed"])
    with pytest.raises(TableError, match="no such table"):
        read_table(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="does not name"):
        write_table(tmp_path / "u.csv", [{"system": "Ar", "extra": 1}], ["system"])


# -- job configs ------------------------------------------------------------------------------
def test_job_configs_refuse_unknown_keys_and_round_trip(tmp_path):
    fit = FitConfig("data.extxyz", (8, 4), "tanh", seed=3,
                    training=TrainingSettings(max_iterations=7))
    path = fit.write(tmp_path / "fit.json")
    assert FitConfig.read(path) == fit
    assert json.loads(path.read_text())["training"]["max_iterations"] == 7
    with pytest.raises(ConfigError, match="unknown keys \\['widths'\\]"):
        FitConfig.from_dict({"data": "x", "widths": [3]})
    with pytest.raises(ConfigError, match="training: unknown keys \\['max_iter'\\]"):
        FitConfig.from_dict({"data": "x", "training": {"max_iter": 3}})
    with pytest.raises(ConfigError, match="missing keys \\['data'\\]"):
        FitConfig.from_dict({"hidden": [3]})
    with pytest.raises(Exception, match="silently become linear"):
        FitConfig("x", (3,), "gelu")
    run = MDRun("reference:lj", "ArKr", 32, steps=10)
    assert MDRun.from_dict(json.loads(json.dumps(run.to_dict()))) == run
    with pytest.raises(ConfigError, match="unknown keys \\['temp'\\]"):
        MDRun.from_dict({**run.to_dict(), "temp": 300})
    with pytest.raises(Exception, match="4 n\\^3"):
        MDRun("reference:lj", "Ar", 30)
    evaluate = EvaluateConfig("pot", "data.extxyz", frames="test", replicate=2)
    assert EvaluateConfig.from_dict(evaluate.to_dict()) == evaluate
    with pytest.raises(Exception, match="mode 'rows'"):
        EvaluateConfig("pot", "data.extxyz", mode="rows")
