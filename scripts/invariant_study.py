"""The invariant-point study of docs/invariant_points.md: Yoo et al. (2019) with our tools.

    nice -n 5 python scripts/invariant_study.py all --out runs/invariant

Stages, in order (``all`` runs them all; each keeps its outputs and skips what exists, so a
killed run resumes):

- ``data``: Stillinger-Weber Si frames (64 atoms; `toolkit.reference.lammps_reference`) and
  LJ Ar frames (108 atoms): a poorly chosen training set (one liquid, one density and
  temperature), a diverse one (crystal, liquid, amorphous / several densities), held-out
  test sets per phase;
- ``ceilings``: the representability ceiling of SW local energies for Si radii 1.31-1.72 A
  (the choice of the default Si radius);
- ``train``: tanh networks (widths 4 and 16; seeds 0-2) trained on totals of each
  training set, also with invariant anchors; invariant errors and local R2 recorded along
  training (`InvariantMonitor`); scores on every test set and at every invariant point;
- ``sweeps``: `aetk sweep` with an ``[invariant]`` table (Ar, Kr, ArKr at the paper's
  liquids; Si on its liquid-only set): Spearman rank correlation between invariant-point
  error and local R2 across members;
- ``cli``: the same through the command line: ``aetk fit`` (tanh 16) on the Si liquid, the
  Si diverse set and the Ar liquid, then ``aetk invariant`` on each (LAMMPS evaluation):
  ``runs/invariant/invariant/NAME/invariant.csv`` and ``docs/figures/invariant_NAME.png``;
- ``report``: ``docs/invariant_points.json`` (every number the doc quotes), the figures
  ``docs/figures/invariant_*.png`` and ``runs/invariant/tables.md`` (the doc's tables,
  rendered from the JSON by :func:`tables_markdown`). It trains nothing and reports what
  the other stages left: a case, sweep cell or command-line run that has not run is listed
  under ``missing`` (with the command that finishes it; ``complete`` is false), and the
  rank correlations of an unfinished sweep use its finished cells only.

Everything runs serially on one core (torch threads 1). Training dominates: each case at
each width is one training run of minutes to tens of minutes (``train.log`` in the output
folder records them), and the sweeps train 24 more cells of 5 seeds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from toolkit.data import atomic_write_text, read_frames, write_frames  # noqa: E402
from toolkit.descriptor_spec import DescriptorSpec  # noqa: E402
from toolkit.studies.invariant import NEAR_RATIO  # noqa: E402

SI_SPEC = DescriptorSpec(elements=("Si",))  # default Si radius 1.45 A: cutoff 4.205 A
AR_SPEC = DescriptorSpec()  # the toolkit default (Ar, Kr)
WIDTHS = (4, 16)
SEEDS = (0, 1, 2)
MONITOR_EVERY = 5
SI_NN_RANGE = (2.15, 2.60)  # A: nearest-neighbour distances of the Si data, 1st-99th pct
AR_NN_RANGE = (3.25, 3.90)  # A: the same for the Ar data
STRUCTURES = ("fcc", "hcp", "bcc", "sc", "diamond", "isolated")


# -- data ------------------------------------------------------------------------------------
def _lammps_runs(path: Path, runs: list[dict], reference: str, system: str) -> None:
    from toolkit.reference.lammps_reference import LammpsRun, generate_frames

    if path.is_file():
        return
    frames = []
    for seed, settings in enumerate(runs, start=1):
        settings = {"seed": seed, **settings}
        frames += generate_frames(LammpsRun(reference, system, **settings), progress=False)
    write_frames(path, frames)


def stage_data(out: Path) -> None:
    from toolkit.reference.classical import ClassicalRun, generate_frames, pair_setup

    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    si = {"natoms": 64, "every": 100}  # 0.1 ps between frames
    liquid = {"phase": "liquid", "temperature": 2500.0, "density": 2.50}
    # the poorly chosen set: one liquid at one density and temperature
    _lammps_runs(data / "si-liquid.extxyz", [{**si, **liquid, "n_frames": 1000}],
                 "lammps:si-sw", "Si")
    # the diverse set, same size: the same liquid plus others, crystals, an amorphous solid
    diverse = [{**liquid, "n_frames": 200},
               {"phase": "liquid", "temperature": 3500.0, "density": 2.35, "n_frames": 125},
               {"phase": "liquid", "temperature": 2000.0, "density": 2.65, "n_frames": 125},
               {"phase": "crystal", "temperature": 300.0, "n_frames": 100},
               {"phase": "crystal", "temperature": 1200.0, "n_frames": 100},
               {"phase": "crystal", "temperature": 900.0, "lattice_constant": 5.30,
                "n_frames": 100},
               {"phase": "crystal", "temperature": 900.0, "lattice_constant": 5.58,
                "n_frames": 100},
               {"phase": "amorphous", "temperature": 600.0, "density": 2.30, "n_frames": 150}]
    _lammps_runs(data / "si-diverse.extxyz", [{**si, **r} for r in diverse], "lammps:si-sw",
                 "Si")
    # liquids only, at ten state points: does density/temperature variation alone help?
    states = [(1800, 2.55), (2200, 2.45), (2500, 2.5), (2500, 2.3), (2500, 2.7), (3000, 2.4),
              (3000, 2.6), (3500, 2.35), (4000, 2.5), (2000, 2.65)]
    _lammps_runs(data / "si-liquids.extxyz",
                 [{**si, "phase": "liquid", "temperature": float(t), "density": rho,
                   "n_frames": 100} for t, rho in states], "lammps:si-sw", "Si")
    tests = {"liquid": {**liquid}, "crystal": {"phase": "crystal", "temperature": 900.0},
             "amorphous": {"phase": "amorphous", "temperature": 600.0, "density": 2.30}}
    for name, settings in tests.items():
        _lammps_runs(data / f"si-test-{name}.extxyz",
                     [{**si, **settings, "n_frames": 100, "seed": 101}], "lammps:si-sw", "Si")

    # Ar: the toolkit's default liquid (LJ, 120 K, 1.16 g/cm^3) is the poorly chosen set;
    # the same LJ written as a LAMMPS reference file samples other densities and a crystal
    if not (data / "ar-liquid.extxyz").is_file():
        write_frames(data / "ar-liquid.extxyz",
                     generate_frames(ClassicalRun("Ar", "lj", n_frames=300, seed=1),
                                     progress=False))
    reference = data / "ar-lj.lmp"
    atomic_write_text(reference, "# the toolkit's LJ reference for Ar (aetk generate "
                      "--reference lj) as a LAMMPS reference file\n# elements: Ar\n"
                      + pair_setup(["Ar"], "lj") + "\n")
    ar = {"natoms": 108, "every": 100, "timestep": 0.002}
    ar_diverse = [{"phase": "liquid", "temperature": 120.0, "density": 1.16, "n_frames": 100},
                  {"phase": "liquid", "temperature": 150.0, "density": 0.95, "n_frames": 60},
                  {"phase": "liquid", "temperature": 100.0, "density": 1.35, "n_frames": 60},
                  {"phase": "crystal", "temperature": 40.0, "lattice": "fcc",
                   "lattice_constant": 5.30, "n_frames": 40},
                  {"phase": "crystal", "temperature": 60.0, "lattice": "fcc",
                   "lattice_constant": 5.45, "n_frames": 40}]
    _lammps_runs(data / "ar-diverse.extxyz", [{**ar, **r} for r in ar_diverse],
                 f"lammps:{reference}", "Ar")
    if not (data / "ar-test-liquid.extxyz").is_file():
        write_frames(data / "ar-test-liquid.extxyz",
                     generate_frames(ClassicalRun("Ar", "lj", n_frames=60, seed=11),
                                     progress=False))
    _lammps_runs(data / "ar-test-crystal.extxyz",
                 [{**ar, "phase": "crystal", "temperature": 50.0, "lattice": "fcc",
                   "lattice_constant": 5.38, "n_frames": 40, "seed": 101}],
                 f"lammps:{reference}", "Ar")


# -- ceilings (the Si radius) ----------------------------------------------------------------
def stage_ceilings(out: Path) -> None:
    from toolkit.studies.ceiling import representability_ceiling

    path = out / "ceilings.json"
    if path.is_file():
        return
    frames = read_frames(out / "data" / "si-diverse.extxyz")
    results = []
    for radius in (1.31, 1.45, 1.55, 1.72):
        spec = DescriptorSpec(elements=("Si",), radii=(radius,))
        result = representability_ceiling(frames, spec, models=("linear", "quadratic",
                                                                 "network"))
        results.append({"radius": radius, "cutoff": spec.cutoff,
                        **{k: {"r2": v["r2"], "rmse": v["rmse"]}
                           for k, v in result["models"].items()}})
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")


# -- training ---------------------------------------------------------------------------------
def _points(system: str, spec: DescriptorSpec, out: Path):
    """Invariant points on a fixed grid (the same for every training set of a system)."""
    import pickle

    from toolkit.reference.lammps_reference import any_reference
    from toolkit.studies.invariant import invariant_points

    cache = out / f"points-{system}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    low, high = SI_NN_RANGE if system == "Si" else AR_NN_RANGE
    reference = "lammps:si-sw" if system == "Si" else "lj"
    points = invariant_points([system], spec, any_reference(reference),
                              {system: np.linspace(low, high, 5)}, STRUCTURES)
    cache.write_bytes(pickle.dumps(points))
    return points


def _test_sets(system: str, spec: DescriptorSpec, out: Path) -> dict:
    from toolkit.descriptors import compute_descriptors

    names = ("liquid", "crystal", "amorphous") if system == "Si" else ("liquid", "crystal")
    tests = {}
    for name in names:
        frames = read_frames(out / "data" / f"{system.lower()}-test-{name}.extxyz")
        descriptors = compute_descriptors(frames, spec, progress=False)
        tests[name] = (descriptors, np.concatenate([a.arrays["local_energy"] for a in frames]),
                       np.array([a.info["energy"] for a in frames]))
    return tests


def _scores(model, test) -> dict:
    from toolkit.metrics import r2, rmse

    descriptors, local, totals = test
    predicted = model.atomic_energies(descriptors.values, descriptors.species_index)
    n = np.bincount(descriptors.frame_index)
    sums = np.bincount(descriptors.frame_index, weights=predicted)
    return {"local_r2": r2(local, predicted), "local_rmse": rmse(local, predicted),
            "local_offset": float(np.mean(predicted - local)),
            "total_rmse_per_atom": rmse(totals / n, sums / n),
            "total_r2": r2(totals, sums)}


def _anchors(points, locator_rows, max_ratio: float) -> list:
    return [a for a, r in zip(points.frames, locator_rows, strict=True)
            if r["structure"] == "isolated" or r["nn_ratio"] <= max_ratio]


def train_case(system: str, training: str, out: Path, anchor: dict | None = None) -> Path:
    """Train every width x seed on one training set; scores, invariant errors, monitor."""
    import copy

    import torch

    from toolkit.models.fitting import load_dataset, with_anchors
    from toolkit.models.networks import Architecture
    from toolkit.models.training import TrainingSettings, fit_normalisation, train_ensemble
    from toolkit.studies.invariant import DescriptorLocator, InvariantMonitor, summary_scores

    name = f"{system}-{training}" + (f"-anchored-w{anchor['weight']:g}-r{anchor['max_ratio']:g}"
                                     if anchor else "")
    path = out / "cases" / f"{name}.json"
    if path.is_file():
        return path
    torch.set_num_threads(1)
    spec = SI_SPEC if system == "Si" else AR_SPEC
    data = out / "data" / f"{system.lower()}-{training}.extxyz"
    dataset = load_dataset(data, spec, progress=False)
    train = list(dataset.split.train)
    points = copy.deepcopy(_points(system, spec, out))
    points.locate(DescriptorLocator.from_descriptors(dataset.descriptors.select_frames(train)))
    tests = _test_sets(system, spec, out)
    normalisation = weights = None
    anchors = []
    if anchor:
        normalisation = fit_normalisation(dataset.descriptors.select_frames(train),
                                          dataset.energies[train])
        anchors = _anchors(points, points.rows, anchor["max_ratio"])
        n_data = len(dataset.frames)
        dataset = with_anchors(dataset, anchors, spec)
        weights = np.where(np.arange(len(dataset.frames)) < n_data, 1.0, anchor["weight"])
    settings = TrainingSettings(max_iterations=1000, patience=50)
    result = {"system": system, "training": training, "anchor": anchor,
              "n_anchors": len(anchors), "data": str(data.relative_to(out)),
              "points": points.rows, "members": []}
    for width in WIDTHS:
        monitor = InvariantMonitor(points, every=MONITOR_EVERY, test=tests["liquid"])
        started = time.perf_counter()
        ensemble = train_ensemble(Architecture((width,), "tanh"), dataset.descriptors,
                                  dataset.energies, dataset.split.train,
                                  dataset.split.validation, seeds=list(SEEDS),
                                  settings=settings, progress=False,
                                  normalisation=normalisation, monitor=monitor,
                                  frame_weights=weights)
        for m, seed in enumerate(SEEDS):
            model = ensemble.member(m)
            errors = points.errors(model)
            own = _scores(model, (dataset.descriptors.select_frames(
                list(dataset.split.test)), np.concatenate(
                [dataset.frames[i].arrays["local_energy"] for i in dataset.split.test]),
                dataset.energies[dataset.split.test]))
            result["members"].append({
                "width": width, "seed": seed, "best_iteration": ensemble.iterations[m],
                "own_test": own, "tests": {k: _scores(model, v) for k, v in tests.items()},
                "invariant": summary_scores(points.rows, errors),
                "invariant_errors": errors.tolist(),
                "monitor": [{k: v for k, v in r.items() if k != "member"}
                            for r in monitor.records if r["member"] == m],
            })
        print(f"{name} w{width}: {time.perf_counter() - started:.0f} s", flush=True)
    atomic_write_text(path, json.dumps(result) + "\n")
    return path


ISOLATED = {"weight": 1.0, "max_ratio": 0.0}  # anchor: the isolated atom only
NEAR = {"weight": 0.1, "max_ratio": 3.0}  # anchor: isolated atom + points with nn ratio <= 3
CASES = [("Si", "liquid", None), ("Si", "liquids", None), ("Si", "diverse", None),
         ("Si", "liquid", ISOLATED), ("Si", "liquid", NEAR), ("Si", "diverse", ISOLATED),
         ("Ar", "liquid", None), ("Ar", "diverse", None), ("Ar", "liquid", ISOLATED),
         ("Ar", "liquid", NEAR)]


def stage_train(out: Path) -> None:
    for system, training, anchor in CASES:
        train_case(system, training, out, anchor)


def stage_sweeps(out: Path) -> None:
    """The two sweeps with [invariant] columns, then rank correlations."""
    from toolkit.studies.invariant import INVARIANT_COLUMNS, rank_correlation
    from toolkit.studies.sweep import read_config, read_results, run_sweep

    correlations = {}
    for name in ("invariant", "invariant_si"):
        config = read_config(ROOT / "sweeps" / f"{name}.toml")
        directory = out / f"sweep-{name}"
        run_sweep(config, directory, progress=False)
        rows = read_results(directory)
        correlations[name] = {
            column: rank_correlation(rows, column, "local_r2_aligned")
            for column in INVARIANT_COLUMNS + ["total_per_atom_rmse"]}
    atomic_write_text(out / "correlations.json", json.dumps(correlations, indent=1) + "\n")


# -- the same through the command line --------------------------------------------------------
CLI_RUNS = [  # (name, training data, spec)
    ("si-liquid-w16", "si-liquid", "specs/si.toml"),
    ("si-diverse-w16", "si-diverse", "specs/si.toml"),
    ("ar-liquid-w16", "ar-liquid", None),
]


def stage_cli(out: Path) -> None:
    """`aetk fit` + `aetk invariant` on two Si training sets and the Ar liquid: the tables
    and figures a user gets, evaluated through LAMMPS."""
    import shutil
    import subprocess

    for name, data, spec in CLI_RUNS:
        potential = out / "potentials" / name
        frames = out / "data" / f"{data}.extxyz"
        spec_args = ["--spec", str(ROOT / spec)] if spec else []
        if not (potential / "meta.json").is_file():
            subprocess.run([sys.executable, "-m", "toolkit.cli", "fit", "--data", str(frames),
                            "--hidden", "16", "--seed", "0", *spec_args, "--out",
                            str(potential), "--quiet"], check=True, cwd=ROOT)
        target = out / "invariant" / name
        if not (target / "invariant.csv").is_file():
            subprocess.run([sys.executable, "-m", "toolkit.cli", "invariant", "--potential",
                            str(potential), "--data", str(frames), "--out", str(target),
                            "--quiet"], check=True, cwd=ROOT)
        shutil.copyfile(target / "invariant.png",
                        ROOT / "docs" / "figures" / f"invariant_{name}.png")


# -- report -----------------------------------------------------------------------------------
def _case_name(system: str, training: str, anchor: dict | None) -> str:
    return f"{system}-{training}" + (f"-anchored-w{anchor['weight']:g}-r{anchor['max_ratio']:g}"
                                     if anchor else "")


def _label(training: str, anchor: dict | None) -> str:
    if anchor is None:
        return training
    return training + (" + isolated atom" if anchor["max_ratio"] == 0 else
                       f" + points near the data (w {anchor['weight']:g})")


def _mean_std(values) -> list[float]:
    values = np.asarray(values, dtype=float)
    return [float(np.mean(values)), float(np.std(values))]


def _summarise_case(result: dict) -> dict:
    widths = sorted({m["width"] for m in result["members"]})
    out = {"n_anchors": result["n_anchors"], "widths": {}}
    for width in widths:
        members = [m for m in result["members"] if m["width"] == width]
        entry = {"own_test_total_rmse_per_atom": _mean_std(
                     [m["own_test"]["total_rmse_per_atom"] for m in members]),
                 "best_iteration": _mean_std([m["best_iteration"] for m in members])}
        for test in members[0]["tests"]:
            for key in ("local_r2", "local_rmse", "local_offset", "total_rmse_per_atom"):
                entry[f"{test}_{key}"] = _mean_std([m["tests"][test][key] for m in members])
        for key in members[0]["invariant"]:
            entry[key] = _mean_std([m["invariant"][key] for m in members])
        far = _far_mask(result["points"])
        entry["invariant_far_rmse"] = _mean_std(
            [np.sqrt(np.mean(np.asarray(m["invariant_errors"])[far] ** 2)) if far.any()
             else np.nan for m in members])
        entry["point_errors_mean"] = np.mean([m["invariant_errors"] for m in members],
                                             axis=0).tolist()
        entry["point_errors_std"] = np.std([m["invariant_errors"] for m in members],
                                           axis=0).tolist()
        out["widths"][str(width)] = entry
    out["points"] = [{k: r[k] for k in ("structure", "nn_distance", "reference", "nn_ratio")}
                     for r in result["points"]]
    ratio = np.array([r["nn_ratio"] for r in result["points"]])
    single = np.array([r["structure"] != "isolated" for r in result["points"]])
    out["n_points"] = {"inside": int(np.sum(single & (ratio <= 1))),
                       "near": int(np.sum(single & (ratio > 1) & (ratio <= NEAR_RATIO))),
                       "far": int(np.sum(single & (ratio > NEAR_RATIO)))}
    return out


def _far_mask(points: list[dict]) -> np.ndarray:
    """Single-element points (isolated atom excluded) farther than NEAR_RATIO from the data."""
    return np.array([r["structure"] != "isolated" and r["nn_ratio"] > NEAR_RATIO
                     for r in points])


def _pm(entry: dict, key: str, scale: float = 1.0, digits: int = 3) -> str:
    """Mean ± std over seeds; n/a where there is no such number (null in the JSON)."""
    mean, std = entry[key]
    if mean is None:
        return "n/a"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def _table(summary: dict, system: str, width: str) -> str:
    tests = ("liquid", "crystal", "amorphous") if system == "Si" else ("liquid", "crystal")
    head = ("| training set | own test totals (meV/atom) | "
            + " | ".join(f"{t}: local R2 / totals (meV/atom)" for t in tests)
            + " | isolated atom (meV) | RMSE (meV) at points with nn ratio <= 1 / <= 3 / > 3 |")
    lines = [head, "|" + "---|" * (4 + len(tests))]
    for case in summary.values():
        if case["system"] != system or width not in case["widths"]:
            continue
        e = case["widths"][width]
        cells = [case["label"], _pm(e, "own_test_total_rmse_per_atom", 1e3, 1)]
        cells += [f"{_pm(e, f'{t}_local_r2', 1, 2)} / "
                  f"{_pm(e, f'{t}_total_rmse_per_atom', 1e3, 1)}" for t in tests]
        cells += [_pm(e, "invariant_isolated_error", 1e3, 0),
                  " / ".join(_pm(e, k, 1e3, 0) for k in (
                      "invariant_inside_rmse", "invariant_near_rmse", "invariant_far_rmse"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _point_table(summary: dict, system: str, width: str, names: list[str]) -> str:
    cases = [summary[n] for n in names]
    lines = ["| structure | nn distance (A) | E/N (eV) | "
             + " | ".join(f"{c['label']}: error (meV), nn ratio" for c in cases) + " |",
             "|" + "---|" * (3 + len(cases))]
    for k, point in enumerate(cases[0]["points"]):
        if point["structure"] in ("fcc", "hcp") and system == "Si":
            continue  # SW's close-packed points (E/N +1.8 to +40 eV here) are in the JSON
        distance = ("-" if point["structure"] == "isolated"
                    else f"{point['nn_distance']:.3f}")
        cells = [point["structure"], distance, f"{point['reference']:.4f}"]
        for case in cases:
            error = case["widths"][width]["point_errors_mean"][k]
            spread = case["widths"][width]["point_errors_std"][k]
            cells.append(f"{1e3 * error:+.0f} ± {1e3 * spread:.0f}, "
                         f"{case['points'][k]['nn_ratio']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _correlation_table(correlations: dict) -> str:
    """Spearman rank correlation of each column with local R2 (aligned), per system."""
    groups = sorted({g for v in correlations.values() for g in v} - {"all"}) + ["all"]
    lines = ["| column | " + " | ".join(groups) + " |", "|" + "---|" * (1 + len(groups))]
    for column, found in correlations.items():
        cells = [f"{found[g]['spearman']:+.2f} (p {found[g]['p_value']:.1g}, n {found[g]['n']})"
                 if g in found else "-" for g in groups]
        lines.append(f"| {column} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables_markdown(report: dict) -> str:
    """The doc's tables, rendered from the report (docs/invariant_points.json) alone."""
    summary = report["cases"]
    tables = []
    for system in ("Si", "Ar"):
        names = [n for n, c in summary.items() if c["system"] == system]
        if not names:
            continue
        for width in map(str, report["settings"]["widths"]):
            tables.append(f"### {system}, width {width}\n\n" + _table(summary, system, width))
        tables.append(f"### {system} points, width 16\n\n"
                      + _point_table(summary, system, "16", names))
    for name in ("invariant", "invariant_si"):
        found = report["correlations"].get(name, {})
        found = found.get("spearman_vs_local_r2_aligned", found)
        if found:
            tables.append(f"### Sweep {name}: rank correlation with local R2 (aligned)\n\n"
                          + _correlation_table(found))
    if report["missing"]:
        tables.append("### Not run\n\n" + "\n".join(
            f"- {m['what']}: `{m['command']}`" for m in report["missing"]))
    return "\n\n".join(tables) + "\n"


