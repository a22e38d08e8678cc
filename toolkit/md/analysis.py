"""Analysis of MD runs: radial distribution functions, NVE energy drift, model vs reference.

Pure numpy functions (no LAMMPS), so each one is unit-testable on made-up numbers; the
comparison of two run folders written by :func:`toolkit.md.run_md` is built from them.
Units: A, ps, eV.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.errors import AetkError


class AnalysisError(AetkError, ValueError):
    """A trajectory cannot be analysed as asked (not a dump, too short, no such pairs)."""


@dataclass
class DumpFrame:
    """One frame of a LAMMPS text dump (orthorhombic box), atoms sorted by id."""

    step: int
    lo: np.ndarray  # (3,) A
    hi: np.ndarray  # (3,) A
    columns: dict[str, np.ndarray]  # column name -> (N,) values (element: str)

    @property
    def lengths(self) -> np.ndarray:
        return self.hi - self.lo

    @property
    def positions(self) -> np.ndarray:
        return np.stack([self.columns[k] for k in ("x", "y", "z")], axis=1)


def read_dump(path: str | Path) -> list[DumpFrame]:
    """Frames of a ``dump custom`` text file; an incomplete last frame (interrupted) is dropped."""
    lines = Path(path).read_text().splitlines()
    frames, i = [], 0
    while i < len(lines):
        if lines[i].strip() != "ITEM: TIMESTEP":
            raise AnalysisError(f"{path}: line {i + 1} is not 'ITEM: TIMESTEP'; not a text dump")
        try:
            step = int(lines[i + 1])
            n = int(lines[i + 3])
            bounds = np.array([[float(v) for v in lines[i + 5 + k].split()[:2]]
                               for k in range(3)])
            names = lines[i + 8].split()[2:]
            rows = [lines[i + 9 + k].split() for k in range(n)]
        except (IndexError, ValueError):
            break  # truncated frame at the end of an interrupted run
        if len(rows) < n or any(len(r) != len(names) for r in rows):
            break
        table = list(zip(*rows, strict=True))
        columns = {name: np.array(col) if name == "element" else
                   np.array(col, dtype=np.int64 if name in ("id", "type") else np.float64)
                   for name, col in zip(names, table, strict=True)}
        order = np.argsort(columns["id"]) if "id" in columns else np.arange(n)
        frames.append(DumpFrame(step, bounds[:, 0], bounds[:, 1],
                                {k: v[order] for k, v in columns.items()}))
        i += 9 + n
    return frames


def dump_atoms(frame: DumpFrame):
    """An ASE ``Atoms`` of a dump frame (needs the ``element`` column)."""
    from ase import Atoms

    return Atoms(list(frame.columns["element"]), positions=frame.positions - frame.lo,
                 cell=np.diag(frame.lengths), pbc=True)


def wall_contacts(frames: list[DumpFrame], wall, elements) -> dict:
    """How often MD frames had a pair inside its repulsive wall (``toolkit.models.wall``).

    Per element pair: the closest distance over the frames next to the wall's ``outer``;
    ``fraction_of_frames_inside``: frames with any pair closer than its pair's ``outer``,
    i.e. closer than the data ever came minus the wall's margin.
    """
    from toolkit.models.wall import closest_pairs

    inside, closest = 0, {}
    for frame in frames:
        per_pair = closest_pairs([dump_atoms(frame)], elements)
        inside += any(d < wall.cutoffs[k][1] for k, d in per_pair.items())
        for key, d in per_pair.items():
            closest[key] = min(closest.get(key, np.inf), d)
    return {"outer": {k: o for k, (_, o) in wall.cutoffs.items()},
            "closest_pairs_in_data": dict(wall.closest),
            "closest_pairs_in_md": closest,
            "frames": len(frames),
            "fraction_of_frames_inside": inside / len(frames) if frames else float("nan")}


def radial_distribution(
    positions: np.ndarray,
    lengths: np.ndarray,
    symbols: np.ndarray,
    r_max: float,
    n_bins: int = 100,
    pair: tuple[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """g(r) averaged over frames, minimum image in an orthorhombic periodic box.

    positions (F, N, 3) A, lengths (F, 3) or (3,) A, symbols (N,). ``pair=(a, b)`` gives the
    partial g_ab (density of b atoms around an a atom over the mean b density), ``None`` the
    total. Normalised by N_a (N_b - delta_ab) / V so that g -> 1 at large r even in a small
    box. Returns bin centres (A) and g.
    """
    positions = np.asarray(positions, dtype=float)
    if positions.ndim == 2:
        positions = positions[None]
    lengths = np.broadcast_to(np.asarray(lengths, dtype=float), (len(positions), 3))
    if r_max > 0.5 * lengths.min() + 1e-12:
        raise AnalysisError(f"r_max {r_max} A exceeds half the box ({0.5 * lengths.min():.3f} A);"
                         " minimum image would double count")
    symbols = np.asarray(symbols)
    a = np.ones(len(symbols), bool) if pair is None else symbols == pair[0]
    b = np.ones(len(symbols), bool) if pair is None else symbols == pair[1]
    n_a, n_b = int(a.sum()), int(b.sum())
    same = pair is None or pair[0] == pair[1]
    if n_a == 0 or n_b - same <= 0:
        raise AnalysisError(f"no {pair} pairs in these frames")
    edges = np.linspace(0.0, r_max, n_bins + 1)
    g = np.zeros(n_bins)
    for x, box in zip(positions, lengths, strict=True):
        d = x[a][:, None, :] - x[b][None, :, :]
        d -= box * np.round(d / box)
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        if same:  # a and b are the same atoms in the same order: drop i == j
            r = r[~np.eye(n_a, dtype=bool)]
        counts, _ = np.histogram(r.ravel(), bins=edges)
        density_pairs = n_a * (n_b - same) / np.prod(box)
        shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
        g += counts / (density_pairs * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g / len(positions)


def integrated_abs_difference(r: np.ndarray, g1: np.ndarray, g2: np.ndarray) -> float:
    """Integral of |g1(r) - g2(r)| dr over the bins (A); 0 for identical structure."""
    width = np.gradient(r) if len(r) > 1 else np.ones(1)
    return float(np.sum(np.abs(np.asarray(g1) - np.asarray(g2)) * width))


def energy_drift(time_ps: np.ndarray, etotal: np.ndarray, kinetic: np.ndarray,
                 natoms: int) -> dict:
    """NVE energy conservation from a thermo series: linear fit of E_total(t).

    Returns the drift in eV/atom/ns (slope of the fit), the change over the run it implies,
    the RMS of E_total about the fit (fluctuation from the finite timestep) and, for scale,
    the standard deviation of the kinetic energy (the natural fluctuation that E_total
    should not show), all per atom in eV.
    """
    t = np.asarray(time_ps, dtype=float)
    e = np.asarray(etotal, dtype=float) / natoms
    slope, intercept = np.polyfit(t, e, 1)  # eV/atom/ps
    residual = e - (slope * t + intercept)
    kinetic_std = float(np.std(np.asarray(kinetic, dtype=float) / natoms))
    change = abs(slope) * (t[-1] - t[0])
    return {
        "drift_ev_per_atom_per_ns": float(slope * 1e3),
        "duration_ps": float(t[-1] - t[0]),
        "drift_over_run_ev_per_atom": float(change),
        "etotal_rms_about_fit_ev_per_atom": float(np.sqrt(np.mean(residual**2))),
        "kinetic_std_ev_per_atom": kinetic_std,
        "drift_over_run_relative_to_kinetic_std": float(change / kinetic_std)
        if kinetic_std > 0 else float("inf"),
    }


# -- comparing a run with its reference run -----------------------------------------------------
def structure(frames: list[DumpFrame], n_bins: int = 100) -> dict[str, tuple]:
    """Total and (for mixtures) partial g(r) of dump frames: name -> (r, g)."""
    positions = np.stack([f.positions for f in frames])
    lengths = np.stack([f.lengths for f in frames])
    symbols = frames[0].columns["element"]
    r_max = 0.5 * float(lengths.min())
    out = {"total": radial_distribution(positions, lengths, symbols, r_max, n_bins)}
    species = sorted(set(symbols.tolist()))
    if len(species) > 1:
        for i, s in enumerate(species):
            for t in species[i:]:
                out[f"{s}-{t}"] = radial_distribution(positions, lengths, symbols, r_max,
                                                      n_bins, pair=(s, t))
    return out


def compare_runs(model_dir: str | Path, reference_dir: str | Path,
                 plot: str | Path | None = None) -> dict:
    """Numbers (and optionally a PNG) comparing two ``run_md`` folders of the same system."""
    model_dir, reference_dir = Path(model_dir), Path(reference_dir)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (model_dir, reference_dir)]
    rdfs = []
    for d in (model_dir, reference_dir):
        frames = read_dump(d / "trajectory.dump")
        if len(frames) < 2:
            raise AnalysisError(f"{d}: fewer than 2 trajectory frames; run longer for g(r)")
        rdfs.append(structure(frames))
    result = {"model": str(model_dir), "reference": str(reference_dir),
              "rdf_integrated_abs_difference_A": {
                  name: integrated_abs_difference(r, g, rdfs[1][name][1])
                  for name, (r, g) in rdfs[0].items()}}
    for key in ("mean_pe_per_atom", "mean_temperature", "ns_per_day"):
        if all(key in s for s in summaries):
            result[key] = {"model": summaries[0][key], "reference": summaries[1][key],
                           "difference": summaries[0][key] - summaries[1][key]}
    if all("nve" in s for s in summaries):
        result["nve_drift_ev_per_atom_per_ns"] = {
            "model": summaries[0]["nve"]["drift_ev_per_atom_per_ns"],
            "reference": summaries[1]["nve"]["drift_ev_per_atom_per_ns"]}
    if plot is not None:
        plot_rdfs(rdfs[0], rdfs[1], plot, title=summaries[0]["run"]["system"],
                  differences=result["rdf_integrated_abs_difference_A"])
    return result


def plot_rdfs(model: dict, reference: dict, path: str | Path, title: str = "",
              differences: dict | None = None) -> None:
    """Side-by-side g(r) panels (total, partials): model solid, reference dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(model)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ax.plot(*model[name], label="potential")
        ax.plot(*reference[name], "--", label="reference")
        heading = f"{title} {name}".strip()
        if differences:
            heading += f": int |dg| dr = {differences[name]:.3f} A"
        ax.set(xlabel="r (A)", ylabel="g(r)", title=heading)
        ax.axhline(1.0, color="0.7", lw=0.5)
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
