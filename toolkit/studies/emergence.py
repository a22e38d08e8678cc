"""Emergence experiments: descriptor spec search by ceiling, and the teacher-share map.

Four jobs (results under an output folder, e.g. ``runs/emergence``; the small outputs of the
documented runs are committed in ``results/emergence``, docs/emergence.md):

    aetk emergence search --out runs/emergence     # ceilings over 84 specs
    aetk emergence ceilings --out runs/emergence   # all three ceilings at three specs
    aetk emergence map --out runs/emergence        # local R2 vs width per share
    aetk emergence report --out runs/emergence --figures docs/figures

``search``: for Ar, Kr and ArKr, frames sampled by LJ + ATM MD are labelled with both
classical references (``lj`` relabels the same structures, so one descriptor computation
serves both); the linear and quadratic ceilings (:mod:`toolkit.studies.ceiling`) of every
spec of :func:`search_specs` go to ``search.csv``, one row per (system, reference, spec,
model). Its ``seconds`` column is the time from the start of that system's spec (the
descriptors included) to the row, so the rows of one spec repeat a growing value; the cost
of a spec is the largest one.

``map``: a tanh-16 teacher is fitted per atom to the LJ + ATM partition of independent Ar
frames; fresh Ar frames are labelled with share x teacher + (1 - share) x LJ + ATM
(:mod:`toolkit.studies.teacher`) for each share; per share, the ceilings of that partition and a
sweep of tanh students trained on totals (:mod:`toolkit.studies.sweep`) go to ``map/``.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from toolkit.data import atomic_write_text, read_frames, split_frames, write_frames
from toolkit.descriptors import DescriptorSpec, compute_descriptors
from toolkit.errors import AetkError
from toolkit.metrics import r2
from toolkit.models.training import TrainingSettings
from toolkit.reference.classical import ClassicalRun, evaluate_reference, generate_frames
from toolkit.studies.ceiling import (
    CeilingSettings,
    descriptor_ceiling,
    frames_local_energy,
    ridge_predictions,
)

SYSTEMS = ("Ar", "Kr", "ArKr")
REFERENCES = ("lj", "lj+atm")
SEARCH_COLUMNS = ["system", "reference", "twojmax", "rcutfac", "rfac0", "rmin0",
                  "n_descriptors", "model", "r2", "r2_Ar", "r2_Kr", "seconds"]
SHARES = (1.0, 0.5, 0.0)
# Students must converge for "does the partition emerge" to mean anything: the sweep
# default (patience 50 on 0.1 % gains) stopped width-8 students at total R2 0.975 (measured)
LONG_TRAINING = TrainingSettings(max_iterations=1500, patience=100, min_improvement=1e-4)
WIDE_TRAINING = TrainingSettings(max_iterations=250, patience=100, min_improvement=1e-4)


def spec_grid(twojmax: Sequence[int] = (4, 6, 8),
              rcutfac: Sequence[float] = (1.5, 1.6, 1.8, 2.0),
              rfac0: Sequence[float] = (0.99363, 0.9, 0.8),
              rmin0: Sequence[float] = (0.0, 1.0)) -> list[DescriptorSpec]:
    """Specs differing from the default only in these four numbers (radii, weights kept)."""
    return [DescriptorSpec(twojmax=t, rcutfac=c, rfac0=f, rmin0=m)
            for t, c, f, m in itertools.product(twojmax, rcutfac, rfac0, rmin0)]


def search_specs() -> list[DescriptorSpec]:
    """The specs ``aetk emergence search`` scores: :func:`spec_grid` (72), then rcutfac
    1.3, 1.4, 1.45 and 1.55 for each twojmax at the default rfac0 and rmin0 (12), because the
    grid's best sat at its edge (docs/emergence.md, section 2)."""
    refined = [DescriptorSpec(twojmax=t, rcutfac=c) for t in (4, 6, 8)
               for c in (1.3, 1.4, 1.45, 1.55)]
    return spec_grid() + refined


