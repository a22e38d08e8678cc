"""Kohn-Sham DFT single points with CP2K, frame by frame, resumable.

Each frame gets a directory ``<out>/frame_NNNNN/`` with the CP2K input and output, the
parsed result (``result.json``), the Bader basin analysis (``basins.json``) and, last, the
completion marker ``DONE``. A frame with ``DONE`` is never recomputed; a frame whose CP2K run
fails is retried once in the same call and then reported (``FAILED`` holds the reason) and
is tried again by the next call. The three cube files (valence density, total density,
Hartree potential) are reduced to per-basin numbers right after the single point and then
deleted unless ``keep_cubes`` is set: at 600 Ry one 108-atom frame writes ~0.5 GB of cubes.

Several workers may share one output directory (two processes on a workstation, an array
job on a cluster): a worker claims a frame by creating ``CLAIM`` (holding ``host pid``)
exclusively before computing it and removes it when the frame is done or has failed; other
workers skip claimed frames and report them as busy. A claim left by a dead process on the
same host is taken over; one from another host is honoured until removed by hand (delete
``frame_NNNNN/CLAIM`` when you know that worker is gone).

Units: CP2K works in Hartree and bohr; everything leaving this module is in eV and Angstrom
(``HARTREE`` and ``BOHR`` below, CODATA 2018, the values CP2K 2023 itself uses).

Which ``mpirun``: the Debian ``cp2k.psmp`` links Debian's Open MPI (``libmpi.so.40``), so it
must be started by Open MPI's launcher (``mpirun.openmpi``), never by the MPICH ``mpirun``
from the project's virtual environment that comes first on ``PATH`` inside the venv.
``AETK_CP2K`` and ``AETK_CP2K_MPIRUN`` override the executables.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from ase import Atoms
from tqdm import tqdm

HARTREE = 27.211386245988  # eV
BOHR = 0.529177210903  # Angstrom
TEMPLATE = Path(__file__).with_name("cp2k_single_point.inp")
PROJECT = "frame"
CUBES = {
    "valence": f"{PROJECT}-ELECTRON_DENSITY-1_0.cube",
    "total": f"{PROJECT}-TOTAL_DENSITY-1_0.cube",
    "hartree": f"{PROJECT}-v_hartree-1_0.cube",
}
DONE, FAILED, CLAIM = "DONE", "FAILED", "CLAIM"


class DftError(RuntimeError):
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
            raise ValueError(f"vdw={self.vdw!r}: choose 'rVV10' or None")
        if self.cutoff <= 0 or self.rel_cutoff <= 0 or self.ngrids < 1:
            raise ValueError("cutoff, rel_cutoff and ngrids must be positive")


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
        raise ValueError("CP2K input: only orthorhombic cells are supported")
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
    values = {
        "project": PROJECT,
        "basis_file": settings.basis_file,
        "potential_file": settings.potential_file,
        "cutoff": f"{settings.cutoff:g}",
        "rel_cutoff": f"{settings.rel_cutoff:g}",
        "ngrids": settings.ngrids,
        "eps_default": f"{settings.eps_default:.1E}",
        "eps_scf": f"{settings.eps_scf:.1E}",
        "max_scf": settings.max_scf,
        "functional": settings.functional,
        "vdw_section": _vdw_section(settings),
        "cell": " ".join(f"{x:.12f}" for x in np.diag(cell)),
        "coordinates": coordinates,
        "kinds": kinds,
    }
    text = TEMPLATE.read_text()
    keys = set(re.findall(r"\{\{(\w+)\}\}", text))
    if keys != set(values):
        raise KeyError(f"{TEMPLATE}: placeholders {sorted(keys ^ set(values))} do not match")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    return text


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


# -- running -------------------------------------------------------------------------------
def frame_dir(out: str | Path, index: int) -> Path:
    return Path(out) / f"frame_{index:05d}"


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


def _write_json(path: Path, data: dict) -> None:
    from toolkit.data import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _check_settings(out: Path, settings: DftSettings) -> None:
    """Refuse to mix frames computed with different settings in one directory."""
    path = out / "settings.json"
    wanted = asdict(settings)
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != wanted:
            diff = sorted(k for k in wanted if stored.get(k) != wanted[k])
            raise ValueError(
                f"{out} was computed with different DFT settings ({', '.join(diff)}); "
                "use a new --out directory or the stored settings"
            )
    else:
        _write_json(path, wanted)


CLAIMS_LOCK = ".claims.lock"


@contextmanager
def _claims_locked(out: Path):
    """Hold ``out/.claims.lock`` (flock): claims of ``out``'s frames change one at a time."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / CLAIMS_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _process_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _claim_token() -> str:
    """``host pid start``: which process holds a claim, robust to reused pids."""
    return f"{socket.gethostname()} {os.getpid()} {_process_start(os.getpid()) or '?'}"


