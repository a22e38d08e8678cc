"""The measurements behind docs/identifiability.md that are not plain sweeps.

    .venv/bin/python scripts/identifiability_study.py compositions   # several Kr fractions
    .venv/bin/python scripts/identifiability_study.py decay          # weight decay, width
    .venv/bin/python scripts/identifiability_study.py teachers       # two teachers, one psi apart
    .venv/bin/python scripts/identifiability_study.py dft            # the DFT mixture
    .venv/bin/python scripts/identifiability_study.py all
    .venv/bin/python scripts/identifiability_study.py tables      # markdown of the results
    .venv/bin/python scripts/identifiability_study.py sweeps [--runs DIR] [--figures DIR]
                                        # the sweeps' tables (from finished cells), figures

Each writes ``results/identifiability/<study>.csv`` (one row per model) and
``<study>.json`` (settings, code version, machine), atomically; frames are generated into
``runs/identifiability-study/`` (deterministic: same seed, same frames). Every model is
scored on held-out frames by :class:`toolkit.studies.identifiability.GaugeProjector`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "identifiability"
WORK = ROOT / "runs" / "identifiability-study"
WIDTHS = (2, 8, 32)
SEEDS = (0, 1, 2)
FRAMES = 600  # per training file (70/10/20 split as everywhere)
TEST_FRAMES = 100  # 50/50 frames of an independent run, the common test set


def _frames(name: str, system: str, frames: int, seed: int, fractions=None,
            reference: str = "lj"):
    """Generate (once) and read a classical data file."""
    from toolkit.data import read_frames, write_frames
    from toolkit.reference.classical import ClassicalRun, generate_frames
    from toolkit.species import mixture_name

    path = WORK / f"{name}.extxyz"
    if not path.is_file():
        systems = [system] if fractions is None else [
            mixture_name({"Ar": 1.0 - x, "Kr": x}, 108) for x in fractions]
        out = []
        for k, label in enumerate(systems):
            n = frames // len(systems) + (k < frames % len(systems))
            out += generate_frames(ClassicalRun(label, reference, n_frames=n, seed=seed + k),
                                   progress=False)
        write_frames(path, out)
    return path, read_frames(path)


def _train(path, widths=WIDTHS, seeds=SEEDS, settings=None):
    """(dataset, {width: ensemble}) trained on the totals of ``path``'s training frames."""
    from toolkit.descriptors import DescriptorSpec
    from toolkit.models.fitting import load_dataset
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, train_ensemble

    dataset = load_dataset(path, DescriptorSpec(), progress=False)
    settings = settings or TrainingSettings()
    out = {}
    for width in widths:
        out[width] = train_ensemble(Architecture((width,), "tanh"), dataset.descriptors,
                                    dataset.energies, dataset.split.train,
                                    dataset.split.validation, list(seeds), settings,
                                    progress=False)
    return dataset, out


def _score(ensemble, frames, reference=None) -> list[dict]:
    """Gauge report of every member on ``frames`` (reference: their local_energy)."""
    from toolkit.descriptors import compute_descriptors
    from toolkit.models.networks import atomic_energies
    from toolkit.studies.identifiability import GaugeProjector

    descriptors = compute_descriptors(frames, ensemble.spec, progress=False)
    predicted = atomic_energies(ensemble.networks, ensemble.theta, ensemble.normalisation,
                                descriptors.values, descriptors.species_index)
    if reference is None:
        reference = np.concatenate([a.arrays["local_energy"] for a in frames])
    projector = GaugeProjector(frames, ensemble.spec)
    rows = []
    for m, seed in enumerate(ensemble.seeds):
        report = projector.decompose(reference, predicted[m])
        totals = np.bincount(descriptors.frame_index, weights=predicted[m])
        energies = np.array([a.info["energy"] for a in frames])
        rows.append({"seed": seed, "best_iteration": ensemble.iterations[m],
                     "total_rmse_meV_per_atom": 1e3 * float(np.sqrt(np.mean(
                         ((totals - energies) / np.array([len(a) for a in frames]))**2))),
                     "local_r2_aligned": report.r2_aligned, "local_r2_gauge": report.r2_gauge,
                     "share_constants": report.share_constants,
                     "share_transfer": report.share_transfer, "share_rest": report.share_rest,
                     "aligned_share_transfer": report.aligned_share_transfer,
                     "aligned_share_symmetric": report.aligned_share_symmetric,
                     "offset_Ar_meV": 1e3 * report.offsets.get("Ar", float("nan")),
                     "offset_Kr_meV": 1e3 * report.offsets.get("Kr", float("nan")),
                     "psi_at_first_shell_meV": _psi_near(report, 3.8)})
    return rows


