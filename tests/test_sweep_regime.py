"""Sweeps for the paper's regime: the data-size axis, slices of a grid (--only) with the
missing cells named, the device and bundle options of `aetk sweep`, protocol comparison
and data-size figures from `aetk report`."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from toolkit.cli import main
from toolkit.data import write_frames
from toolkit.models.fitting import load_dataset
from toolkit.studies.sweep import (
    SweepConfigError,
    cell_id,
    describe_missing,
    missing_cells,
    parse_only,
    parse_part,
    read_config,
    run_sweep,
    training_frames,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from toolkit.reference.classical import ClassicalRun, generate_frames

    root = tmp_path_factory.mktemp("regime")
    for system in ("Ar", "ArKr"):
        frames = generate_frames(ClassicalRun(system, n_frames=20, seed=6, melt_steps=300,
                                              equilibration_steps=300), progress=False)
        write_frames(root / f"{system.lower()}.extxyz", frames)
    return root


def _config(root: Path, name: str, extra: str = "", training: str = "") -> Path:
    path = root / f"{name}.toml"
    path.write_text(f"""
[sweep]
name = "{name}"
systems = ["Ar", "ArKr"]
activations = ["tanh"]
depths = [1]
widths = [1, 3]
seeds = [0, 1]
{extra}
[training]
max_iterations = 15
patience = 15
{training}
[data.files]
Ar = "{root / 'ar.extxyz'}"
ArKr = "{root / 'arkr.extxyz'}"
""")
    return path


def _rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_training_frames_are_nested_and_bounded(root):
    dataset = load_dataset(root / "arkr.extxyz", read_config(_config(root, "t")).spec,
                           split_seed=0, progress=False)
    small, large = training_frames(dataset, 4, ""), training_frames(dataset, 10, "")
    assert len(small) == 4 and len(large) == 10 and set(small) < set(large)
    assert set(large) <= set(dataset.split.train)
    np.testing.assert_array_equal(training_frames(dataset, None), dataset.split.train)
    with pytest.raises(SweepConfigError, match="more than the 14 training frames"):
        training_frames(dataset, 15, "ArKr: ")


@pytest.fixture(scope="module")
def sized(root, tmp_path_factory):
    """A sweep with a data-size axis (4 and 12 training frames), trained once."""
    config = read_config(_config(root, "sizes", "train_frames = [4, 12]"))
    out = tmp_path_factory.mktemp("sized") / "run"
    run_sweep(config, out, progress=False)
    return config, out


def test_data_size_axis_trains_each_size_and_reports_it(root, sized, tmp_path, capsys):
    config, run = sized
    assert len(config.cells()) == 2 * 2 * 2
    assert cell_id(*config.cells()[0]) == "Ar_tanh_d1_w1_n4"
    rows = _rows(run / "results.csv")
    assert sorted({int(r["n_train"]) for r in rows}) == [4, 12]
    assert len(rows) == 8 * 2
    # fewer frames, other networks: the axis does change what is trained
    by_size = {int(r["n_train"]): float(r["train_loss"]) for r in rows
               if r["system"] == "ArKr" and r["width"] == "3" and r["seed"] == "0"}
    assert by_size[4] != by_size[12]
    # LPR measures the rigidity the cell's own 4 training frames give, not the whole split's:
    # the table's value is recomputed from 4 frames, and 12 frames give more rigidity (adding
    # frames can only add to the rigidity matrix)
    import torch

    from toolkit.models.training import TrainedEnsemble
    from toolkit.studies.identifiability import DatasetGauge

    dataset = load_dataset(root / "arkr.extxyz", config.spec, config.split_seed, progress=False)
    ensemble = TrainedEnsemble.from_dict(torch.load(
        run / "cells" / "ArKr_tanh_d1_w3_n4.pt", weights_only=True))
    gauge = DatasetGauge(dataset)
    four = gauge.member_rows(ensemble, train_frames=training_frames(dataset, 4))
    split = gauge.member_rows(ensemble)
    stored = [r for r in rows if r["system"] == "ArKr" and r["width"] == "3"
              and r["n_train"] == "4"]
    for mine, row, whole in zip(four, stored, split, strict=True):
        for element in ("Ar", "Kr"):
            assert float(row[f"lpr_{element}"]) == pytest.approx(mine[f"lpr_{element}"],
                                                                 rel=1e-12)
            assert whole[f"lpr_{element}"] > 1.05 * mine[f"lpr_{element}"]
    stored = json.loads((run / "config.json").read_text())
    assert stored["train_frames"] == [4, 12]
    assert main(["report", "--results", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert "all 8 cells finished" in capsys.readouterr().out
    assert (tmp_path / "figs" / "data_size_local_r2_aligned_tanh_d1.png").is_file()
    table = (tmp_path / "figs" / "data_size_local_r2_aligned_tanh_d1.md").read_text()
    assert "| width | 4 frames | 12 frames |" in table and "| 3 |" in table
    totals = (tmp_path / "figs" / "data_size_total_r2_tanh_d1.md").read_text()
    assert (tmp_path / "figs" / "data_size_total_r2_tanh_d1.png").is_file()
    assert totals != table and "| width | 4 frames | 12 frames |" in totals


def test_systems_with_different_frame_counts_are_not_a_data_size_axis(sized, tmp_path):
    """Two systems with different numbers of training frames (e.g. DFT compositions): the
    report draws every system in the paper's figures and no data-size figure."""
    _, run = sized
    rows = _rows(run / "results.csv")
    kept = [r for r in rows if (r["system"], r["n_train"]) in (("Ar", "4"), ("ArKr", "12"))]
    table = tmp_path / "one_size_per_system.csv"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    assert main(["report", "--results", str(table), "--out", str(tmp_path / "figs")]) == 0
    assert not list((tmp_path / "figs").glob("data_size_*"))
    assert (tmp_path / "figs" / "fig8_local_r2.png").is_file()
    # control: the full table, with two sizes per cell, is a data-size axis
    assert main(["report", "--results", str(run), "--out", str(tmp_path / "figs2")]) == 0
    assert list((tmp_path / "figs2").glob("data_size_*"))