def sampled_frames(out: Path, system: str, n_frames: int, seed: int) -> list:
    """LJ + ATM frames of ``system``, generated once into ``out/data``."""
    path = out / "data" / f"{system}-ljatm-{n_frames}-s{seed}.extxyz"
    if not path.is_file():
        write_frames(path, generate_frames(ClassicalRun(system, "lj+atm", n_frames=n_frames,
                                                        seed=seed), progress=False))
    return read_frames(path)


# -- spec search ---------------------------------------------------------------------------------
def _spec_key(system: str, spec: DescriptorSpec) -> tuple:
    return (system, spec.twojmax, spec.rcutfac, spec.rfac0, spec.rmin0)


def spec_search(out: Path, specs: Sequence[DescriptorSpec], n_frames: int = 300,
                seed: int = 11, models: Sequence[str] = ("linear", "quadratic"),
                split_seed: int = 0, quadratic_max_descriptors: int = 30) -> Path:
    """Linear/quadratic ceilings of both references for every spec; resumable CSV.

    The quadratic fit is skipped above ``quadratic_max_descriptors`` components (twojmax
    8 gives 1,540 products: minutes per fit on a shared core, for a number no student of
    the sweep's size can use anyway).
    """
    table = out / "search.csv"
    rows = _read_csv(table)
    done = {(r["system"], int(r["twojmax"]), float(r["rcutfac"]), float(r["rfac0"]),
             float(r["rmin0"])) for r in rows}
    grid = CeilingSettings().ridge_grid
    for system in SYSTEMS:
        frames = sampled_frames(out, system, n_frames, seed)
        targets = np.stack([frames_local_energy(evaluate_reference(frames, "lj")),
                            frames_local_energy(frames)], axis=1)  # columns as REFERENCES
        split = split_frames(len(frames), split_seed)
        for spec in specs:
            if _spec_key(system, spec) in done:
                continue
            start = time.perf_counter()
            descriptors = compute_descriptors(frames, spec, progress=False)
            test = np.isin(descriptors.frame_index, split.test)
            species = descriptors.species_index[test]
            for model in models:
                if model == "quadratic" and spec.n_descriptors > quadratic_max_descriptors:
                    continue
                predicted, _ = ridge_predictions(model, descriptors, targets, split, grid)
                for k, reference in enumerate(REFERENCES):
                    row = {"system": system, "reference": reference, "twojmax": spec.twojmax,
                           "rcutfac": spec.rcutfac, "rfac0": spec.rfac0, "rmin0": spec.rmin0,
                           "n_descriptors": spec.n_descriptors, "model": model,
                           "r2": r2(targets[test, k], predicted[:, k]),
                           "seconds": round(time.perf_counter() - start, 2)}
                    for s, name in enumerate(spec.elements):
                        mask = species == s
                        row[f"r2_{name}"] = (r2(targets[test, k][mask], predicted[mask, k])
                                             if mask.any() else "")
                    rows.append(row)
            _write_csv(table, rows, SEARCH_COLUMNS)  # after every spec: a kill loses one
    return table


def default_ceilings(out: Path, n_frames: int = 300, seed: int = 11,
                     spec: DescriptorSpec | None = None) -> Path:
    """All three ceilings (linear, quadratic, network) of both references at one spec
    (a file of the same spec, frames and seed is kept, not recomputed)."""
    spec = spec or DescriptorSpec()
    path = out / f"ceilings-{spec.key[:8]}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if (kept.get("n_frames"), kept.get("seed")) == (n_frames, seed):
            return path
    results = {}
    for system in SYSTEMS:
        frames = sampled_frames(out, system, n_frames, seed)
        descriptors = compute_descriptors(frames, spec, progress=False)
        split = split_frames(len(frames), 0)
        for reference in REFERENCES:
            labelled = frames if reference == "lj+atm" else evaluate_reference(frames, "lj")
            results[f"{system}/{reference}"] = descriptor_ceiling(
                descriptors, frames_local_energy(labelled), split)
    atomic_write_text(path, json.dumps({"spec": spec.to_dict(), "n_frames": n_frames,
                                        "seed": seed, "ceilings": results}, indent=1) + "\n")
    return path