def _psi_near(report, r: float) -> float:
    if "Ar-Kr" not in report.psi:
        return float("nan")
    table = report.psi["Ar-Kr"]
    return 1e3 * float(np.interp(r, table["r_A"], table["psi_eV"]))


def _write(name: str, rows: list[dict], settings: dict) -> None:
    from toolkit.data import atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()}
                     for r in rows)
    atomic_write_text(RESULTS / f"{name}.csv", buffer.getvalue())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    meta = {"study": name, "command": f"python scripts/identifiability_study.py {name}",
            "code_version": commit, "machine": platform.platform(),
            "processor": platform.processor(), "settings": settings,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(meta, indent=1) + "\n")
    print(f"wrote {RESULTS / name}.csv ({len(rows)} rows)", flush=True)


def _common_test():
    return _frames("test-ArKr-5050", "ArKr", TEST_FRAMES, seed=901)[1]


def compositions() -> None:
    """One composition (50/50) against five (Kr fraction 0, .25, .5, .75, 1), same frame
    count; both scored on the same independent 50/50 frames."""
    test = _common_test()
    rows = []
    for label, fractions in (("50/50 only", None), ("x_Kr 0,.25,.5,.75,1",
                                                   (0.0, 0.25, 0.5, 0.75, 1.0))):
        name = "train-ArKr-5050" if fractions is None else "train-ArKr-5comp"
        path, _ = _frames(name, "ArKr", FRAMES, seed=11, fractions=fractions)
        _, ensembles = _train(path)
        for width, ensemble in ensembles.items():
            for row in _score(ensemble, test):
                rows.append({"training": label, "width": width, **row})
        print(label, "done", flush=True)
    _write("compositions", rows, {"frames": FRAMES, "widths": WIDTHS, "seeds": SEEDS,
                                  "test": f"{TEST_FRAMES} frames of ArKr 50/50, seed 901"})


def decay() -> None:
    """Weight decay 0 / 1e-4 / 1e-2 (x mean theta^2, normalised loss) at each width."""
    from toolkit.models.training import TrainingSettings

    test = _common_test()
    path, _ = _frames("train-ArKr-5050", "ArKr", FRAMES, seed=11)
    rows = []
    for weight_decay in (0.0, 1e-4, 1e-2):
        _, ensembles = _train(path, settings=TrainingSettings(weight_decay=weight_decay))
        for width, ensemble in ensembles.items():
            for row in _score(ensemble, test):
                rows.append({"weight_decay": weight_decay, "width": width, **row})
        print("weight decay", weight_decay, "done", flush=True)
    _write("decay", rows, {"frames": FRAMES, "widths": WIDTHS, "seeds": SEEDS})