def test_tables_never_pool_training_set_sizes(sized, tmp_path):
    """A width table of a sweep with a data-size axis would average seeds of different sizes
    into one cell: it is refused, and --compare tables such a sweep at its largest size."""
    from toolkit.errors import AetkError
    from toolkit.studies.regime import data_size_axis, width_table
    from toolkit.studies.sweep import read_results

    _, run = sized
    rows = read_results(run / "results.csv")
    assert data_size_axis(rows) == [4, 12]
    with pytest.raises(AetkError, match="several training-set sizes"):
        width_table({"run": rows}, "local_r2_aligned", ["Ar", "ArKr"])
    largest = [r for r in rows if int(r["n_train"]) == 12]
    assert data_size_axis(largest) == []
    assert main(["report", "--results", str(run), "--out", str(tmp_path / "figs"),
                 "--compare", f"sized={run}"]) == 0
    text = (tmp_path / "figs" / "comparison.md").read_text()
    assert text.startswith("sized: a data-size axis (4, 12 training frames); compared at 12.")
    assert width_table({"sized": largest}, "local_r2_aligned", ["Ar", "ArKr"]) in text


def test_too_many_training_frames_are_refused_in_one_line(root, tmp_path, capsys):
    config = _config(root, "big", "train_frames = [50]")
    assert main(["sweep", "--config", str(config), "--out", str(tmp_path / "run"),
                 "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "train_frames 50 is more than the 14 training frames" in error


def test_a_slice_runs_only_its_cells_and_the_rest_is_named_missing(root, tmp_path, capsys):
    config = read_config(_config(root, "slice"))
    only = parse_only(["system=ArKr", "width=3"])
    rows = _rows(run_sweep(config, tmp_path / "run", progress=False, only=only))
    assert {(r["system"], r["width"]) for r in rows} == {("ArKr", "3")}
    missing = missing_cells(config, tmp_path / "run")
    assert set(missing) == {("Ar", "tanh", 1, 1), ("Ar", "tanh", 1, 3), ("ArKr", "tanh", 1, 1)}
    text = describe_missing(config, missing)
    assert "3 of 4 cells have not run" in text and "ArKr tanh depth 1: widths 1" in text
    with pytest.raises(SweepConfigError, match="FIELD=V1,V2"):
        parse_only(["colour=red"])
    with pytest.raises(SweepConfigError, match="selects none"):
        run_sweep(config, tmp_path / "none", progress=False, only=parse_only(["width=7"]))
    # --part: the second of two processes takes every other cell of the selection, largest
    # first, ties in name order (Ar w3, ArKr w3, Ar w1, ArKr w1): here ArKr's two cells
    rows = _rows(run_sweep(config, tmp_path / "part", progress=False,
                           only=parse_only(["width=1,3"]), part=parse_part("1/2")))
    assert {(r["system"], r["width"]) for r in rows} == {("ArKr", "1"), ("ArKr", "3")}
    assert parse_part("2/3") == (2, 3) and parse_part(None) is None
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(SweepConfigError, match="J/N with 0 <= J < N"):
            parse_part(bad)
    # from the CLI: one line, and a call that failed leaves no run record (nor a folder)
    path = str(_config(root, "slice"))
    assert main(["sweep", "--config", path, "--out", str(tmp_path / "bad"), "--part", "3/3"]) == 2
    assert main(["sweep", "--config", path, "--out", str(tmp_path / "part"), "--part", "0/2",
                 "--force-new"]) == 2
    error = capsys.readouterr().err
    assert "J/N with 0 <= J < N" in error and "--force-new with --part" in error
    assert not (tmp_path / "bad").exists()
    assert not (tmp_path / "part" / "runs.jsonl").exists() and (tmp_path / "part").is_dir()


def test_adam_and_lbfgs_sweeps_are_compared_in_one_figure_and_table(root, tmp_path, capsys):
    lbfgs = read_config(_config(root, "lbfgs"))
    adam = read_config(_config(root, "adam", training='optimizer = "adam"\nepochs = 5\n'
                               'batch_size = 4'))
    assert adam.training.optimizer == "adam" and lbfgs.training.optimizer == "lbfgs"
    only = parse_only(["system=ArKr"])
    run_sweep(lbfgs, tmp_path / "lbfgs", progress=False, only=only)
    adam_rows = _rows(run_sweep(adam, tmp_path / "adam", progress=False, only=only))
    assert {r["best_iteration"] for r in adam_rows} == {"5"}  # all epochs, no early stopping
    assert main(["report", "--results", str(tmp_path / "adam"), "--out",
                 str(tmp_path / "figs"), "--compare", f"L-BFGS={tmp_path / 'lbfgs'}",
                 "--compare", f"Adam={tmp_path / 'adam'}"]) == 0
    assert "2 of 4 cells have not run" in capsys.readouterr().out  # Ar left out by --only
    assert (tmp_path / "figs" / "compare_local_r2_aligned_tanh_d1.png").is_file()
    table = (tmp_path / "figs" / "comparison.md").read_text()
    assert "| width | L-BFGS ArKr | Adam ArKr |" in table
    assert "| Adam | 4 |" in table  # the same 4 members (2 widths x 2 seeds) in both
    assert len([line for line in table.splitlines() if line.startswith("| 3 |")]) == 2


def test_sweep_device_option_is_recorded_and_cuda_is_refused_without_a_gpu(root, tmp_path,
                                                                          capsys):
    import torch

    config = _config(root, "device")
    command = ["sweep", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet",
               "--only", "system=Ar", "--only", "width=1", "--device", "cpu"]
    assert main(command) == 0
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["training"]["device"] == "cpu"
    record = json.loads((tmp_path / "run" / "runs.jsonl").read_text().splitlines()[-1])
    assert record["cells_trained"] == 1 and record["device"] == "cpu"
    assert record["machine"]["cpus"] >= 1 and "torch" in record["machine"]
    assert record["command"].split()[0] == "aetk"  # no path of this machine in the record
    if not torch.cuda.is_available():
        capsys.readouterr()
        assert main(command[:-1] + ["cuda"]) == 2
        error = capsys.readouterr().err
        assert "no CUDA GPU" in error and error.count("\n") == 1


def test_older_sweep_configs_still_compare_equal(root, tmp_path):
    """A config.json written before the new settings existed equals its TOML's config."""
    from toolkit.studies.sweep import _config_from_dict

    config = read_config(_config(root, "old"))
    stored = config.to_dict()
    for key in ("device", "optimizer", "epochs", "batch_size", "learning_rate", "lr_schedule",
                "lr_final", "shuffle_seed"):
        del stored["training"][key]
    assert _config_from_dict(stored).to_dict() == config.to_dict()
    assert "bundle" not in stored["data"] and "train_frames" not in stored
    changed = replace(config, training=replace(config.training, optimizer="adam"))
    assert _config_from_dict(stored).to_dict() != changed.to_dict()


def test_paired_table_measures_member_differences():
    from toolkit.studies.regime import paired_table

    rows = [{"system": "Ar", "activation": "tanh", "depth": 1, "width": w, "seed": seed,
             "n_train": 10, "local_r2_aligned": 0.9 + 0.01 * w, "total_r2": 0.99}
            for w in (1, 2) for seed in (0, 1)]
    shifted = [dict(r, local_r2_aligned=r["local_r2_aligned"] + (3e-4 if r["width"] == 2
                                                                 else 1e-4)) for r in rows]
    table = paired_table({"a": rows, "same": [dict(r) for r in rows], "b": shifted[:3]},
                         ["local_r2_aligned", "total_r2"])
    assert "| same | 4 | 0.00e+00 | 0.00e+00 | 0.00e+00 | 0.00e+00 |" in table
    assert "| b | 3 | 3.00e-04 | 1.67e-04 | 0.00e+00 | 0.00e+00 |" in table


def test_report_of_a_table_without_gauge_columns_draws_no_gauge_figures(tmp_path):
    """Results tables from before ``local_r2_gauge`` and ``lpr_*`` existed (e.g.
    results/paper_regime/) are reported: no gauge or rigidity figure, no KeyError; the
    control with the columns present draws the rigidity figure."""
    from toolkit.plots import gauge_figure, rigidity_figure

    old = [{"system": s, "activation": "tanh", "depth": 1, "width": w, "seed": k,
            "local_r2_aligned": 0.9 - 0.01 * w, "total_r2": 0.99}
           for s in ("Ar", "ArKr") for w in (1, 4) for k in range(3)]
    assert rigidity_figure(old, tmp_path, "local_r2_gauge") == []
    assert rigidity_figure(old, tmp_path, "local_r2_aligned") == []  # no lpr_* columns
    assert gauge_figure(old, tmp_path) == []
    new = [{**r, "local_r2_gauge": 0.95 - 0.01 * r["width"] - 0.001 * r["seed"],
            "lpr_Ar": 1.0 / r["width"] + 0.01 * r["seed"]} for r in old]
    assert rigidity_figure(new, tmp_path, "local_r2_gauge")


@pytest.mark.slow
def test_a_sweep_stopped_by_a_time_limit_keeps_its_cells_and_its_run_record(root, tmp_path):
    """SIGTERM (what `timeout` and batch systems send) ends `aetk sweep` with exit 143, the
    finished cells kept and a run record saying it was stopped; a rerun goes on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = _config(root, "stopped")
    config.write_text(config.read_text().replace("widths = [1, 3]", "widths = [1, 2, 3, 4, 5]")
                      .replace('systems = ["Ar", "ArKr"]', 'systems = ["Ar"]')
                      .replace("max_iterations = 15", "max_iterations = 100")
                      .replace("patience = 15", "patience = 100"))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "toolkit.cli", "sweep", "--config", str(config),
               "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 120
    while not ((out / "cells").is_dir() and any((out / "cells").glob("*.csv"))):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stdout + stderr
    assert "stopped by SIGTERM" in stderr and "run the same command again" in stderr
    record = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])
    assert record["stopped"] == "SIGTERM" and 1 <= record["cells_finished"] < 5
    finished = record["cells_finished"]
    assert main(["sweep", "--config", str(config), "--out", str(out), "--quiet"]) in (0, None)
    record = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])
    assert "stopped" not in record and record["cells_finished"] == 5
    assert record["cells_trained"] == 5 - finished


def test_four_panel_figures_of_a_partial_grid_label_every_width(sized):
    """The panels share one x axis: a panel without cells (here every panel but tanh, one
    layer) must not leave that axis without labels, as it did (set_xticks([]) last)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.plots import ARCHITECTURES, _curves
    from toolkit.studies.sweep import read_results

    _, run = sized
    rows = [r for r in read_results(run) if r["n_train"] == 12]
    fig, axes = plt.subplots(2, 2, sharex=True, sharey=True)
    for ax, (activation, depth) in zip(axes.flat, ARCHITECTURES, strict=True):
        _curves(ax, rows, "local_r2_aligned", activation, depth, shared=True)
    ticks = [t.get_text() for t in axes[1, 1].get_xticklabels()]
    plt.close(fig)
    assert sorted(int(t) for t in ticks if t) == [1, 3]
    fig, axes = plt.subplots(2, 2, sharex=True, sharey=True)
    for ax, (activation, depth) in zip(axes.flat, ARCHITECTURES, strict=True):
        _curves(ax, rows, "local_r2_aligned", activation, depth)  # control: not shared
    assert not [t for t in axes[1, 1].get_xticklabels() if t.get_text()]
    plt.close(fig)


def test_width_labels_thin_a_dense_grid_and_keep_both_ends():
    """The paper's 16 widths from 1 to 500 overlapped on a log axis ("64100", 300/400/500 on
    top of each other); a label that would overlap the one before is left empty, the first
    and last width always labelled. Six wide widths on the same axis keep every label."""
    from toolkit.plots import width_labels

    paper = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 100, 150, 200, 300, 400, 500]
    labels = width_labels(paper, axis_inches=3.6)
    assert len(labels) == len(paper)  # one label (maybe empty) per tick
    assert [t for t in labels if t] == ["1", "2", "4", "8", "12", "24", "48", "100", "200",
                                        "500"]
    inches = np.log(paper) / np.log(500) * 3.6
    shown = [(x, len(t)) for x, t in zip(inches, labels, strict=True) if t]
    digit = 0.6 * 10 / 72
    for (x0, n0), (x1, n1) in zip(shown[:-1], shown[1:], strict=True):  # none overlap
        assert x1 - x0 >= (n0 + n1) / 2 * digit
    narrow = width_labels(paper, axis_inches=2.4)  # a narrower panel: fewer labels
    assert 2 < sum(map(bool, narrow)) < sum(map(bool, labels)) and narrow[-1] == "500"
    assert width_labels(paper[10:], 3.6) == ["100", "150", "200", "300", "400", "500"]
    assert width_labels([1, 3], 0.1) == ["1", "3"]


def test_every_shipped_sweep_config_reads():
    """Each sweeps/*.toml (the ones only a GPU or a cluster runs, too) is a valid config: a
    typo there would surface only on the machine that finally runs it."""
    from toolkit.studies.reference_points import read_lj_config

    root = Path(__file__).resolve().parents[1] / "sweeps"
    configs = sorted(root.glob("*.toml"))
    assert len(configs) >= 19
    for path in configs:
        if "[points]" in path.read_text():
            assert read_lj_config(path), path
        else:
            assert read_config(path).cells(), path
