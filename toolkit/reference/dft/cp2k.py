"""CP2K single points: settings, how CP2K is launched, its input, and reading its output.

Units: CP2K works in Hartree and bohr; everything leaving this module is in eV and Angstrom
(``HARTREE`` and ``BOHR`` below, CODATA 2018, the values CP2K 2023 itself uses).

Which ``mpirun``: the Debian ``cp2k.psmp`` links Debian's Open MPI (``libmpi.so.40``), so it
must be started by Open MPI's launcher (``mpirun.openmpi``), never by the MPICH ``mpirun``
from the project's virtual environment that comes first on ``PATH`` inside the venv.
``AETK_CP2K`` and ``AETK_CP2K_MPIRUN`` override the executables.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from toolkit.errors import AetkError
from toolkit.lammps import render_template

HARTREE = 27.211386245988  # eV
BOHR = 0.529177210903  # Angstrom
TEMPLATE = "reference/cp2k_single_point.inp"  # package data, see toolkit.lammps.render_template
PROJECT = "frame"
CUBES = {
    "valence": f"{PROJECT}-ELECTRON_DENSITY-1_0.cube",
    "total": f"{PROJECT}-TOTAL_DENSITY-1_0.cube",
    "hartree": f"{PROJECT}-v_hartree-1_0.cube",
}


class DftError(AetkError, ValueError):
    """CP2K could not be run, failed, or wrote output this module cannot read."""


@dataclass(frozen=True)
class DftSettings:
    """Physical and numerical settings of the single points (defaults: the paper's setup).

    Cutoffs in Rydberg, ``eps_scf`` in Hartree. ``vdw`` is ``"rVV10"`` (non-local
    functional with ``rvv10_b``, ``rvv10_c``; the original rVV10 values) or ``None``;
    ``vdw_cutoff`` (Ry) sets a coarser grid for the non-local kernel, the dominant cost.
    """

    functional: str = "PBE"
    basis_set: str = "DZVP-MOLOPT-SR-GTH"
    pseudopotential: str = "GTH-PBE-q8"
    basis_file: str = "BASIS_MOLOPT"
    potential_file: str = "GTH_POTENTIALS"
    cutoff: float = 600.0
    rel_cutoff: float = 60.0
    ngrids: int = 4
    eps_scf: float = 1e-7
    eps_default: float = 1e-12
    max_scf: int = 50
    vdw: str | None = "rVV10"
    rvv10_b: float = 6.3
    rvv10_c: float = 0.0093
    vdw_cutoff: float | None = None  # Ry; None: CP2K's default (the density cutoff)

    def __post_init__(self) -> None:
        if self.vdw not in (None, "rVV10"):
            raise DftError(f"vdw={self.vdw!r}: choose 'rVV10' or None")
        if self.cutoff <= 0 or self.rel_cutoff <= 0 or self.ngrids < 1:
            raise DftError("cutoff, rel_cutoff and ngrids must be positive")


@dataclass(frozen=True)
class Launcher:
    """How CP2K is started: ``np`` MPI ranks times ``omp_threads`` OpenMP threads each."""

    np: int = 1
    omp_threads: int = 1
    cp2k: str | None = None
    mpirun: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    def command(self, workdir: Path) -> list[str]:
        cp2k = self.cp2k or os.environ.get("AETK_CP2K") or shutil.which("cp2k.psmp")
        if not cp2k:
            raise DftError(
                "cp2k.psmp not found on PATH; install it (`apt-get install cp2k`, or "
                "`make setup`) or point AETK_CP2K at the executable"
            )
        run = [cp2k, "-i", "cp2k.inp", "-o", "cp2k.out"]
        if self.np == 1:
            return run  # an Open MPI program runs as a singleton without a launcher
        mpirun = self.mpirun or os.environ.get("AETK_CP2K_MPIRUN") or _openmpi_launcher()
        root = ["--allow-run-as-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        return [mpirun, *root, "--bind-to", "none", "-np", str(self.np), *run]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["OMP_NUM_THREADS"] = str(self.omp_threads)
        # the venv's MPICH variables would confuse Open MPI's launcher
        for key in [k for k in env if k.startswith(("MPICH_", "HYDRA_", "PMI_"))]:
            del env[key]
        env.update(self.extra_env)
        return env


def _openmpi_launcher() -> str:
    for name in ("mpirun.openmpi", "orterun", "/usr/bin/mpirun"):
        path = shutil.which(name)
        if path:
            return path
    raise DftError(
        "no Open MPI launcher (mpirun.openmpi) found for the Debian cp2k.psmp; set "
        "AETK_CP2K_MPIRUN or run with np=1"
    )


# -- input ---------------------------------------------------------------------------------
def _vdw_section(settings: DftSettings) -> str:
    if settings.vdw is None:
        return "      # no dispersion correction"
    return "\n".join(
        [
            "      &VDW_POTENTIAL",
            "        POTENTIAL_TYPE NON_LOCAL",
            "        &NON_LOCAL",
            "          TYPE RVV10",
            f"          PARAMETERS {settings.rvv10_b} {settings.rvv10_c}",
            "          KERNEL_FILE_NAME rVV10_kernel_table.dat",
            *([f"          CUTOFF {settings.vdw_cutoff:g}"] if settings.vdw_cutoff else []),
            "        &END NON_LOCAL",
            "      &END VDW_POTENTIAL",
        ]
    )


def input_text(atoms: Atoms, settings: DftSettings) -> str:
    """The complete, hand-runnable CP2K input for one frame (orthorhombic, periodic)."""
    cell = atoms.cell.array
    if np.any(np.abs(cell - np.diag(np.diag(cell))) > 1e-10):
        raise DftError("CP2K input: only orthorhombic cells are supported")
    symbols, positions = atoms.get_chemical_symbols(), atoms.get_positions(wrap=True)
    coordinates = "\n".join(
        f"      {s:<2s} {x:18.12f} {y:18.12f} {z:18.12f}"
        for s, (x, y, z) in zip(symbols, positions, strict=True)
    )
    kinds = "\n".join(
        f"    &KIND {s}\n      BASIS_SET {settings.basis_set}\n"
        f"      POTENTIAL {settings.pseudopotential}\n    &END KIND"
        for s in sorted(set(atoms.get_chemical_symbols()))
    )
    return render_template(
        TEMPLATE,
        project=PROJECT,
        basis_file=settings.basis_file,
        potential_file=settings.potential_file,
        cutoff=f"{settings.cutoff:g}",
        rel_cutoff=f"{settings.rel_cutoff:g}",
        ngrids=settings.ngrids,
        eps_default=f"{settings.eps_default:.1E}",
        eps_scf=f"{settings.eps_scf:.1E}",
        max_scf=settings.max_scf,
        functional=settings.functional,
        vdw_section=_vdw_section(settings),
        cell=" ".join(f"{x:.12f}" for x in np.diag(cell)),
        coordinates=coordinates,
        kinds=kinds,
    )


# -- output --------------------------------------------------------------------------------
_ENERGY_LINE = re.compile(r"^\s{2}([A-Za-z][A-Za-z \-]+?):\s+(-?\d+\.\d+(?:[EeDd][-+]?\d+)?)\s*$")
_COMPONENT_KEYS = {
    "Overlap energy of the core charge distribution": "overlap",
    "Self energy of the core charge distribution": "self",
    "Core Hamiltonian energy": "core_hamiltonian",
    "Hartree energy": "hartree",
    "Exchange-correlation energy": "xc",
    "Dispersion energy": "dispersion",
    "Total energy": "total",
}


def parse_output(text: str, natoms: int) -> dict:
    """Energy components (Hartree, as printed), forces (Ha/bohr) and kind data of a run.

    The components are those of the last converged SCF; CP2K's total is
    ``overlap + self + core_hamiltonian + hartree + xc (+ dispersion)``, with ``self``
    negative and ``hartree`` the Hartree energy of valence density plus Gaussian cores.
    """
    if "PROGRAM ENDED AT" not in text:
        raise DftError("CP2K output ends early (no 'PROGRAM ENDED AT'): the run crashed")
    if "SCF run NOT converged" in text:
        raise DftError("SCF did not converge; raise max_scf or check the structure")
    start = text.rfind("SCF run converged")
    if start < 0:
        raise DftError("no converged SCF in the CP2K output")
    components: dict[str, float] = {}
    for line in text[start:].splitlines():
        match = _ENERGY_LINE.match(line)
        if match and match.group(1).strip() in _COMPONENT_KEYS:
            components[_COMPONENT_KEYS[match.group(1).strip()]] = float(match.group(2))
        if "total" in components:
            break
    missing = {"overlap", "self", "hartree", "total"} - components.keys()
    if missing:
        raise DftError(f"energy components {sorted(missing)} not found in the CP2K output")
    final = re.findall(r"ENERGY\| Total FORCE_EVAL \( QS \) energy[^:]*:\s+(-?\d+\.\d+)", text)
    if not final:
        raise DftError("no 'ENERGY| Total FORCE_EVAL' line in the CP2K output")
    forces = _parse_forces(text, natoms)
    kinds = {}
    for block in re.finditer(
        r"Atomic kind: (\w+)\s+Number of atoms:\s+(\d+)(.*?)(?=Atomic kind:|MOLECULE KIND)",
        text,
        re.S,
    ):
        alpha = re.search(r"Gaussian exponent of the core charge distribution:\s+(\S+)", block[3])
        if alpha is None:
            raise DftError(f"no core-charge exponent for kind {block[1]}; GTH potentials only")
        kinds[block[1]] = {"count": int(block[2]), "core_alpha": float(alpha[1])}
    zeff = {}
    for match in re.finditer(
        r"^\s+\d+\s+\d+\s+(\w+)\s+\d+\s+-?\d+\.\d+\s+-?\d+\.\d+\s+-?\d+\.\d+\s+(\d+\.\d+)\s+\d+\.\d+$",
        text,
        re.M,
    ):
        zeff[match[1]] = float(match[2])
    for kind, data in kinds.items():
        data["zeff"] = zeff[kind]
    electrons = re.search(r"Number of electrons:\s+(\d+)", text)
    return {
        "components_hartree": components,
        "energy_hartree": float(final[-1]),
        "forces_hartree_per_bohr": forces.tolist(),
        "kinds": kinds,
        "n_electrons": int(electrons[1]) if electrons else None,
        "scf_steps": [int(n) for n in re.findall(r"SCF run converged in\s+(\d+) steps", text)],
    }


def _parse_forces(text: str, natoms: int) -> np.ndarray:
    start = text.rfind("ATOMIC FORCES in [a.u.]")
    if start < 0:
        raise DftError("no 'ATOMIC FORCES' table in the CP2K output (RUN_TYPE ENERGY_FORCE?)")
    rows = []
    for line in text[start:].splitlines()[3:]:
        if line.strip().startswith("SUM OF ATOMIC FORCES"):
            break
        parts = line.split()
        rows.append([float(x) for x in parts[3:6]])
    forces = np.array(rows, dtype=np.float64)
    if forces.shape != (natoms, 3):
        raise DftError(f"force table has shape {forces.shape}, expected ({natoms}, 3)")
    return forces


def electrostatic_energy(components_hartree: dict[str, float]) -> float:
    """Classical electrostatic energy E_es (Hartree) of valence electrons plus point ions.

    ``hartree`` is 1/2 int rho_tot V_H of valence density plus Gaussian cores; ``self``
    (negative) removes each Gaussian core's interaction with itself and ``overlap`` corrects
    overlapping core pairs to point-charge ion-ion interaction.
    """
    c = components_hartree
    return c["hartree"] + c["self"] + c["overlap"]


def same_structure(result: dict, atoms: Atoms, tol: float = 1e-5) -> bool:
    """Whether ``result`` (from :func:`run_single_point`) was computed for ``atoms``.

    Compared with a tolerance (A), not a hash: extxyz stores 8 decimals, so a frame read
    back from disk differs from the in-memory one in the last bits.
    """
    if result.get("symbols") != atoms.get_chemical_symbols():
        return False
    cell = np.asarray(result["cell"])
    if not np.allclose(cell, atoms.cell.array, atol=tol):
        return False
    lengths = np.diag(cell)
    delta = np.asarray(result["positions"]) - atoms.positions
    delta -= np.rint(delta / lengths) * lengths
    return bool(np.abs(delta).max() < tol)


def run_single_point(
    atoms: Atoms,
    workdir: str | Path,
    settings: DftSettings = DftSettings(),
    launcher: Launcher = Launcher(),
    timeout: float | None = None,
) -> dict:
    """Run CP2K on one frame in ``workdir``; return the parsed result (eV, Angstrom).

    Keys: ``energy`` (eV), ``forces`` (eV/A), ``components`` (eV, CP2K's names mapped as in
    :func:`parse_output`), ``electrostatic_energy`` (eV), ``kinds``, ``n_electrons``,
    ``wall_s``, the raw Hartree values, and the structure (symbols, positions, cell).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "cp2k.inp").write_text(input_text(atoms, settings))
    start = time.perf_counter()
    proc = subprocess.run(
        launcher.command(workdir),
        cwd=workdir,
        env=launcher.environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    wall = time.perf_counter() - start
    out = workdir / "cp2k.out"
    text = out.read_text(errors="replace") if out.is_file() else ""
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or text)[-2000:]
        raise DftError(f"cp2k exited with status {proc.returncode} in {workdir}:\n{tail}")
    parsed = parse_output(text, len(atoms))
    comps = parsed["components_hartree"]
    forces = np.asarray(parsed["forces_hartree_per_bohr"]) * (HARTREE / BOHR)
    return {
        **parsed,
        "energy": parsed["energy_hartree"] * HARTREE,
        "forces": forces.tolist(),
        "components": {k: v * HARTREE for k, v in comps.items()},
        "electrostatic_energy": electrostatic_energy(comps) * HARTREE,
        "natoms": len(atoms),
        "symbols": atoms.get_chemical_symbols(),
        "positions": atoms.get_positions(wrap=True).tolist(),
        "cell": atoms.cell.array.tolist(),
        "wall_s": wall,
        "launcher": {"np": launcher.np, "omp_threads": launcher.omp_threads},
    }