def teachers() -> None:
    """Teacher A: a tanh-16 fit of the LJ+ATM partition (exactly representable). Teacher B:
    A with 0.3 of the LJ Ar-Kr pair energy moved to Ar in every Ar-Kr pair (same totals and
    forces). Students trained on the (identical) totals, scored against both."""
    from toolkit.data import write_frames
    from toolkit.descriptors import DescriptorSpec
    from toolkit.models.potential import read_potential
    from toolkit.species import lorentz_berthelot
    from toolkit.studies.identifiability import move_along_transfer
    from toolkit.studies.teacher import label_with_teacher, write_teacher

    spec = DescriptorSpec()
    teacher_dir = WORK / "teacher-ArKr-tanh16"
    if not (teacher_dir / "meta.json").is_file():
        _, source = _frames("teacher-source-ArKr", "ArKr", 300, seed=21, reference="lj+atm")
        write_teacher(source, teacher_dir, source="teacher-source-ArKr")
    teacher = read_potential(teacher_dir)
    students_path = WORK / "students-ArKr-teacherA.extxyz"
    if not students_path.is_file():
        _, sampled = _frames("students-source-ArKr", "ArKr", FRAMES, seed=31,
                             reference="lj+atm")
        write_frames(students_path, label_with_teacher(sampled, teacher))
    test_path = WORK / "test-ArKr-teacherA.extxyz"
    if not test_path.is_file():
        write_frames(test_path, label_with_teacher(_common_test(), teacher))
    from toolkit.data import read_frames

    test = read_frames(test_path)
    teacher_a = np.concatenate([a.arrays["local_energy"] for a in test])
    epsilon, sigma = lorentz_berthelot("Ar", "Kr")
    teacher_b = move_along_transfer(test, teacher_a, spec, lambda r: 0.3 * 4 * epsilon * (
        (sigma / r) ** 12 - (sigma / r) ** 6))
    _, ensembles = _train(students_path)
    rows = []
    for width, ensemble in ensembles.items():
        for label, reference in (("teacher A", teacher_a), ("teacher B = A + psi", teacher_b)):
            for row in _score(ensemble, test, reference):
                rows.append({"against": label, "width": width, **row})
    _write("teachers", rows, {"teacher": "tanh-16 fit of LJ+ATM local energies (300 frames)",
                              "psi": "0.3 x LJ Ar-Kr pair energy, to Ar",
                              "frames": FRAMES, "widths": WIDTHS, "seeds": SEEDS})


def dft() -> None:
    """The shipped DFT mixture: how Bader splits Ar-Kr pairs (pairwise fit of its local
    energies), and the gauge decomposition of linear and tanh networks trained on its
    totals (its own split; the campaign's frames as they stand)."""
    from toolkit.data import read_frames
    from toolkit.descriptors import DescriptorSpec
    from toolkit.studies.identifiability import pair_partition_fit

    spec = DescriptorSpec()
    path = ROOT / "datasets" / "dft" / "Ar16Kr16.extxyz"
    frames = read_frames(path)
    local = np.concatenate([a.arrays["local_energy"] for a in frames])
    fit = pair_partition_fit(frames, local, spec)
    lj_frames = _common_test()
    lj = pair_partition_fit(lj_frames, np.concatenate([a.arrays["local_energy"]
                                                       for a in lj_frames]), spec)
    from toolkit.data import atomic_write_text

    atomic_write_text(RESULTS / "dft_pair_partition.json", json.dumps(
        {"data": str(path.relative_to(ROOT)), "n_frames": len(frames), "bader": fit,
         "lj_reference_pe_atom": lj}, indent=1) + "\n")
    from toolkit.models.training import TrainingSettings

    settings = TrainingSettings(max_iterations=200, patience=20)  # as sweeps/dft.toml
    rows = []
    from toolkit.descriptors import compute_descriptors  # noqa: F401  (cached descriptors)
    from toolkit.models.fitting import load_dataset
    from toolkit.models.networks import Architecture
    from toolkit.models.training import train_ensemble

    dataset = load_dataset(path, spec, progress=False)
    test = [dataset.frames[i] for i in dataset.split.test]
    for activation in ("linear", "tanh"):
        for width in (1, 2, 4, 8):
            ensemble = train_ensemble(Architecture((width,), activation), dataset.descriptors,
                                      dataset.energies, dataset.split.train,
                                      dataset.split.validation, [0, 1, 2], settings,
                                      progress=False)
            for row in _score(ensemble, test):
                rows.append({"activation": activation, "width": width, **row})
    _write("dft", rows, {"data": str(path.relative_to(ROOT)), "n_frames": len(frames),
                         "training": settings.to_dict()})


def tables() -> None:
    """Markdown tables of the committed results (mean +- std over seeds), for the docs."""
    groups = {"compositions": ("training", "width"), "decay": ("weight_decay", "width"),
              "teachers": ("width", "against"), "dft": ("activation", "width")}
    columns = ("local_r2_aligned", "local_r2_gauge", "share_constants",
               "aligned_share_transfer", "psi_at_first_shell_meV")
    for name, keys in groups.items():
        path = RESULTS / f"{name}.csv"
        if not path.is_file():
            continue
        rows = list(csv.DictReader(open(path)))
        order: dict[tuple, list[dict]] = {}
        for row in rows:
            order.setdefault(tuple(row[k] for k in keys), []).append(row)
        print(f"\n{name} ({path.relative_to(ROOT)})\n")
        print("| " + " | ".join(keys + columns) + " |")
        print("|" + "---|" * (len(keys) + len(columns)))
        for key, members in order.items():
            cells = []
            for column in columns:
                values = np.array([float(m[column]) for m in members])
                cells.append(f"{values.mean():.3f} +- {values.std():.3f}")
            print("| " + " | ".join(list(key) + cells) + " |")