# -- the emergence map -----------------------------------------------------------------------------
def emergence_map(out: Path, shares: Sequence[float] = SHARES, n_frames: int = 300,
                  widths: Sequence[int] = (1, 8, 64), seeds: Sequence[int] = (0, 1),
                  wide: int | None = 500, wide_seeds: Sequence[int] = (0,),
                  wide_shares: Sequence[float] = (1.0, 0.0),
                  training: TrainingSettings = LONG_TRAINING,
                  wide_training: TrainingSettings = WIDE_TRAINING,
                  spec: DescriptorSpec | None = None) -> Path:
    """Teacher-share map on Ar: per share, ceilings and a width sweep of tanh students.

    The ``wide`` width (one hidden layer of 500 is slow on one core) runs last, for
    ``wide_shares`` only, with fewer seeds and iterations, in ``share*-wide``. ``spec``: the
    descriptor of teacher, ceilings and students (default: the toolkit's). A folder whose
    teacher exists goes on with the teacher's spec; asking for another spec there is
    refused (one folder per spec).
    """
    from toolkit.models.networks import Architecture
    from toolkit.models.potential import read_potential
    from toolkit.studies.teacher import label_with_teacher, write_teacher
    root = out / "map"
    teacher_dir = root / "teacher-ar-tanh16"
    if not (teacher_dir / "meta.json").is_file():
        write_teacher(sampled_frames(out, "Ar", n_frames, 11), teacher_dir,
                      Architecture((16,), "tanh"),
                      settings=TrainingSettings(max_iterations=1000, patience=50),
                      spec=spec or DescriptorSpec())
    teacher = read_potential(teacher_dir)
    if spec is not None and spec.key != teacher.spec.key:
        raise AetkError(f"{teacher_dir}: this map's teacher has another descriptor spec "
                        f"(rcutfac {teacher.spec.rcutfac}, twojmax {teacher.spec.twojmax}); "
                        "give the map with --spec its own --out folder")
    frames = sampled_frames(out, "Ar", n_frames, 12)  # structures the teacher never saw
    # students and ceilings see the teacher's descriptors, or share 1 is not representable
    # (an ``out`` made under an older default spec keeps that spec)
    spec = teacher.spec
    ceilings_path = root / "ceilings.json"
    ceilings = json.loads(ceilings_path.read_text()) if ceilings_path.is_file() else {}
    paths = {}
    for share in shares:
        path = root / "data" / f"Ar-share{share:.2f}.extxyz"
        if not path.is_file():
            write_frames(path, label_with_teacher(frames, teacher, share=share))
        paths[share] = path
        if f"{share:.2f}" not in ceilings:
            labelled = read_frames(path)
            descriptors = compute_descriptors(labelled, spec, progress=False)
            ceilings[f"{share:.2f}"] = descriptor_ceiling(
                descriptors, frames_local_energy(labelled), split_frames(len(labelled), 0))
            atomic_write_text(ceilings_path, json.dumps(ceilings, indent=1) + "\n")
        _share_sweep(root / f"share{share:.2f}", path, spec, widths, seeds, training)
    if wide is not None:
        for share in wide_shares:
            _share_sweep(root / f"share{share:.2f}-wide", paths[share], spec, (wide,),
                         wide_seeds, wide_training)
    return root


def _share_sweep(out: Path, data: Path, spec: DescriptorSpec, widths: Sequence[int],
                 seeds: Sequence[int], training) -> Path:
    from toolkit.studies.sweep import DataConfig, SweepConfig, run_sweep

    config = SweepConfig(name=out.name, systems=("Ar",), activations=("tanh",), depths=(1,),
                         widths=tuple(widths), seeds=tuple(seeds),
                         data=DataConfig(files={"Ar": str(data)}), spec=spec,
                         training=training)
    return run_sweep(config, out, progress=False)


