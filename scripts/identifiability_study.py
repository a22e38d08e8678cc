"""The measurements behind docs/identifiability.md that are not plain sweeps.

    .venv/bin/python scripts/identifiability_study.py compositions   # several Kr fractions
    .venv/bin/python scripts/identifiability_study.py decay          # weight decay, width
    .venv/bin/python scripts/identifiability_study.py teachers       # two teachers, one psi apart
    .venv/bin/python scripts/identifiability_study.py dft            # the DFT mixture
    .venv/bin/python scripts/identifiability_study.py all
    .venv/bin/python scripts/identifiability_study.py tables      # markdown of the results

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


STUDIES = {"compositions": compositions, "decay": decay, "teachers": teachers, "dft": dft}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=[*STUDIES, "all", "tables"])
    args = parser.parse_args()
    if args.study == "tables":
        tables()
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