SWEEPS = {  # name in results/identifiability/: (directory under runs/, sweep TOML)
    "sweep_mixture": ("identifiability", "sweeps/identifiability.toml"),
    "sweep_pure": ("identifiability-pure", "sweeps/identifiability_pure.toml"),
    # the mixture continued to widths 128, 256 (same frames, split, seeds and training)
    "sweep_mixture_wide": ("identifiability_wide", "sweeps/identifiability_wide.toml"),
}
POOLED = {"sweep_mixture": ("sweep_mixture_wide",)}  # its width figure also shows these
SUMMARY_COLUMNS = ("total_r2", "local_r2_aligned", "local_r2_gauge", "gauge_share_constants",
                   "aligned_share_transfer", "aligned_share_symmetric", "lpr_Ar", "lpr_Kr",
                   "best_iteration")


def _member_lpr(row: dict) -> float:
    """A member's mean LPR over the lpr_<element> columns its system has (as `aetk report`)."""
    values = [float(v) for k, v in row.items() if k.startswith("lpr_") and v not in ("", "nan")]
    return float(np.mean(values)) if values else float("nan")


def _copy_sweep(name: str, source: Path, toml: str) -> None:
    """The sweep's member table, assembled from its finished cells exactly as
    toolkit.studies.sweep.collect_results does (a killed sweep has no results.csv: rank 0
    writes it only after every rank is done), its config, and what ran or not."""
    import shutil

    from toolkit.data import atomic_write_text
    from toolkit.studies.sweep import cell_id, result_columns, stored_config
    from toolkit.tables import read_table, write_table

    config = stored_config(source)
    columns = result_columns(config.spec)
    rows, finished, missing = [], [], []
    for cell in config.cells():
        path = source / "cells" / f"{cell_id(*cell)}.csv"
        if path.is_file():
            rows += read_table(path, texts=columns)  # copied as written, unparsed
            finished.append(cell_id(*cell))
        else:
            missing.append(cell_id(*cell))
    if not rows:
        print(f"{source}: no finished cells; {name}.csv left as it is")
        return
    write_table(RESULTS / f"{name}.csv", rows, columns)
    shutil.copy(source / "config.json", RESULTS / f"{name}.config.json")
    training = _training_rows(source, finished)
    if training:
        write_table(RESULTS / f"{name}_training.csv", training, list(training[0]))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    command = f"mpirun -np 2 aetk sweep --config {toml} --out runs/{source.name}"
    meta = {"sweep": name, "source": f"runs/{source.name}", "config": toml,
            "command": command, "finished_cells": finished, "missing_cells": missing,
            "complete": not missing,
            "resume": command + " (finished cells are kept)" if missing else None,
            "copied_by": "python scripts/identifiability_study.py sweeps",
            "copied_at_commit": commit, "copied": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(meta, indent=1) + "\n")
    print(f"wrote {RESULTS / name}.csv ({len(rows)} rows from {len(finished)} of "
          f"{len(finished) + len(missing)} cells)")