# -- report ------------------------------------------------------------------------------
def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buffer.getvalue())


def search_table(rows: list[dict], model: str = "linear", top: int = 10) -> str:
    """Markdown: default spec first, then the best ``top`` other specs by mean R2 over 6 cases."""
    by_spec: dict[tuple, dict] = {}
    for row in rows:
        if row["model"] != model:
            continue
        key = (int(row["twojmax"]), float(row["rcutfac"]), float(row["rfac0"]),
               float(row["rmin0"]))
        by_spec.setdefault(key, {})[(row["system"], row["reference"])] = float(row["r2"])
    cases = [(s, r) for r in REFERENCES for s in SYSTEMS]
    complete = {k: v for k, v in by_spec.items() if all(c in v for c in cases)}
    ranked = sorted(complete, key=lambda k: -np.mean([complete[k][c] for c in cases]))
    default = DescriptorSpec()
    default_key = (default.twojmax, default.rcutfac, default.rfac0, default.rmin0)
    head = ("| twojmax | rcutfac | rfac0 | rmin0 | " + " | ".join(f"{s} {r}" for s, r in cases)
            + " | mean |")
    lines = [head, "|" + "---|" * (5 + len(cases))]
    ranked = [k for k in ranked if k != default_key]  # the default has its own first row
    for key in ([default_key] if default_key in complete else []) + ranked[:top]:
        values = [complete[key][c] for c in cases]
        mark = " (default)" if key == default_key else ""
        lines.append(f"| {key[0]}{mark} | {key[1]} | {key[2]} | {key[3]} | "
                     + " | ".join(f"{v:.4f}" for v in values) + f" | {np.mean(values):.4f} |")
    return "\n".join(lines)


def _map_rows(root: Path, share: str) -> list[dict]:
    """Result rows of one share: the main sweep and, when done, its wide member(s)."""
    from toolkit.studies.sweep import read_results

    rows = []
    for name in (f"share{share}", f"share{share}-wide"):
        if (root / name / "results.csv").is_file():
            rows += read_results(root / name / "results.csv")
    return rows