def _claim_is_stale(path: Path) -> bool:
    """Whether ``path`` (a ``CLAIM``) was left by a process of this host that has died.

    Called with the claims lock held, so a claim is never half-written: one that does not
    parse is left-over garbage and stale. A live pid whose start time differs from the
    recorded one is a reused pid, so the claim is stale too. Claims of other hosts cannot
    be checked and stand.
    """
    try:
        fields = path.read_text().split()
    except OSError:
        return False  # removed meanwhile
    if len(fields) not in (2, 3) or not fields[1].isdigit():
        return True
    host, pid = fields[0], int(fields[1])
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    if len(fields) == 3 and fields[2] != "?":
        start = _process_start(pid)
        return start is not None and start != fields[2]
    return False


def claim_frame(workdir: Path) -> bool:
    """Claim ``workdir`` for this process; False if a live worker holds it.

    Check and write happen under the directory's claims lock, so two workers that both find
    a stale claim cannot both take it over.
    """
    from toolkit.data import atomic_write_text

    path = workdir / CLAIM
    with _claims_locked(workdir.parent):
        if path.exists() and not _claim_is_stale(path):
            return False
        workdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, _claim_token() + "\n")
        return True


def release_frame(workdir: Path) -> None:
    """Remove this process's claim on ``workdir``; another worker's claim is left alone."""
    path = workdir / CLAIM
    with _claims_locked(workdir.parent):
        try:
            mine = path.read_text().split() == _claim_token().split()
        except OSError:
            return
        if mine:
            path.unlink(missing_ok=True)


def _write_structures(out: Path, structures: list[Atoms]) -> None:
    """Write ``frames.extxyz`` unless it already holds these structures and more.

    Workers sharing a directory may be given different numbers of frames (a longer run
    started next to a shorter one); the longer list must survive, since
    :func:`toolkit.reference.local_energy.load_dft` reads finished frames' structures there.
    A longer stored list that starts differently is refused rather than overwritten. Check
    and write happen under the claims lock, so concurrent workers cannot shrink the file.
    """
    from toolkit.data import read_frames, write_frames

    path = out / "frames.extxyz"
    with _claims_locked(out):
        if path.is_file():
            stored = read_frames(path)
            if len(stored) > len(structures):
                if not all(a.get_chemical_symbols() == b.get_chemical_symbols()
                           and np.allclose(a.positions, b.positions, atol=1e-5)
                           for a, b in zip(stored[: len(structures)], structures, strict=True)):
                    raise ValueError(
                        f"{path} holds {len(stored)} structures that differ from the "
                        f"{len(structures)} given; this directory belongs to other input "
                        "frames: use a new --out")
                return
        write_frames(path, structures)


@dataclass
class DftSummary:
    """What one call of :func:`run_dft` did."""

    out: Path
    computed: list[int]
    skipped: list[int]
    failed: dict[int, str]
    wall_s: dict[int, float]
    busy: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"{self.out}: {len(self.computed)} frames computed, {len(self.skipped)} already "
            f"done, {len(self.failed)} failed"
        )
        if self.busy:
            text += f", {len(self.busy)} being computed by other workers"
        if self.computed:
            text += f"; {np.mean(list(self.wall_s.values())):.1f} s per frame"
        if self.failed:
            text += "\n" + "\n".join(f"  frame {i}: {m.splitlines()[0]}" for i, m in
                                     self.failed.items())
        return text