def _training_rows(source: Path, cells: list[str]) -> list[dict]:
    """Per member, from the cells' scores along training (cells/*.monitor.json, test frames
    every monitor_every L-BFGS iterations): the scores at the record nearest the iteration
    early stopping chose, and at the record where the aligned local R2 peaked."""
    out = []
    for name in cells:
        path = source / "cells" / f"{name}.monitor.json"
        if not path.is_file():
            continue
        data = json.loads(path.read_text())
        system, width = name.split("_")[0], int(name.rsplit("_w", 1)[1])
        iterations = [r["iteration"] for r in data["records"]]
        for m, seed in enumerate(data["seeds"]):
            scores = [r["members"][m] for r in data["records"]]
            best = data["best_iteration"][m]
            at = min(range(len(iterations)), key=lambda k: abs(iterations[k] - best))
            peak = max(range(len(iterations)), key=lambda k: scores[k]["local_r2_aligned"])
            out.append({"system": system, "width": width, "seed": seed,
                        "best_iteration": best, "record_nearest_best": iterations[at],
                        "last_record": iterations[-1],
                        "aligned_at_best": scores[at]["local_r2_aligned"],
                        "gauge_at_best": scores[at]["local_r2_gauge"],
                        "aligned_share_transfer_at_best": scores[at]["aligned_share_transfer"],
                        "aligned_peak": scores[peak]["local_r2_aligned"],
                        "aligned_peak_record": iterations[peak],
                        "gauge_at_aligned_peak": scores[peak]["local_r2_gauge"],
                        "aligned_share_transfer_at_aligned_peak":
                            scores[peak]["aligned_share_transfer"],
                        "gauge_max": max(s["local_r2_gauge"] for s in scores)})
    return out


def _summary_rows(name: str) -> list[dict]:
    """Per (system, width) of the sweep's config: seeds present, mean and sd over seeds of
    SUMMARY_COLUMNS and the Spearman rank correlation of mean LPR with local R2 over those
    members; then per system the same correlation over all its members (width "all").
    Cells of the config that did not run are rows with n_seeds 0."""
    from scipy.stats import spearmanr

    rows = list(csv.DictReader(open(RESULTS / f"{name}.csv")))
    config = json.loads((RESULTS / f"{name}.config.json").read_text())
    out = []

    def rho(members, metric):  # empty (None) where it cannot be computed
        if len(members) < 3:
            return None
        return float(spearmanr([_member_lpr(m) for m in members],
                               [float(m[metric]) for m in members]).statistic)

    for system in config["systems"]:
        ran = [r for r in rows if r["system"] == system]
        for width in config["widths"]:
            members = [r for r in ran if int(r["width"]) == width]
            row = {"sweep": name, "system": system, "width": width, "n_seeds": len(members)}
            for column in SUMMARY_COLUMNS:
                values = np.array([float(m[column]) for m in members])
                row[f"{column}_mean"] = float(values.mean()) if len(values) else None
                row[f"{column}_sd"] = float(values.std()) if len(values) else None
            for metric in ("local_r2_aligned", "local_r2_gauge"):
                row[f"spearman_lpr_{metric}"] = rho(members, metric)
            out.append(row)
        row = {"sweep": name, "system": system, "width": "all", "n_seeds": len(ran)}
        for metric in ("local_r2_aligned", "local_r2_gauge"):
            row[f"spearman_lpr_{metric}"] = rho(ran, metric)
        out.append(row)
    return out


TRAINING_COLUMNS = {  # <name>_training.csv column: its heading in the docs
    "aligned_peak": "aligned R2 at its peak", "aligned_peak_record": "peak at iteration",
    "gauge_at_aligned_peak": "gauge-projected R2 there",
    "aligned_share_transfer_at_aligned_peak": "transfer share there",
    "aligned_at_best": "aligned R2 at stop", "gauge_at_best": "gauge-projected R2 at stop",
    "aligned_share_transfer_at_best": "transfer share at stop"}