def map_table(root: Path, metric: str = "local_r2_aligned") -> str:
    """Markdown: per share, the ceilings and mean +- std over seeds of ``metric`` per width."""
    from toolkit.studies.sweep import summarise

    ceilings = json.loads((root / "ceilings.json").read_text())
    rows = {share: _map_rows(root, share) for share in ceilings}
    widths = sorted({r["width"] for share_rows in rows.values() for r in share_rows})
    lines = ["| share | ceiling lin / quad / tanh-16 | "
             + " | ".join(f"w={w}: local (total)" for w in widths) + " |",
             "|" + "---|" * (2 + len(widths))]
    for share, ceiling in ceilings.items():
        if not rows[share]:
            continue
        found, mean, std = summarise(rows[share], metric)[("Ar", "tanh", 1)]
        local, spread = dict(zip(found, mean, strict=True)), dict(zip(found, std, strict=True))
        found, mean, _ = summarise(rows[share], "total_r2")[("Ar", "tanh", 1)]
        totals = dict(zip(found, mean, strict=True))
        cells = []
        for w in widths:
            if w not in local:
                cells.append("")
                continue
            n = sum(1 for r in rows[share] if r["width"] == w)
            err = f" ± {spread[w]:.3f}" if n > 1 else " (1 seed)"
            cells.append(f"{local[w]:.3f}{err} ({totals[w]:.4f})")
        c = " / ".join(f"{ceiling[m]['r2']:.3f}" for m in ("linear", "quadratic", "network"))
        lines.append(f"| {share} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ceilings_table(path: Path) -> str:
    """Markdown: the three ceilings (overall and per species) of a ``ceilings-*.json``."""
    data = json.loads(Path(path).read_text())
    spec = data["spec"]
    lines = [f"twojmax {spec['twojmax']}, rcutfac {spec['rcutfac']}, rfac0 {spec['rfac0']}, "
             f"rmin0 {spec['rmin0']}", "",
             "| system / reference | linear | quadratic | tanh-16 network |", "|---|---|---|---|"]
    for case, models in data["ceilings"].items():
        cells = []
        for model in ("linear", "quadratic", "network"):
            score = models[model]
            species = score["per_species"]
            detail = (" (" + ", ".join(f"{k} {v['r2']:.4f}" for k, v in species.items()) + ")"
                      if len(species) > 1 else "")
            cells.append(f"{score['r2']:.4f}{detail}")
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def map_figure(root: Path, figure: Path, metric: str = "local_r2_aligned") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from toolkit.studies.sweep import summarise

    ceilings = json.loads((root / "ceilings.json").read_text())
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(ceilings)))
    for colour, (share, ceiling) in zip(colours, ceilings.items(), strict=True):
        rows = _map_rows(root, share)
        if not rows:
            continue
        widths, mean, std = summarise(rows, metric)[("Ar", "tanh", 1)]
        ax.plot(widths, mean, "o-", color=colour, ms=3, label=f"share {share}")
        ax.fill_between(widths, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        ax.axhline(ceiling["network"]["r2"], color=colour, ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("layer width (tanh, 1 hidden layer)")
    ax.set_ylabel("local-energy R2 (offset-aligned)")
    ax.set_title(f"Ar, {_map_spec(root)}: students on totals of teacher mixtures\n"
                 "(dotted: tanh-16 ceiling)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return figure


# ``aetk emergence ceilings``: all three ceilings at the default spec, the first default
# (rcutfac 1.6) and the richer twojmax 8 at the default cutoff (docs/emergence.md)
CEILING_SPECS = (DescriptorSpec(), DescriptorSpec(rcutfac=1.6), DescriptorSpec(twojmax=8))


def run_job(job: str, out: Path, figures: Path | None = None,
            spec: DescriptorSpec | None = None) -> None:
    """`aetk emergence JOB`: search, ceilings, map, or report (tables; figures with
    ``figures``). ``spec``: ceilings at that spec only, or the map's spec."""
    if spec is not None and job in ("search", "report"):
        raise AetkError(f"--spec applies to `ceilings` and `map`, not to `{job}` (the search "
                        "scores its own 84 specs; the report reads what the folder holds)")
    if job == "search":
        print(spec_search(out, search_specs()))
    elif job == "ceilings":
        for candidate in ([spec] if spec else CEILING_SPECS):
            print(default_ceilings(out, spec=candidate))
    elif job == "map":
        print(emergence_map(out, spec=spec))
    else:
        for path in sorted(out.glob("ceilings-*.json")):
            print("\n" + ceilings_table(path))
        rows = _read_csv(out / "search.csv")
        for model in ("linear", "quadratic"):
            print(f"\n{model} ceilings, default spec and the best 10 other specs by mean R2\n")
            print(search_table(rows, model))
        for root in [out / "map", *sorted(out.glob("map-*"))]:
            if not (root / "ceilings.json").is_file():
                continue
            print(f"\nemergence map in {root.name}/ ({_map_spec(root)}; local R2, offset-aligned; "
                  "total R2 in parentheses)\n")
            print(map_table(root))
            if figures:
                print(map_figure(root, figures / f"emergence_{root.name}.png"))


def _map_spec(root: Path) -> str:
    """The descriptor of a map's students, from its first sweep's config."""
    for config in sorted(root.glob("share*/config.json")):
        d = json.loads(config.read_text())["descriptor"]
        return f"twojmax {d['twojmax']}, rcutfac {d['rcutfac']}"
    return "spec unknown"