def _figure(results: dict, system: str, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for k, name in enumerate(names):
        result, colour = results[name], f"C{k}"
        label = _label(result["training"], result["anchor"])
        members = [m for m in result["members"] if m["width"] == 16]
        for m in members:
            iterations = [r["iteration"] for r in m["monitor"]]
            style = {"color": colour, "lw": 1, "alpha": 0.8,
                     "label": label if m["seed"] == members[0]["seed"] else None}
            axes[0].plot(iterations, [r["local_r2"] for r in m["monitor"]], **style)
            axes[1].plot(iterations, [1e3 * abs(r["invariant_isolated_error"])
                                      for r in m["monitor"]], **style)
            axes[2].plot(iterations, [1e3 * r["invariant_near_rmse"] for r in m["monitor"]],
                         **style)
    axes[0].set_ylabel("local R2, held-out liquid")
    axes[0].set_ylim(-1, 1)
    axes[1].set_ylabel("|error| at the isolated atom (meV)")
    axes[2].set_ylabel("RMSE at invariant points near the data (meV)")
    for ax in axes:
        ax.set_xlabel("L-BFGS iteration")
        ax.grid(alpha=0.3)
    for ax in axes[1:]:
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{system}: tanh, 16 hidden nodes, 3 seeds; trained on totals only",
                 fontsize=10)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _rank_figure(sweeps: dict, path: Path) -> None:
    """Invariant error near the data vs local R2 across the members of the finished cells of
    each sweep (``sweeps``: name -> (rows, finished cells, all cells))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, name, column in ((axes[0], "invariant", "invariant_near_rmse"),
                             (axes[1], "invariant_si", "invariant_near_rmse")):
        rows, done, total = sweeps[name]
        ax.set_title(f"sweep {name}: {done} of {total} cells finished", fontsize=9)
        if not rows:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            continue
        for k, system in enumerate(sorted({r["system"] for r in rows})):
            mine = [r for r in rows if r["system"] == system]
            ax.scatter([1e3 * r[column] for r in mine], [r["local_r2_aligned"] for r in mine],
                       s=12, color=f"C{k}", label=system)
        ax.set_xscale("log")
        ax.set_xlabel("RMSE at invariant points near the data (meV)")
        ax.set_ylabel("local R2 (aligned), held-out frames")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def _finite(value):
    """NaN and infinities as null, so the report is strict JSON."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _sweep_rows(out: Path, name: str) -> tuple[list[dict], list[str], list[str]]:
    """Rows of the finished cells of one sweep (nothing is trained), the finished and the
    missing cell ids; refuses cells trained under another config."""
    from toolkit.studies.sweep import (
        INT_COLUMNS,
        TEXT_COLUMNS,
        cell_id,
        read_config,
        refuse_changed_config,
    )
    from toolkit.tables import read_table

    config = read_config(ROOT / "sweeps" / f"{name}.toml")
    directory = out / f"sweep-{name}"
    rows, done, missing = [], [], []
    for cell in config.cells():
        path = directory / "cells" / f"{cell_id(*cell)}.csv"
        if path.is_file():
            rows += read_table(path, INT_COLUMNS, TEXT_COLUMNS)
            done.append(cell_id(*cell))
        else:
            missing.append(cell_id(*cell))
    if done:
        refuse_changed_config(config, directory)
    return rows, done, missing