def run_dft(
    frames: list[Atoms],
    out: str | Path,
    settings: DftSettings = DftSettings(),
    launcher: Launcher = Launcher(),
    keep_cubes: bool = False,
    bader_method: str = "near-grid",
    progress: bool = True,
) -> DftSummary:
    """Single points and Bader basins of every frame; resumable (see module doc).

    Writes ``<out>/frames.extxyz`` (the input structures), ``<out>/settings.json`` and one
    directory per frame. Frames already marked ``DONE`` are skipped after checking that
    their structure matches; a failed frame is retried once, then recorded in the summary.
    Frames claimed by another worker sharing ``out`` are skipped and listed as ``busy``.
    """

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    # check every finished frame before writing anything, so a wrong input cannot
    # overwrite the record of what was computed
    done = [i for i in range(len(frames)) if (frame_dir(out, i) / DONE).is_file()]
    for index in done:
        stored = json.loads((frame_dir(out, index) / "result.json").read_text())
        if not same_structure(stored, frames[index]):
            raise ValueError(
                f"{frame_dir(out, index)} holds a different structure than frame {index} of "
                "the input; the frames changed since this directory was made: use a new --out"
            )
    structures = [Atoms(a.get_chemical_symbols(), a.positions, cell=a.cell, pbc=True)
                  for a in frames]
    _write_structures(out, structures)
    summary = DftSummary(out=out, computed=[], skipped=list(done), failed={}, wall_s={})
    finished = set(done)
    todo = [(i, a) for i, a in enumerate(frames) if i not in finished]
    bar = tqdm(todo, desc=f"dft {out.name}", unit="frame", disable=not progress)
    for index, atoms in bar:
        workdir = frame_dir(out, index)
        if not claim_frame(workdir):
            summary.busy.append(index)
            continue
        if (workdir / DONE).is_file():  # finished by another worker after this call began
            release_frame(workdir)
            summary.skipped.append(index)
            continue
        try:
            wall = _compute_frame(atoms, workdir, settings, launcher, keep_cubes, bader_method)
        finally:
            release_frame(workdir)
        if isinstance(wall, str):
            summary.failed[index] = wall
            continue
        summary.computed.append(index)
        summary.wall_s[index] = wall
        bar.set_postfix(s_per_frame=f"{wall:.0f}")
    return summary


def _compute_frame(atoms: Atoms, workdir: Path, settings: DftSettings, launcher: Launcher,
                   keep_cubes: bool, bader_method: str) -> float | str:
    """Single point + basins of one claimed frame; its wall time (s), or the error text."""
    from toolkit.reference.bader import analyse_frame

    (workdir / FAILED).unlink(missing_ok=True)
    error = None
    for attempt in range(2):  # a crash (node hiccup, SCF trouble) gets one retry
        try:
            result = run_single_point(atoms, workdir, settings, launcher)
            result["attempts"] = attempt + 1
            start = time.perf_counter()
            basins = analyse_frame(workdir, result, method=bader_method)
            basins["wall_s"] = time.perf_counter() - start
            break
        except (DftError, subprocess.SubprocessError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    else:
        error = f"failed after 2 attempts; last error: {error}"
        (workdir / FAILED).write_text(error + "\n")
        return error
    _write_json(workdir / "result.json", result)
    _write_json(workdir / "basins.json", basins)
    if not keep_cubes:
        for name in CUBES.values():
            (workdir / name).unlink(missing_ok=True)
    for junk in workdir.glob(f"{PROJECT}-RESTART.wfn*"):
        junk.unlink()  # wavefunction restart files are large and never reused here
    (workdir / DONE).write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return result["wall_s"] + basins["wall_s"]


def dft_command(
    data: str | Path,
    out: str | Path,
    cutoff: float = 600.0,
    np_ranks: int = 1,
    omp_threads: int = 1,
    vdw: str | None = "rVV10",
    vdw_cutoff: float | None = None,
    keep_cubes: bool = False,
    progress: bool = True,
) -> DftSummary:
    """``aetk dft --data FRAMES --out DIR [--cutoff RY] [--np N]``: entry point for the CLI.

    Reads the frames (extxyz), runs :func:`run_dft` with default settings except
    ``cutoff`` (Ry), ``vdw`` (``"rVV10"`` or None) and ``vdw_cutoff`` (Ry; 150 costs a
    fifth of the full grid and changed energies by 0.01 meV/atom, see docs/dft.md) on
    ``np_ranks`` MPI ranks x ``omp_threads`` threads, and returns the summary (print it).
    Raises :class:`DftError` when any frame failed, after all others were done.
    """
    from toolkit.data import read_frames, validate_frames

    frames = read_frames(data)
    validate_frames(frames, data, require=())
    settings = replace(DftSettings(), cutoff=float(cutoff), vdw=vdw,
                       vdw_cutoff=None if vdw_cutoff is None else float(vdw_cutoff))
    summary = run_dft(
        frames,
        out,
        settings,
        Launcher(np=np_ranks, omp_threads=omp_threads),
        keep_cubes=keep_cubes,
        progress=progress,
    )
    if summary.failed:
        raise DftError(str(summary) + "\nrerun the same command to retry the failed frames")
    return summary


__all__ = [
    "BOHR",
    "HARTREE",
    "DftError",
    "DftSettings",
    "DftSummary",
    "Launcher",
    "dft_command",
    "electrostatic_energy",
    "input_text",
    "parse_output",
    "run_dft",
    "run_single_point",
]
