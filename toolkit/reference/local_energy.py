"""DFT local energies: the linear map from Bader basin electrostatic energies (the paper's
Figs. 1, 5, 6 and its "local DFT energies").

Across the frames of one system (fixed composition and atom count N), with per-atom values
x = E_es / N and y = (E_total - E_es) / N, the fit is

    y = slope * x + intercept          (least squares; intercept in eV/atom),

so E_total ~ (1 + slope) E_es + N intercept. The basin energies E_i (sum_i E_i = E_es, see
``toolkit.reference.bader.analyse_frame``) map to local energies

    local_i = (1 + slope) E_i + intercept + r_f / N,

where r_f = E_total - (1 + slope) E_es - N intercept is the frame's fit residual (a few
meV per frame). The residual term is the same for every atom of the frame; it makes
sum_i local_i equal the DFT total exactly, as the toolkit's frames require, without
changing any difference between atoms. Without it the sum would be the fitted total.
The intercept is one number per system: with a fixed composition, per-species intercepts
cannot be told apart, so in the mixture both species get the same intercept.
Everything is in eV and Angstrom.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.data import FrameError, atomic_write_text, read_frames, write_frames
from toolkit.reference.dft.cp2k import DftError


@dataclass(frozen=True)
class CorrelationFit:
    """y = slope x + intercept over frames; x = E_es/N, y = (E_total - E_es)/N (eV/atom)."""

    slope: float
    intercept: float  # eV/atom
    rmse: float  # eV/atom
    r2: float
    n_frames: int
    natoms: int

    def predict_total(self, electrostatic_energy: float) -> float:
        """Fitted total energy (eV) of a frame with the given E_es (eV)."""
        return (1.0 + self.slope) * electrostatic_energy + self.natoms * self.intercept


def fit_correlation(total: np.ndarray, electrostatic: np.ndarray, natoms: int) -> CorrelationFit:
    """Least-squares line through (E_es/N, (E_total - E_es)/N) of the frames (eV)."""
    total = np.asarray(total, dtype=np.float64)
    electrostatic = np.asarray(electrostatic, dtype=np.float64)
    if total.shape != electrostatic.shape or total.ndim != 1:
        raise DftError("total and electrostatic energies must be 1D arrays of equal length")
    if len(total) < 3:
        raise DftError(f"the correlation fit needs at least 3 frames, got {len(total)}")
    x = electrostatic / natoms
    y = (total - electrostatic) / natoms
    if np.ptp(x) == 0:
        raise DftError("all frames have the same E_es; the fit is undetermined")
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return CorrelationFit(
        slope=float(slope),
        intercept=float(intercept),
        rmse=float(np.sqrt(np.mean(residual**2))),
        r2=float(1.0 - np.sum(residual**2) / ss_tot) if ss_tot > 0 else float("nan"),
        n_frames=len(total),
        natoms=natoms,
    )


NEWEY_WEST_LAG = 3  # frames (1.5 ps at the campaign's 0.5 ps spacing; 4 (n/100)^(2/9) for n ~ 40)


def newey_west_covariance(design: np.ndarray, residual: np.ndarray, groups, order,
                          lag: int = NEWEY_WEST_LAG) -> np.ndarray:
    """Covariance of least-squares coefficients whose residuals may be correlated between
    nearby frames of one trajectory (Newey-West: Bartlett weights 1 - k/(lag + 1) for frames
    k <= ``lag`` steps apart in the same group, none across groups), with the small-sample
    factor n/(n - p). ``groups``: a trajectory label per row; ``order``: the frame's
    position along it (integer steps; k is the difference of positions, so frames missing
    from a trajectory shorten no distance). With ``lag`` 0 it is White's
    heteroskedasticity-robust covariance.
    """
    design = np.asarray(design, dtype=np.float64)
    residual = np.asarray(residual, dtype=np.float64)
    groups, order = np.asarray(groups), np.asarray(order)
    n, p = design.shape
    if not (len(residual) == len(groups) == len(order) == n) or n <= p:
        raise DftError(f"Newey-West covariance: {n} rows, {p} coefficients, {len(residual)} "
                       f"residuals, {len(groups)} groups")
    meat = np.zeros((p, p))
    for group in dict.fromkeys(groups.tolist()):
        rows = np.flatnonzero(groups == group)
        rows = rows[np.argsort(order[rows], kind="stable")]
        score = design[rows] * residual[rows, None]
        position = order[rows].astype(np.int64)
        meat += score.T @ score
        # positions are sorted, so frames at most ``lag`` steps apart are at most ``lag`` rows
        # apart; the weight follows the steps
        for k in range(1, min(lag, len(rows) - 1) + 1):
            steps = position[k:] - position[:-k]
            weight = np.where(steps <= lag, 1.0 - steps / (lag + 1.0), 0.0)
            cross = (score[k:] * weight[:, None]).T @ score[:-k]
            meat += cross + cross.T
    bread = np.linalg.inv(design.T @ design)  # not pinv: see fit_joint (scale the columns)
    return bread @ meat @ bread * n / (n - p)


def _trajectories(records) -> tuple[list, list]:
    """(trajectory label, position along it) per record; one trajectory in frame order where
    the records carry no labels."""
    groups = [r.labels.get("trajectory", "") for r in records]
    order = [int(r.labels.get("trajectory_frame", r.index)) for r in records]
    return groups, order


def correlation_stderr(total: np.ndarray, electrostatic: np.ndarray, natoms: int, groups,
                       order, lag: int = NEWEY_WEST_LAG) -> dict[str, float]:
    """Standard errors of the correlation fit's slope and intercept: ``classical`` (frames
    independent, homoskedastic) and ``newey_west`` (frames correlated along a trajectory up to
    ``lag`` steps), both for the same least-squares line as :func:`fit_correlation`."""
    x = np.asarray(electrostatic, dtype=np.float64) / natoms
    y = (np.asarray(total, dtype=np.float64) - np.asarray(electrostatic)) / natoms
    design = np.column_stack([x - x.mean(), np.ones_like(x)])  # centred: a well-posed inverse
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coefficients
    n = len(y)
    classical = np.linalg.inv(design.T @ design) * float(residual @ residual) / (n - 2)
    robust = newey_west_covariance(design, residual, groups, order, lag)
    # (slope, c) of the centred line; the intercept at x = 0 is c - slope mean(x)
    back = np.array([-x.mean(), 1.0])
    out = {}
    for name, cov in (("classical", classical), ("newey_west", robust)):
        out[f"slope_{name}"] = float(np.sqrt(cov[0, 0]))
        out[f"intercept_{name}"] = float(np.sqrt(max(back @ cov @ back, 0.0)))
    out["newey_west_lag"] = lag
    return out


def local_energies(
    basin_energies: np.ndarray,
    total: float,
    fit: CorrelationFit,
    symbols: list[str] | None = None,
    species_offsets: dict[str, float] | None = None,
) -> np.ndarray:
    """Per-atom local energies (eV) of one frame; they sum to ``total`` (see module doc).

    ``species_offsets`` (eV, needs ``symbols``) shifts each species; the offsets are
    centred over the frame's atoms first, so the sum stays ``total``. Only mixtures need
    it: the fit cannot tell how the intercept splits between species (docs/dft.md).
    """
    basin_energies = np.asarray(basin_energies, dtype=np.float64)
    if len(basin_energies) != fit.natoms:
        raise DftError(f"{len(basin_energies)} basins for a fit made with {fit.natoms} atoms")
    residual = total - fit.predict_total(float(basin_energies.sum()))
    local = (1.0 + fit.slope) * basin_energies + fit.intercept + residual / fit.natoms
    if species_offsets:
        if symbols is None or set(symbols) - set(species_offsets):
            raise DftError("species_offsets needs the symbols and an offset for every species")
        offsets = np.array([species_offsets[s] for s in symbols], dtype=np.float64)
        local += offsets - offsets.mean()
    return local


@dataclass
class DftFrameRecord:
    """What the DFT stage stored for one frame (eV, Angstrom)."""

    index: int
    atoms: Atoms
    energy: float
    forces: np.ndarray
    electrostatic_energy: float
    basin_energies: np.ndarray
    basin_electrons: np.ndarray
    ion_charges: np.ndarray  # pseudo-ion charge Z_I (valence electrons of the neutral atom)
    grid_mismatch: float  # eV; NaN where not recorded
    components: dict
    labels: dict = field(default_factory=dict)  # e.g. trajectory, trajectory_frame


RECORD_LABELS = ("trajectory", "trajectory_frame", "single_point_s", "partition_s",
                 "scf_steps", "element", "box_A")


def record_frame(record: DftFrameRecord) -> Atoms:
    """One DFT record as an extxyz frame (the compact, shippable form of a finished frame)."""
    atoms = Atoms(record.atoms.get_chemical_symbols(), record.atoms.positions,
                  cell=record.atoms.cell, pbc=True)
    atoms.info["energy"] = record.energy
    atoms.info["electrostatic_energy"] = record.electrostatic_energy
    atoms.info["grid_mismatch"] = record.grid_mismatch
    atoms.info["reference"] = "dft"
    atoms.info["dft_frame"] = record.index
    atoms.info.update(record.labels)
    atoms.arrays["forces"] = record.forces
    atoms.arrays["basin_energy"] = record.basin_energies
    atoms.arrays["basin_electrons"] = record.basin_electrons
    atoms.arrays["ion_charge"] = record.ion_charges
    return atoms


def read_records(path: str | Path) -> list[DftFrameRecord]:
    """DFT records from an extxyz file written by :func:`record_frame` (or by ``aetk
    partition``, whose frames carry the same columns)."""
    frames = read_frames(path)
    records = []
    for position, atoms in enumerate(frames):
        missing = [k for k in ("basin_energy", "basin_electrons") if k not in atoms.arrays]
        missing += [k for k in ("energy", "electrostatic_energy") if k not in atoms.info]
        if missing:
            raise FrameError(f"{path}, frame {position}: no {', '.join(missing)}; not a DFT "
                             "record (made by `aetk dft` + `aetk partition` or the campaign)")
        n = len(atoms)
        charges = atoms.arrays.get("ion_charge", np.full(n, np.nan))
        records.append(DftFrameRecord(
            index=int(atoms.info.get("dft_frame", position)),
            atoms=Atoms(atoms.get_chemical_symbols(), atoms.positions, cell=atoms.cell,
                        pbc=True),
            energy=float(atoms.info["energy"]),
            forces=np.asarray(atoms.arrays["forces"], dtype=np.float64),
            electrostatic_energy=float(atoms.info["electrostatic_energy"]),
            basin_energies=np.asarray(atoms.arrays["basin_energy"], dtype=np.float64),
            basin_electrons=np.asarray(atoms.arrays["basin_electrons"], dtype=np.float64),
            ion_charges=np.asarray(charges, dtype=np.float64),
            grid_mismatch=float(atoms.info.get("grid_mismatch", np.nan)),
            components={},
            labels={k: atoms.info[k] for k in RECORD_LABELS if k in atoms.info},
        ))
    return records


def load_dft(dft_dir: str | Path, recompute_basins: bool = False,
             method: str = "near-grid") -> list[DftFrameRecord]:
    """Every finished frame of a ``run_dft`` directory, in frame order, or a records file.

    ``dft_dir`` may also be an extxyz file of records (:func:`read_records`).

    Frames without ``DONE`` are left out (with a note on stderr via the caller). A frame
    whose ``basins.json`` is missing, or all frames with ``recompute_basins``, are analysed
    again from their cube files (only possible when ``keep_cubes`` was set).
    """
    from toolkit.reference.bader import analyse_frame
    from toolkit.reference.dft.runner import DONE, frame_dir, same_structure

    dft_dir = Path(dft_dir)
    if dft_dir.is_file():
        return read_records(dft_dir)
    structures = read_frames(dft_dir / "frames.extxyz")
    records = []
    for index, atoms in enumerate(structures):
        workdir = frame_dir(dft_dir, index)
        if not (workdir / DONE).is_file():
            continue
        result = json.loads((workdir / "result.json").read_text())
        if not same_structure(result, atoms):
            raise DftError(f"{workdir}: result does not belong to frame {index} of "
                             f"{dft_dir / 'frames.extxyz'}; the directory was tampered with")
        basins_path = workdir / "basins.json"
        if recompute_basins or not basins_path.is_file():
            basins = analyse_frame(workdir, result, method=method)
            atomic_write_text(basins_path, json.dumps(basins, indent=1, sort_keys=True) + "\n")
        else:
            basins = json.loads(basins_path.read_text())
        records.append(
            DftFrameRecord(
                index=index,
                atoms=atoms,
                energy=float(result["energy"]),
                forces=np.asarray(result["forces"], dtype=np.float64),
                electrostatic_energy=float(result["electrostatic_energy"]),
                basin_energies=np.asarray(basins["basin_electrostatic_eV"], dtype=np.float64),
                basin_electrons=np.asarray(basins["basin_electrons"], dtype=np.float64),
                ion_charges=np.array([result["kinds"][s]["zeff"] for s in result["symbols"]]),
                grid_mismatch=float(basins["grid_mismatch_eV"]),
                components=result["components"],
                # trajectory and position, where the input frames carry them (the errors
                # of the fit allow for correlated frames along a trajectory)
                labels={k: atoms.info[k] for k in RECORD_LABELS if k in atoms.info},
            )
        )
    return records


def composition_label(atoms: Atoms) -> str:
    """E.g. ``Ar16Kr16``: species and counts, alphabetical."""
    counts = Counter(atoms.get_chemical_symbols())
    return "".join(f"{s}{counts[s]}" for s in sorted(counts))


def build_frames(
    records: list[DftFrameRecord],
    fit: CorrelationFit,
    system: str,
    species_offsets: dict[str, float] | None = None,
) -> list[Atoms]:
    """Frames in the toolkit layout: DFT energy and forces, local energies from the fit."""
    frames = []
    for rec in records:
        symbols = rec.atoms.get_chemical_symbols()
        atoms = Atoms(symbols, rec.atoms.positions, cell=rec.atoms.cell, pbc=True)
        local = local_energies(rec.basin_energies, rec.energy, fit, symbols, species_offsets)
        atoms.info["energy"] = rec.energy
        atoms.arrays["forces"] = rec.forces
        atoms.arrays["local_energy"] = local
        atoms.arrays["basin_energy"] = rec.basin_energies
        atoms.arrays["basin_electrons"] = rec.basin_electrons
        atoms.info["electrostatic_energy"] = rec.electrostatic_energy
        atoms.info["fit_residual"] = rec.energy - fit.predict_total(rec.electrostatic_energy)
        atoms.info["system"] = system
        atoms.info["reference"] = "dft"
        atoms.info["dft_frame"] = rec.index
        atoms.info.update(rec.labels)
        frames.append(atoms)
    return frames


def _species_means(frames: list[Atoms]) -> dict[str, float]:
    symbols = np.concatenate([f.get_chemical_symbols() for f in frames])
    local = np.concatenate([f.arrays["local_energy"] for f in frames])
    return {str(s): float(local[symbols == s].mean()) for s in np.unique(symbols)}


def partition_command(
    dft: str | Path,
    out: str | Path,
    fit_json: str | Path | None = None,
    figure: str | Path | None = None,
    system: str | None = None,
    recompute_basins: bool = False,
    species_offsets: dict[str, float] | None = None,
) -> CorrelationFit:
    """``aetk partition --dft DIR --out FRAMES.extxyz``: entry point for the CLI.

    Fits the correlation over the finished frames of ``dft``, writes the frames with
    ``local_energy`` to ``out``, the fit and its diagnostics to ``fit_json`` (default
    ``<out>.fit.json``) and the Fig. 1-style plot to ``figure`` (default
    ``<out>.correlation``, as .png and .pdf). ``system`` labels the frames (default: the
    composition, e.g. ``Ar32``). ``species_offsets`` (eV per species, mixtures only; see
    :func:`local_energies`) moves local energy between species without changing any
    frame's sum. Returns the fit.
    """
    from toolkit.reference.figures import plot_correlation

    out = Path(out)
    records = load_dft(dft, recompute_basins=recompute_basins)
    if not records:
        raise DftError(f"{dft}: no finished frames (run `aetk dft` first)")
    labels = {composition_label(r.atoms) for r in records}
    if len(labels) != 1:
        raise DftError(f"{dft}: frames of different compositions {sorted(labels)}; "
                         "the correlation fit is per system")
    label = labels.pop()
    system = system or label
    natoms = len(records[0].atoms)
    total = np.array([r.energy for r in records])
    electrostatic = np.array([r.electrostatic_energy for r in records])
    fit = fit_correlation(total, electrostatic, natoms)
    frames = build_frames(records, fit, system, species_offsets)
    write_frames(out, frames)
    net_charge = np.concatenate([r.ion_charges - r.basin_electrons for r in records])
    info = {
        "system": system,
        "composition": label,
        "dft_dir": str(dft),
        "frames_file": str(out),
        "fit": asdict(fit),
        "rmse_meV_per_atom": fit.rmse * 1e3,
        "definition": {
            "x": "E_es / N, eV/atom",
            "y": "(E_total - E_es) / N, eV/atom",
            "local_energy": "(1 + slope) * E_i + intercept + fit_residual / N, eV",
        },
        "frames_used": [r.index for r in records],
        "species_offsets_eV": species_offsets or {},
        "species_mean_local_energy_eV": _species_means(frames),
        "fit_residual_eV": [float(f.info["fit_residual"]) for f in frames],
        "grid_mismatch_eV_per_atom_max": float(
            np.nanmax([abs(r.grid_mismatch) for r in records] + [np.nan]) / natoms)
        if any(np.isfinite(r.grid_mismatch) for r in records) else None,
        "local_energy_mean_eV": float(np.mean([f.arrays["local_energy"] for f in frames])),
        "local_energy_std_eV": float(np.std([f.arrays["local_energy"] for f in frames])),
        "basin_net_charge_rms": float(np.sqrt(np.mean(net_charge**2))),
        "basin_net_charge_max_abs": float(np.abs(net_charge).max()),
    }
    info["total_against_electrostatic"] = total_against_electrostatic(total, electrostatic,
                                                                      natoms)
    info["stderr"] = correlation_stderr(total, electrostatic, natoms, *_trajectories(records))
    settings = Path(dft) / "settings.json"
    if settings.is_file():
        info["dft_settings"] = json.loads(settings.read_text())
    fit_json = Path(fit_json) if fit_json else out.with_suffix(".fit.json")
    atomic_write_text(fit_json, json.dumps(info, indent=1, sort_keys=True) + "\n")
    figure = Path(figure) if figure else out.with_suffix(".correlation")
    plot_correlation({system: (electrostatic / natoms, (total - electrostatic) / natoms, fit)},
                     figure)
    return fit


# -- Fig. 1 without a shared variable --------------------------------------------------------
def total_against_electrostatic(total: np.ndarray, electrostatic: np.ndarray,
                                natoms: int) -> dict:
    """R2 and RMSE of E_total/N against E_es/N (least-squares line), per atom.

    The paper's Fig. 1 plots (E_total - E_es)/N against E_es/N: E_es sits on both axes, so
    its own spread makes the points line up whatever E_total does, which inflates R2. The
    line fitted here has the same residuals (E/N = (1 + slope) x + intercept is the same
    model), so the RMSE is identical; only the R2 changes, to the share of the variance of
    the total energy that E_es explains.
    """
    x = np.asarray(electrostatic, dtype=float) / natoms
    y = np.asarray(total, dtype=float) / natoms
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    spread = float(np.sum((y - y.mean()) ** 2))
    return {"slope": float(slope), "intercept_eV_per_atom": float(intercept),
            "r2": 1.0 - float(residual @ residual) / spread if spread > 0 else float("nan"),
            "rmse_eV_per_atom": float(np.sqrt(np.mean(residual**2))),
            "total_std_eV_per_atom": float(y.std()),
            "electrostatic_std_eV_per_atom": float(x.std())}


# -- one map for all compositions ---------------------------------------------------------------
@dataclass(frozen=True)
class JointFit:
    """Per-species slopes and intercepts fitted over frames of several compositions:

        (E_total - E_es) / N = sum_s [slope_s E_es,s + N_s intercept_s] / N,

    E_es,s = the sum of the basin energies of the species-s atoms. With pure liquids among
    the systems, each species' intercept is determined by data (a single mixture fixes only
    their composition-weighted sum). Local energies follow as
    local_i = (1 + slope_s) E_i + intercept_s + residual_f / N.
    """

    slopes: dict[str, float]
    intercepts: dict[str, float]  # eV/atom
    rmse: float  # eV/atom, over all frames
    n_frames: int
    rmse_per_system: dict[str, float]
    slope_stderr: dict[str, float]  # frames independent
    intercept_stderr: dict[str, float]
    # frames correlated along each trajectory (newey_west_covariance, NEWEY_WEST_LAG)
    slope_stderr_newey_west: dict[str, float] = field(default_factory=dict)
    intercept_stderr_newey_west: dict[str, float] = field(default_factory=dict)

    def predict_total(self, basin_energies: np.ndarray, symbols: list[str]) -> float:
        symbols = np.asarray(symbols)
        return float(sum((1.0 + self.slopes[s]) * basin_energies[symbols == s].sum()
                         + np.sum(symbols == s) * self.intercepts[s] for s in set(symbols)))

    def local_energies(self, basin_energies: np.ndarray, symbols: list[str],
                       total: float) -> np.ndarray:
        symbols = np.asarray(symbols)
        residual = total - self.predict_total(basin_energies, list(symbols))
        slope = np.array([self.slopes[s] for s in symbols])
        intercept = np.array([self.intercepts[s] for s in symbols])
        return (1.0 + slope) * basin_energies + intercept + residual / len(symbols)


def fit_joint(records_by_system: dict[str, list[DftFrameRecord]]) -> JointFit:
    """Least squares over every frame of every system, each frame weighted per atom."""
    elements = sorted({s for records in records_by_system.values() for r in records
                       for s in r.atoms.get_chemical_symbols()})
    rows, targets, systems, groups, order = [], [], [], [], []
    for system, records in records_by_system.items():
        trajectories, positions = _trajectories(records)
        groups += [f"{system}/{t}" for t in trajectories]  # no trajectory spans two systems
        order += positions
        for record in records:
            symbols = np.asarray(record.atoms.get_chemical_symbols())
            n = len(symbols)
            features = [record.basin_energies[symbols == e].sum() / n for e in elements]
            features += [np.sum(symbols == e) / n for e in elements]
            rows.append(features)
            targets.append((record.energy - record.electrostatic_energy) / n)
            systems.append(system)
    design, target = np.array(rows), np.array(targets)
    if np.linalg.matrix_rank(design) < design.shape[1]:
        raise DftError(f"the systems {sorted(records_by_system)} do not determine per-species "
                       "slopes and intercepts (add the pure liquids or more compositions)")
    # scale the columns for conditioning: E_es/N is ~ -700 eV, its spread meV
    scale = np.abs(design).max(axis=0)
    scaled = design / scale
    coefficients, *_ = np.linalg.lstsq(scaled, target, rcond=None)
    coefficients /= scale
    residual = target - design @ coefficients
    dof = max(len(target) - design.shape[1], 1)
    # in the columns scaled by their largest value: design.T @ design itself has a condition
    # number ~1e15, and its pseudo-inverse drops the directions that carry the errors
    unscale = np.outer(scale, scale)
    covariance = np.linalg.inv(scaled.T @ scaled) / unscale * float(residual @ residual) / dof
    stderr = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    robust = newey_west_covariance(scaled, residual, groups, order) / unscale
    robust_stderr = np.sqrt(np.clip(np.diag(robust), 0.0, None))
    k = len(elements)
    systems = np.asarray(systems)
    return JointFit(
        slopes={e: float(coefficients[i]) for i, e in enumerate(elements)},
        intercepts={e: float(coefficients[k + i]) for i, e in enumerate(elements)},
        rmse=float(np.sqrt(np.mean(residual**2))), n_frames=len(target),
        rmse_per_system={s: float(np.sqrt(np.mean(residual[systems == s] ** 2)))
                         for s in records_by_system},
        slope_stderr={e: float(stderr[i]) for i, e in enumerate(elements)},
        intercept_stderr={e: float(stderr[k + i]) for i, e in enumerate(elements)},
        slope_stderr_newey_west={e: float(robust_stderr[i]) for i, e in enumerate(elements)},
        intercept_stderr_newey_west={e: float(robust_stderr[k + i])
                                     for i, e in enumerate(elements)})


def partition_joint_command(sources: dict[str, str | Path], out_dir: str | Path) -> JointFit:
    """``aetk partition --joint``: one per-species map over several systems' DFT records.

    ``sources``: system name -> ``aetk dft`` directory or records file. Writes
    ``out_dir/SYSTEM.extxyz`` (local energies from the joint map, summing to each frame's
    total) and ``out_dir/joint.fit.json`` (the map, per-system RMSE, and each system's own
    fit for comparison). Returns the fit.
    """
    records = {system: load_dft(path) for system, path in sources.items()}
    for system, found in records.items():
        if not found:
            raise DftError(f"{sources[system]}: no finished frames")
    joint = fit_joint(records)
    out_dir = Path(out_dir)
    own = {}
    for system, found in records.items():
        natoms = len(found[0].atoms)
        total = np.array([r.energy for r in found])
        electrostatic = np.array([r.electrostatic_energy for r in found])
        fit = fit_correlation(total, electrostatic, natoms)
        own[system] = {"slope": fit.slope, "intercept_eV_per_atom": fit.intercept,
                       "rmse_meV_per_atom": 1e3 * fit.rmse, "n_frames": fit.n_frames}
        frames = []
        for rec in found:
            symbols = rec.atoms.get_chemical_symbols()
            atoms = Atoms(symbols, rec.atoms.positions, cell=rec.atoms.cell, pbc=True)
            atoms.info["energy"] = rec.energy
            atoms.arrays["forces"] = rec.forces
            atoms.arrays["local_energy"] = joint.local_energies(rec.basin_energies, symbols,
                                                                rec.energy)
            atoms.arrays["basin_energy"] = rec.basin_energies
            atoms.arrays["basin_electrons"] = rec.basin_electrons
            atoms.info["electrostatic_energy"] = rec.electrostatic_energy
            atoms.info["fit_residual"] = rec.energy - joint.predict_total(rec.basin_energies,
                                                                          symbols)
            atoms.info["system"] = system
            atoms.info["reference"] = "dft-joint"
            atoms.info["dft_frame"] = rec.index
            atoms.info.update(rec.labels)
            frames.append(atoms)
        write_frames(out_dir / f"{system}.extxyz", frames)
    info = {"joint": asdict(joint), "rmse_meV_per_atom": 1e3 * joint.rmse,
            "per_system_fits": own,
            "sources": {s: str(p) for s, p in sources.items()},
            "definition": {"fit": "(E_total - E_es)/N = sum_s [slope_s E_es,s + N_s "
                                  "intercept_s] / N over all frames of all systems",
                           "local_energy": "(1 + slope_s) E_i + intercept_s + residual/N"}}
    atomic_write_text(out_dir / "joint.fit.json", json.dumps(info, indent=1) + "\n")
    return joint