def stage_report(out: Path) -> None:
    """The report of whatever has run: every number in it comes from a stage's outputs;
    ``missing`` lists what has not run and the command that finishes it."""
    from toolkit.studies.invariant import INVARIANT_COLUMNS, rank_correlation

    def command(stage: str) -> str:
        return f"nice -n 5 python scripts/invariant_study.py {stage} --out {out}"

    missing = []
    results = {}
    for system, training, anchor in CASES:
        name = _case_name(system, training, anchor)
        path = out / "cases" / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
        else:
            missing.append({"what": f"training case {name}", "stage": "train",
                            "command": command("train")})
    summary = {name: {"system": r["system"], "training": r["training"], "anchor": r["anchor"],
                      "label": _label(r["training"], r["anchor"]), **_summarise_case(r)}
               for name, r in results.items()}
    for case in summary.values():
        extra = sorted(set(map(int, case["widths"])) - set(WIDTHS))
        if extra:
            case["note"] = (f"also width(s) {extra}: members trained by an earlier version "
                            f"of this script (widths {list(WIDTHS)} now), same settings "
                            "otherwise")
    ceilings = None
    if (out / "ceilings.json").is_file():
        ceilings = json.loads((out / "ceilings.json").read_text())
    else:
        missing.append({"what": "representability ceilings of SW Si local energies "
                        "(radii 1.31-1.72 A)", "stage": "ceilings",
                        "command": command("ceilings")})
    sweeps = {}
    if (out / "correlations.json").is_file():
        correlations = {"complete": True,
                        **json.loads((out / "correlations.json").read_text())}
    else:
        correlations = {"complete": False}
    for name in ("invariant", "invariant_si"):
        rows, done, left = _sweep_rows(out, name)
        sweeps[name] = (rows, len(done), len(done) + len(left))
        if correlations["complete"]:
            continue
        correlations[name] = {
            "finished_cells": done, "missing_cells": left, "members": len(rows),
            "spearman_vs_local_r2_aligned": {
                column: rank_correlation(rows, column, "local_r2_aligned")
                for column in INVARIANT_COLUMNS + ["total_per_atom_rmse"]} if rows else {}}
        if left:
            missing.append({"what": f"sweep {name}: {len(left)} of {len(done) + len(left)} "
                            "cells not run (the report's rank correlations use the finished "
                            "cells only)",
                            "stage": "sweeps", "command": command("sweeps")})
    cli = {}
    for name, _, _ in CLI_RUNS:
        stored_path = out / "invariant" / name / "invariant.json"
        meta_path = out / "potentials" / name / "meta.json"
        if not (stored_path.is_file() and meta_path.is_file()):
            missing.append({"what": f"aetk fit + aetk invariant: {name}", "stage": "cli",
                            "command": command("cli")})
            continue
        stored = json.loads(stored_path.read_text())
        metrics = json.loads(meta_path.read_text())["test_metrics_pytorch"]
        cli[name] = {"scores": stored["scores"], "nn_grid": stored["nn_grid"],
                     "test_total_per_atom_rmse": metrics["total_per_atom_rmse"],
                     "test_local_r2": metrics["local"]["r2"]}
    report = {"command": "nice -n 5 python scripts/invariant_study.py all --out runs/invariant",
              "written_by": command("report"),
              "complete": not missing,
              "missing": missing,
              "settings": {"widths": list(WIDTHS), "seeds": list(SEEDS),
                           "si_nn_range": SI_NN_RANGE, "ar_nn_range": AR_NN_RANGE,
                           "near_ratio": NEAR_RATIO, "monitor_every": MONITOR_EVERY,
                           "si_spec": SI_SPEC.to_dict(), "ar_spec": AR_SPEC.to_dict()},
              "ceilings": ceilings,
              "cases": summary,
              "correlations": correlations,
              "cli": cli}
    atomic_write_text(ROOT / "docs" / "invariant_points.json",
                      json.dumps(_finite(report), indent=1, allow_nan=False) + "\n")
    figures = ROOT / "docs" / "figures"
    names = [_case_name(*c) for c in CASES if _case_name(*c) in results]
    si_names = [n for n in names if results[n]["system"] == "Si"]
    ar_names = [n for n in names if results[n]["system"] == "Ar"]
    if si_names:
        _figure(results, "Si (Stillinger-Weber)", si_names,
                figures / "invariant_si_training.png")
    if ar_names:
        _figure(results, "Ar (LJ)", ar_names, figures / "invariant_ar_training.png")
    _rank_figure(sweeps, figures / "invariant_rank.png")
    # rendered from the written JSON, so the doc's tables can be checked against it
    stored = json.loads((ROOT / "docs" / "invariant_points.json").read_text())
    atomic_write_text(out / "tables.md", tables_markdown(stored))
    for m in missing:
        print(f"missing: {m['what']} ({m['command']})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["data", "ceilings", "train", "sweeps", "cli",
                                          "report", "all"])
    parser.add_argument("--out", default="runs/invariant")
    args = parser.parse_args()
    out = Path(args.out)
    stages = {"data": stage_data, "ceilings": stage_ceilings, "train": stage_train,
              "sweeps": stage_sweeps, "cli": stage_cli, "report": stage_report}
    for name, stage in stages.items():
        if args.stage in (name, "all"):
            started = time.perf_counter()
            stage(out)
            print(f"stage {name}: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