def _training_markdown(name: str, rows: list[dict]) -> str:
    """Mean +- sd over seeds of <name>_training.csv, per system and width."""
    lines = [f"along training ({name}, results/identifiability/{name}_training.csv)", "",
             "| system | width | " + " | ".join(TRAINING_COLUMNS.values()) + " |",
             "|" + "---|" * (len(TRAINING_COLUMNS) + 2)]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["system"], int(row["width"])), []).append(row)
    for (system, width), members in sorted(groups.items()):
        cells = []
        for column in TRAINING_COLUMNS:
            values = np.array([float(m[column]) for m in members])
            fmt = ".0f" if column.endswith("record") else ".3f"
            cells.append(f"{values.mean():{fmt}} +- {values.std():{fmt}}")
        lines.append(f"| {system} | {width} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _sig3(x: float) -> str:
    """Three significant figures without exponent below 10^4 (22.0, 8.87, 284, 6.24e+07)."""
    if abs(x) >= 1e4:
        return f"{x:.2e}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:#.3g}"


FIGURES = {  # sweep: {figure of toolkit.plots (as `aetk report` names it): docs name}
    "sweep_mixture": {"gauge_local_r2_tanh": "mixture_gauge_local_r2",
                      "lpr_vs_local_r2_aligned": "mixture_lpr_vs_local_r2_aligned",
                      "lpr_vs_local_r2_gauge": "mixture_lpr_vs_local_r2_gauge",
                      "local_r2_along_training_ArKr": "mixture_local_r2_along_training"},
    "sweep_pure": {"gauge_local_r2_tanh": "pure_gauge_local_r2",
                   "lpr_vs_local_r2_aligned": "pure_lpr_vs_local_r2_aligned"},
    "sweep_mixture_wide": {"local_r2_along_training_ArKr": "mixture_wide_local_r2_along_training"},
}


def _figures(name: str, source: Path, target: Path) -> None:
    """`aetk report`'s identifiability figures of one sweep, drawn from the committed member
    table (a killed sweep has no results.csv for `aetk report` to read; the score against
    width also from the tables of its POOLED continuations) and, for the scores along
    training, the run's cells/*.monitor.json; PNGs copied to
    ``target/identifiability_<FIGURES name>.png``."""
    import shutil
    import tempfile

    from toolkit.plots import gauge_figure, rigidity_figure, training_figure
    from toolkit.studies.sweep import read_results

    rows = read_results(RESULTS / f"{name}.csv")
    pooled = rows + [row for other in POOLED.get(name, ())
                     if (RESULTS / f"{other}.csv").is_file()
                     for row in read_results(RESULTS / f"{other}.csv")]
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = gauge_figure(pooled, tmp)
        paths += rigidity_figure(rows, tmp, "local_r2_aligned")
        paths += rigidity_figure(rows, tmp, "local_r2_gauge")
        if (source / "cells").is_dir():
            for system in sorted({r["system"] for r in rows}):
                paths += training_figure(source, tmp, system)
        drawn = {p.stem: p for p in paths if p.suffix == ".png"}
        for stem, docs_name in FIGURES[name].items():
            if stem not in drawn:
                print(f"{name}: no figure {stem} (nothing to draw it from)")
                continue
            shutil.copy(drawn[stem], target / f"identifiability_{docs_name}.png")
            print(f"wrote {target / f'identifiability_{docs_name}.png'}")


SUMMARY_TABLE_COLUMNS = ["sweep", "system", "width", "n_seeds"] + [
    f"{c}_{s}" for c in SUMMARY_COLUMNS for s in ("mean", "sd")] + [
    "spearman_lpr_local_r2_aligned", "spearman_lpr_local_r2_gauge"]


def summary_rows() -> list[dict]:
    """sweep_summary.csv's rows, from the committed member tables of SWEEPS."""
    return [row for name in SWEEPS if (RESULTS / f"{name}.csv").is_file()
            for row in _summary_rows(name)]


def summary_markdown(summary: list[dict]) -> str:
    """The tables of docs/identifiability.md section 6, per sweep: scores and LPR per width
    (from ``summary``), scores along training (<name>_training.csv), and the widths that did
    not run with the command that resumes them."""
    from toolkit.species import system_composition

    def pm(row, column, fmt=".3f"):
        mean, sd = row[column + "_mean"], row[column + "_sd"]
        if mean != mean:  # NaN: the column does not apply (LPR of the absent species)
            return "-"
        if fmt == "lpr":
            return f"{_sig3(mean)} +- {_sig3(sd)}"
        return f"{mean:{fmt}} +- {sd:{fmt}}"

    def rho(value):
        return "" if value is None or value != value else f"{value:+.2f}"

    out = []
    for name in SWEEPS:
        rows = [r for r in summary if r["sweep"] == name]
        if not rows:
            continue
        lines = [f"scores ({name}, results/identifiability/sweep_summary.csv)", "",
                 "| system | width | seeds | total R2 | aligned local R2 | gauge-projected "
                 "local R2 | share constants | transfer share of the aligned error | "
                 "symmetric-control share of the aligned error |", "|" + "---|" * 9]
        for row in rows:
            if row["width"] == "all":
                continue
            if row["n_seeds"] == 0:
                lines.append(f"| {row['system']} | {row['width']} | 0 (not run) |" + " |" * 6)
                continue
            mixture = len(system_composition(row["system"])) > 1
            shares = [pm(row, c) if mixture else "n/a (no cross pairs)"
                      for c in ("aligned_share_transfer", "aligned_share_symmetric")]
            lines.append(
                f"| {row['system']} | {row['width']} | {row['n_seeds']} | "
                f"{pm(row, 'total_r2', '.4f')} | {pm(row, 'local_r2_aligned')} | "
                f"{pm(row, 'local_r2_gauge', '.4f')} | {pm(row, 'gauge_share_constants')} | "
                f"{shares[0]} | {shares[1]} |")
        lines += ["", f"local prediction rigidity ({name}, results/identifiability/"
                  "sweep_summary.csv; Spearman over the members of the row)", "",
                  "| system | width | members | mean LPR Ar | mean LPR Kr | Spearman(LPR, "
                  "aligned local R2) | Spearman(LPR, gauge-projected local R2) |",
                  "|" + "---|" * 7]
        for row in rows:
            if row["width"] != "all" and row["n_seeds"] == 0:
                lines.append(f"| {row['system']} | {row['width']} | 0 (not run) |" + " |" * 4)
                continue
            lpr = (["", ""] if row["width"] == "all"
                   else [pm(row, c, "lpr") for c in ("lpr_Ar", "lpr_Kr")])
            lines.append(f"| {row['system']} | {row['width']} | {row['n_seeds']} | {lpr[0]} | "
                         f"{lpr[1]} | {rho(row['spearman_lpr_local_r2_aligned'])} | "
                         f"{rho(row['spearman_lpr_local_r2_gauge'])} |")
        training_path = RESULTS / f"{name}_training.csv"
        if training_path.is_file():
            lines += ["", _training_markdown(name, list(csv.DictReader(open(training_path))))]
        missing = [f"{r['system']} w{r['width']}" for r in rows
                   if r["width"] != "all" and r["n_seeds"] == 0]
        if missing:
            run, toml = SWEEPS[name]
            lines += ["", f"{name}: NOT RUN: {', '.join(missing)}; resume with `mpirun -np 2 "
                      f"aetk sweep --config {toml} --out runs/{run}` (finished cells are kept)"]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def sweeps(runs: Path, figures: Path | None = None) -> None:
    """The identifiability sweeps (runs/identifiability*, made by the commands in
    sweeps/identifiability*.toml): copy each one's member table, assembled from its finished
    cells, with its config into results/identifiability/<name>.csv, .config.json, .json
    (finished and missing cells, the resume command); then write sweep_summary.csv (per
    width: mean +- sd over seeds, Spearman of mean LPR with local R2) from the committed
    tables and print it as markdown, saying which widths did not run."""
    from toolkit.tables import write_table

    for name, (run, toml) in SWEEPS.items():
        source = runs / run
        if (source / "config.json").is_file():
            _copy_sweep(name, source, toml)
        else:
            print(f"{source}: no sweep here; summarising the committed {name}.csv")
    if figures is not None:  # after every copy: a width figure pools its continuations
        for name, (run, _) in SWEEPS.items():
            if (RESULTS / f"{name}.csv").is_file():
                _figures(name, runs / run, figures)
    summary = summary_rows()
    if not summary:
        print("no sweep tables in results/identifiability/")
        return
    write_table(RESULTS / "sweep_summary.csv", summary, SUMMARY_TABLE_COLUMNS)
    print(f"wrote {RESULTS / 'sweep_summary.csv'}")
    print("\n" + summary_markdown(summary))


STUDIES = {"compositions": compositions, "decay": decay, "teachers": teachers, "dft": dft}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=[*STUDIES, "all", "tables", "sweeps"])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs",
                        help="where the sweep directories are (sweeps; default runs/)")
    parser.add_argument("--figures", type=Path, default=None,
                        help="sweeps: also draw the identifiability figures into this folder "
                        "(docs/figures)")
    args = parser.parse_args()
    if args.study in ("tables", "sweeps"):
        RESULTS.mkdir(parents=True, exist_ok=True)
        if args.study == "tables":
            tables()
        else:
            sweeps(args.runs.resolve(), args.figures)
        return
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, study in STUDIES.items():
        if args.study in (name, "all"):
            start = time.time()
            study()
            print(f"{name}: {time.time() - start:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
