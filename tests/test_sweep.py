"""Sweeps: resume after a kill without lost or duplicated rows, MPI == serial, spot-check
against LAMMPS, figures."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from toolkit.data import read_frames, write_frames
from toolkit.evaluation import predict, score
from toolkit.models.potential import read_potential
from toolkit.studies.sweep import export_member, read_config, read_results, run_sweep

BIN = Path(sys.executable).parent
TIMING = {"cell_seconds"}


def _write_config(root: Path, name: str, iterations: int,
                  systems: tuple[str, ...] = ("ArKr",),
                  activations: tuple[str, ...] = ("tanh", "linear"),
                  depths: tuple[int, ...] = (1, 2), widths: tuple[int, ...] = (1, 3),
                  seeds: tuple[int, ...] = (0, 1), patience: int | None = None) -> Path:
    path = root / f"{name}.toml"
    files = "\n".join(f'{s} = "{root / (s.lower() + ".extxyz")}"' for s in systems)
    path.write_text(f"""
[sweep]
systems = {list(systems)!r}
activations = {list(activations)!r}
depths = {list(depths)!r}
widths = {list(widths)!r}
seeds = {list(seeds)!r}
[training]
max_iterations = {iterations}
patience = {iterations if patience is None else patience}
[data.files]
{files}
""".replace("'", '"'))
    return path


@pytest.fixture(scope="module")
def frames_root(tmp_path_factory):
    from toolkit.reference.classical import ClassicalRun, generate_frames

    root = tmp_path_factory.mktemp("sweep")
    frames = generate_frames(ClassicalRun("ArKr", n_frames=15, seed=4, melt_steps=300,
                                          equilibration_steps=300), progress=False)
    write_frames(root / "arkr.extxyz", frames)
    write_frames(root / "ar.extxyz", generate_frames(
        ClassicalRun("Ar", n_frames=15, seed=4, melt_steps=300, equilibration_steps=300),
        progress=False))
    return root


@pytest.fixture(scope="module")
def config_file(frames_root):
    return _write_config(frames_root, "tiny", 15)


def _rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _key(row):
    return (row["system"], row["activation"], row["depth"], row["width"], row["seed"])


def test_resume_after_kill_loses_and_duplicates_nothing(config_file, tmp_path):
    config = read_config(config_file)
    out = tmp_path / "run"
    run_sweep(config, out, progress=False, stop_after=3)  # as if killed after 3 cells
    first = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.pt")}
    assert len(first) == 3 and len(_rows(out / "results.csv")) == 3 * 2
    run_sweep(config, out, progress=False)
    rows = _rows(out / "results.csv")
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == 8 * 2  # 8 cells x 2 seeds, each once
    for name, mtime in first.items():  # finished cells were not trained again
        assert (out / "cells" / name).stat().st_mtime_ns == mtime


def test_real_kill_mid_sweep_then_resume_equals_an_uninterrupted_run(frames_root, tmp_path):
    """`kill -9` mid-sweep, resume: the final table equals an uninterrupted run of the same
    config cell for cell (every column but the timing), and the killed run trained part of
    it before the kill. The uninterrupted run goes alongside, on the other core."""
    # patience < iterations so members stop early (at different iterations)
    slow = _write_config(frames_root, "slow", 200, patience=20, activations=("tanh",))
    killed, whole = tmp_path / "killed", tmp_path / "whole"

    def command(out):
        return [str(BIN / "aetk"), "sweep", "--config", str(slow), "--out", str(out), "--quiet"]

    reference = subprocess.Popen(command(whole), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    process = subprocess.Popen(command(killed), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((killed / "cells").glob("*.csv"))) < 1:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = {p.name: p.read_bytes() for p in (killed / "cells").glob("*.csv")}
    assert 1 <= len(before) < 4, "the kill should land mid-sweep"
    subprocess.run(command(killed), check=True, capture_output=True, timeout=300)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    rows, expected = _rows(killed / "results.csv"), _rows(whole / "results.csv")
    keys = [_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == 4 * 2
    assert [_key(r) for r in expected] == keys
    for got, want in zip(rows, expected, strict=True):
        assert {k: v for k, v in got.items() if k not in TIMING} == \
            {k: v for k, v in want.items() if k not in TIMING}, _key(got)
    for name, text in before.items():  # cells finished before the kill were kept as they were
        assert (killed / "cells" / name).read_bytes() == text
    # early stopping fired (a member stopped before max_iterations), so "equal" covers it
    assert min(int(r["best_iteration"]) for r in rows) < 200 - 20


def test_resume_under_a_changed_config_is_refused_naming_the_difference(frames_root, tmp_path,
                                                                        capsys):
    """Other seeds and other max_iterations: refused, both named, nothing trained or
    overwritten; --force-new starts over and `export` then uses the new config."""
    from toolkit.cli import main
    from toolkit.studies.sweep import SweepConfigError

    out = tmp_path / "run"
    first = _write_config(frames_root, "first", 15, activations=("tanh",), depths=(1,))
    run_sweep(read_config(first), out, progress=False, stop_after=1)
    cells = {p.name: p.read_bytes() for p in (out / "cells").iterdir()}
    config_text = (out / "config.json").read_text()
    changed = _write_config(frames_root, "changed", 20, activations=("tanh",), depths=(1,),
                            seeds=(0, 2))
    with pytest.raises(SweepConfigError) as info:
        run_sweep(read_config(changed), out, progress=False)
    message = str(info.value)
    assert "seeds: [0, 1] -> [0, 2]" in message
    assert "training.max_iterations: 15 -> 20" in message and "training.patience" in message
    assert "--force-new" in message and "name:" not in message
    assert {p.name: p.read_bytes() for p in (out / "cells").iterdir()} == cells
    assert (out / "config.json").read_text() == config_text
    # the same through the CLI (in this process): one line, exit status 2
    status = main(["sweep", "--config", str(changed), "--out", str(out), "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2 and len(stderr.strip().splitlines()) == 1
    assert "seeds: [0, 1] -> [0, 2]" in stderr
    # the unchanged config resumes (its name may differ: it is only a label), also with
    # linear networks' rows summed per frame (the same loss, docs/paper_regime.md)
    renamed = _write_config(frames_root, "renamed", 15, activations=("tanh",), depths=(1,))
    assert main(["sweep", "--config", str(renamed), "--out", str(out), "--quiet",
                 "--linear-sums"]) == 0
    assert json.loads((out / "config.json").read_text())["training"]["linear_sums"] is True
    assert len(_rows(out / "results.csv")) == 2 * 2
    # --force-new: the old cells are gone, the table has the new seeds only
    assert main(["sweep", "--config", str(changed), "--out", str(out), "--quiet",
                 "--force-new"]) == 0
    rows = read_results(out)
    assert sorted({r["seed"] for r in rows}) == [0, 2] and len(rows) == 4
    target = export_member(out, "ArKr", "tanh", 1, 3, 2, tmp_path / "pot")
    assert read_potential(target).meta["sweep"]["system"] == "ArKr"
    with pytest.raises(SweepConfigError, match="seed 1 not in sweep cell"):
        export_member(out, "ArKr", "tanh", 1, 3, 1, tmp_path / "pot1")


def test_changed_frames_are_refused_on_resume_and_export(frames_root, tmp_path):
    """Same config, but the data file was rewritten with other frames: the finished cells'
    splits, scores and walls belong to the old frames, so resume and export refuse."""
    from toolkit.studies.sweep import SweepConfigError

    data = tmp_path / "arkr.extxyz"
    data.write_bytes((frames_root / "arkr.extxyz").read_bytes())
    config = tmp_path / "own.toml"
    config.write_text(_write_config(frames_root, "own", 5, activations=("tanh",), depths=(1,),
                                    widths=(1,)).read_text().replace(
        str(frames_root / "arkr.extxyz"), str(data)))
    out = tmp_path / "run"
    run_sweep(read_config(config), out, progress=False)
    frames = read_frames(data)
    write_frames(data, frames[::-1])  # the same frames in another order: another split
    with pytest.raises(SweepConfigError, match="frames of ArKr .* differ from what"):
        run_sweep(read_config(config), out, progress=False)
    with pytest.raises(SweepConfigError, match="frames of ArKr .* differ from what"):
        export_member(out, "ArKr", "tanh", 1, 1, 0, tmp_path / "pot")


@pytest.mark.mpi
def test_three_ranks_with_one_idle_give_the_serial_table(frames_root, tmp_path):
    """Two cells on three ranks: rank 0 trains the Ar cell, rank 1 the ArKr cell (each
    loading its own system's frames), rank 2 owns no cell and must still take part."""
    config_file = _write_config(frames_root, "two", 15, systems=("Ar", "ArKr"),
                                activations=("tanh",), depths=(1,), widths=(3,))
    serial, parallel = tmp_path / "serial", tmp_path / "mpi"
    run_sweep(read_config(config_file), serial, progress=False)
    subprocess.run([str(BIN / "mpirun"), "-np", "3", str(BIN / "aetk"), "sweep", "--config",
                    str(config_file), "--out", str(parallel), "--quiet"], check=True,
                   capture_output=True, timeout=300)
    a, b = _rows(serial / "results.csv"), _rows(parallel / "results.csv")
    assert len(a) == len(b) == 2 * 2
    for row_a, row_b in zip(a, b, strict=True):
        assert {k: v for k, v in row_a.items() if k not in TIMING} == \
            {k: v for k, v in row_b.items() if k not in TIMING}


def test_best_and_worst_members_through_lammps_match_the_table(config_file, tmp_path):
    config = read_config(config_file)
    out = tmp_path / "spot"
    run_sweep(config, out, progress=False)
    rows = read_results(out)
    rows.sort(key=lambda r: r["local_r2_aligned"])
    frames = read_frames(config.data.files["ArKr"])
    for row in (rows[0], rows[-1]):
        target = export_member(out, row["system"], row["activation"], row["depth"],
                               row["width"], row["seed"], tmp_path / f"pot{row['seed']}")
        potential = read_potential(target)
        test = [frames[i] for i in potential.meta["data"]["split"]["test"]]
        metrics = score(potential, test, predict(potential, test, progress=False))
        assert abs(metrics["local_aligned"]["r2"] - row["local_r2_aligned"]) < 1e-8
        assert abs(metrics["total"]["r2"] - row["total_r2"]) < 1e-8
    assert rows[0]["local_r2_aligned"] < rows[-1]["local_r2_aligned"]


def test_report_draws_the_paper_figures(config_file, tmp_path):
    out = tmp_path / "fig"
    run_sweep(read_config(config_file), out, progress=False)
    result = subprocess.run([str(BIN / "aetk"), "report", "--results", str(out), "--out",
                             str(out / "figures")], capture_output=True, text=True, check=True)
    for name in ("fig2_local_r2_tanh", "fig7_total_r2", "fig8_local_r2"):
        for suffix in (".png", ".pdf"):
            assert (out / "figures" / f"{name}{suffix}").stat().st_size > 5000
    assert "fig7_total_r2.png" in result.stdout


def test_unknown_config_keys_are_refused(tmp_path):
    from toolkit.studies.sweep import SweepConfigError

    bad = tmp_path / "bad.toml"
    bad.write_text('[sweep]\nsystems=["Ar"]\nactivations=["gelu"]\ndepths=[1]\nwidths=[1]\n'
                   'seeds=[0]\n')
    with pytest.raises(SweepConfigError, match="gelu"):
        read_config(bad)
    bad.write_text('[sweep]\nsystems=["Ar"]\nactivations=["tanh"]\ndepths=[1]\nwidths=[1]\n'
                   'seeds=[0]\nwidth=[2]\n')
    with pytest.raises(SweepConfigError, match="unknown keys \\['width'\\]"):
        read_config(bad)


def test_summary_means_and_stds(config_file, tmp_path):
    from toolkit.studies.sweep import summarise

    rows = [{"system": "Ar", "activation": "tanh", "depth": 1, "width": w, "seed": s,
             "m": float(w + s)} for w in (1, 4) for s in (0, 2)]
    widths, mean, std = summarise(rows, "m")[("Ar", "tanh", 1)]
    assert widths.tolist() == [1, 4] and mean.tolist() == [2.0, 5.0]
    np.testing.assert_allclose(std, [1.0, 1.0])
