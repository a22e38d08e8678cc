"""Bader (QTAIM zero-flux) partition of a periodic grid density, and basin integrals.

The basin of an atom is the set of grid points whose steepest-ascent path on the density
ends at a maximum belonging to that atom (nearest atom to the maximum). Two ascent rules:

- ``on-grid`` (Henkelman, Arnaldsson, Jonsson, Comput. Mater. Sci. 36, 354 (2006)): each
  point steps to the neighbour of the 26 with the largest (rho_n - rho)/|r_n - r|. Paths
  are resolved for all points at once by pointer jumping. Fast, but the grid directions bias
  the surfaces (errors of order one voxel layer, worst for diagonal bonds).
- ``near-grid`` (Tang, Sanville, Henkelman, J. Phys.: Condens. Matter 21, 084204 (2009)):
  the step follows the true gradient (central differences), rounded to the grid, and the
  rounding error is carried along the path and corrected when it exceeds half a voxel.
  All trajectories are advanced together as numpy arrays and followed up to their maximum,
  so the edge-refinement pass of the serial algorithm is not needed. When a corrected step
  would not go uphill, the on-grid step is taken (densities strictly increase, so every
  path ends).

Grids are periodic and orthorhombic: point (i, j, k) sits at ``origin + (i, j, k) * spacing``.
Lengths are in whatever unit the caller uses consistently (bohr for CP2K cubes).

This module also reads Gaussian cube files (``read_cube``) and turns a CP2K frame
directory into per-basin charges and electrostatic energies (``analyse_frame``); the
definitions are in docs/dft.md.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.reference.dft.cp2k import DftError

METHODS = ("near-grid", "on-grid")


# -- cube files ----------------------------------------------------------------------------
@dataclass
class Cube:
    """A Gaussian cube file; all lengths in bohr, ``data`` in the file's units."""

    data: np.ndarray  # (n1, n2, n3), first index slowest in the file
    origin: np.ndarray  # (3,)
    voxel: np.ndarray  # (3, 3): rows are the grid step vectors
    numbers: np.ndarray  # (natoms,) atomic numbers
    positions: np.ndarray  # (natoms, 3)
    comment: str = ""

    @property
    def spacing(self) -> np.ndarray:
        """Grid steps (3,); raises for non-orthogonal grids."""
        off = self.voxel - np.diag(np.diag(self.voxel))
        if np.any(np.abs(off) > 1e-10 * np.abs(self.voxel).max()):
            raise DftError("cube grid is not orthorhombic; only orthorhombic cells supported")
        return np.diag(self.voxel).copy()

    @property
    def lengths(self) -> np.ndarray:
        """Periodic cell lengths (3,): the grid has no duplicated end plane."""
        return self.spacing * np.array(self.data.shape)

    @property
    def voxel_volume(self) -> float:
        return float(abs(np.linalg.det(self.voxel)))

    def integral(self) -> float:
        return float(self.data.sum() * self.voxel_volume)


def read_cube(path: str | Path) -> Cube:
    """Read a Gaussian cube file (positive atom count: one data set)."""
    path = Path(path)
    with open(path) as handle:
        comment = handle.readline().rstrip() + " | " + handle.readline().rstrip()
        head = handle.readline().split()
        natoms, origin = int(head[0]), np.array(head[1:4], dtype=float)
        if natoms < 0:
            raise DftError(f"{path}: cube files with several data sets are not supported")
        axes = [handle.readline().split() for _ in range(3)]
        shape = tuple(int(a[0]) for a in axes)
        if min(shape) <= 0:
            raise DftError(f"{path}: negative grid counts mean Angstrom units; not supported")
        voxel = np.array([a[1:4] for a in axes], dtype=float)
        atoms = np.array([handle.readline().split()[:5] for _ in range(natoms)], dtype=float)
        # np.fromstring with a separator parses ~10^7 numbers/s, far faster than loadtxt
        data = np.fromstring(handle.read(), sep=" ")
    size = int(np.prod(shape))
    if data.size != size:
        raise DftError(f"{path}: {data.size} values for a {shape} grid ({size}); truncated?")
    return Cube(
        data=data.reshape(shape),
        origin=origin,
        voxel=voxel,
        numbers=atoms[:, 0].astype(int) if natoms else np.zeros(0, int),
        positions=atoms[:, 2:5] if natoms else np.zeros((0, 3)),
        comment=comment,
    )


def write_cube(path: str | Path, cube: Cube) -> None:
    """Write ``cube`` (full double precision, unlike CP2K's 5 digits); used by tests."""
    lines = [cube.comment or "cube", "written by toolkit.reference.bader"]
    lines.append(f"{len(cube.numbers):5d} " + " ".join(f"{x:12.6f}" for x in cube.origin))
    for n, row in zip(cube.data.shape, cube.voxel, strict=True):
        lines.append(f"{n:5d} " + " ".join(f"{x:12.6f}" for x in row))
    for z, pos in zip(cube.numbers, cube.positions, strict=True):
        lines.append(f"{int(z):5d} {0.0:12.6f} " + " ".join(f"{x:12.6f}" for x in pos))
    body = "\n".join(" ".join(f"{v:.16e}" for v in row) for row in cube.data.reshape(-1, 6)) \
        if cube.data.size % 6 == 0 else " ".join(f"{v:.16e}" for v in cube.data.ravel())
    Path(path).write_text("\n".join(lines) + "\n" + body + "\n")


# -- steepest ascent -----------------------------------------------------------------------
_OFFSETS = np.array([d for d in itertools.product((-1, 0, 1), repeat=3) if any(d)])


def _on_grid_pointers(rho: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Flat index of each point's steepest-ascent neighbour (itself at a maximum)."""
    shape = rho.shape
    best_gain = np.zeros(shape)
    best = np.full(shape, -1, dtype=np.int8)
    for k, d in enumerate(_OFFSETS):
        # rolled[i] = rho[i + d]
        rolled = np.roll(rho, shift=tuple(-d), axis=(0, 1, 2))
        gain = (rolled - rho) / float(np.linalg.norm(d * spacing))
        better = gain > best_gain
        best_gain[better] = gain[better]
        best[better] = k
    flat = np.arange(rho.size, dtype=np.int64)
    pointers = flat.copy()
    moving = best.ravel() >= 0
    index = np.array(np.unravel_index(flat[moving], shape))
    index = (index + _OFFSETS[best.ravel()[moving]].T) % np.array(shape)[:, None]
    pointers[moving] = np.ravel_multi_index(tuple(index), shape)
    return pointers


def _resolve(pointers: np.ndarray) -> np.ndarray:
    """Follow pointers to their fixed points (maxima) by pointer jumping, O(log path)."""
    target = pointers.copy()
    while True:
        nxt = target[target]
        if np.array_equal(nxt, target):
            return target
        target = nxt


def _near_grid_targets(rho: np.ndarray, spacing: np.ndarray, pointers: np.ndarray) -> np.ndarray:
    """Maximum reached by each point's near-grid trajectory (flat indices)."""
    shape = np.array(rho.shape)
    flat_rho = rho.ravel()
    # gradient in index space: d(index)/dt parallel to grad rho means components g_a / h_a^2
    grads = [
        ((np.roll(rho, -1, axis=a) - np.roll(rho, 1, axis=a)) / (2.0 * spacing[a] ** 2)).ravel()
        for a in range(3)
    ]
    is_max = pointers == np.arange(rho.size)
    position = np.arange(rho.size, dtype=np.int64)
    drift = np.zeros((3, rho.size))
    active = np.flatnonzero(~is_max)
    while active.size:
        here = position[active]
        g = np.stack([grad[here] for grad in grads])
        scale = np.abs(g).max(axis=0)
        flat_gradient = scale == 0
        scale[flat_gradient] = 1.0
        ideal = g / scale
        step = np.rint(ideal)
        carried = drift[:, active] + ideal - step
        correction = np.rint(carried)
        step += correction
        carried -= correction
        index = np.array(np.unravel_index(here, rho.shape))
        index = (index + step.astype(np.int64)) % shape[:, None]
        moved = np.ravel_multi_index(tuple(index), rho.shape)
        uphill = (flat_rho[moved] > flat_rho[here]) & ~flat_gradient
        # fall back to the on-grid step (and forget the drift) where the corrected step
        # would not climb: guarantees strictly increasing density, so trajectories end
        moved = np.where(uphill, moved, pointers[here])
        carried[:, ~uphill] = 0.0
        drift[:, active] = carried
        position[active] = moved
        active = active[~is_max[moved]]
    return position


@dataclass
class Partition:
    """Bader basins of a grid: ``atom_of_point`` has the grid's shape, -1 never occurs."""

    atom_of_point: np.ndarray
    maxima: np.ndarray  # (M, 3) positions of the density maxima
    maximum_atom: np.ndarray  # (M,) atom each maximum (and its basin) is given to
    maximum_distance: np.ndarray  # (M,) distance maximum - atom (minimum image)
    natoms: int

    def integrate(self, field: np.ndarray, voxel_volume: float) -> np.ndarray:
        """Integral of ``field`` over every atom's basin, (natoms,)."""
        if field.shape != self.atom_of_point.shape:
            raise DftError(f"field shape {field.shape} != grid shape {self.atom_of_point.shape}")
        sums = np.bincount(self.atom_of_point.ravel(), weights=field.ravel(), minlength=self.natoms)
        return sums * voxel_volume

    def volumes(self, voxel_volume: float) -> np.ndarray:
        return np.bincount(self.atom_of_point.ravel(), minlength=self.natoms) * voxel_volume


def bader_partition(
    rho: np.ndarray,
    spacing: np.ndarray,
    positions: np.ndarray,
    origin: np.ndarray | None = None,
    method: str = "near-grid",
) -> Partition:
    """Partition the periodic grid ``rho`` into the basins of the atoms at ``positions``.

    ``spacing`` (3,) grid steps, ``positions`` (natoms, 3) and ``origin`` (3,) in the same
    length unit. Every maximum's basin goes to the nearest atom (minimum image); a maximum
    far from every atom (a non-nuclear attractor) shows up in ``maximum_distance``.
    """
    if method not in METHODS:
        raise DftError(f"unknown Bader method {method!r}; choose from {METHODS}")
    rho = np.asarray(rho, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    origin = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64)
    pointers = _on_grid_pointers(rho, spacing)
    if method == "on-grid":
        targets = _resolve(pointers)
    else:
        targets = _near_grid_targets(rho, spacing, pointers)
    maxima_flat, basin = np.unique(targets, return_inverse=True)
    lengths = spacing * np.array(rho.shape)
    maxima = origin + np.array(np.unravel_index(maxima_flat, rho.shape)).T * spacing
    delta = maxima[:, None, :] - positions[None, :, :]
    delta -= np.rint(delta / lengths) * lengths
    distance = np.linalg.norm(delta, axis=-1)
    nearest = distance.argmin(axis=1)
    return Partition(
        atom_of_point=nearest[basin].reshape(rho.shape),
        maxima=maxima,
        maximum_atom=nearest,
        maximum_distance=distance[np.arange(len(nearest)), nearest],
        natoms=len(positions),
    )


# -- fields for CP2K frames ----------------------------------------------------------------
def gaussian_cores(
    shape: tuple[int, int, int],
    spacing: np.ndarray,
    positions: np.ndarray,
    charges: np.ndarray,
    alphas: np.ndarray,
    origin: np.ndarray | None = None,
) -> np.ndarray:
    """Sum of normalised Gaussians Z (alpha/pi)^(3/2) exp(-alpha r^2) on a periodic grid.

    This is CP2K's ionic core charge of a GTH pseudopotential (alpha = 1/(2 r_loc^2)), with
    the sign flipped so that it is positive. Each Gaussian is evaluated as an outer product
    of 1D factors inside a window where it exceeds ~1e-16 of its peak.
    """
    shape_ = np.array(shape)
    origin = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64)
    lengths = spacing * shape_
    out = np.zeros(shape)
    for pos, z, alpha in zip(positions, charges, alphas, strict=True):
        half = np.minimum(np.ceil(np.sqrt(37.0 / alpha) / spacing).astype(int), (shape_ - 1) // 2)
        centre = np.rint((pos - origin) / spacing).astype(int)
        factors, indices = [], []
        for a in range(3):
            idx = centre[a] + np.arange(-half[a], half[a] + 1)
            x = origin[a] + idx * spacing[a] - pos[a]
            x -= np.rint(x / lengths[a]) * lengths[a]
            factors.append(np.exp(-alpha * x**2))
            indices.append(idx % shape_[a])
        block = np.einsum("i,j,k->ijk", *factors) * z * (alpha / np.pi) ** 1.5
        out[np.ix_(*indices)] += block
    return out


def hartree_potential(rho: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Periodic solution of lap V = -4 pi rho (atomic units), zero average (G = 0 dropped).

    Same convention as CP2K's V_HARTREE cube: rho counts electrons positive, and the
    Hartree energy is 1/2 sum rho V dV.
    """
    k = [2.0 * np.pi * np.fft.fftfreq(n, d=h) for n, h in zip(rho.shape, spacing, strict=True)]
    k2 = k[0][:, None, None] ** 2 + k[1][None, :, None] ** 2 + k[2][None, None, :] ** 2
    k2[0, 0, 0] = 1.0
    v = np.fft.fftn(rho) * (4.0 * np.pi / k2)
    v[0, 0, 0] = 0.0
    return np.fft.ifftn(v).real


def core_density(valence: Cube, result: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Gaussian ion cores of a CP2K frame on the valence cube's grid, with each atom's
    core charge and exponent (from ``result['kinds']``): (core density, zeff, alpha).

    rho_tot = valence - core is the total charge density the basin energies integrate.
    """
    symbols = result["symbols"]
    kinds = result["kinds"]
    zeff = np.array([kinds[s]["zeff"] for s in symbols])
    alpha = np.array([kinds[s]["core_alpha"] for s in symbols])
    core = gaussian_cores(valence.data.shape, valence.spacing, valence.positions, zeff, alpha,
                          valence.origin)
    return core, zeff, alpha


def analyse_frame(workdir: str | Path, result: dict, method: str = "near-grid") -> dict:
    """Per-basin charges and electrostatic energies of one CP2K frame (see docs/dft.md).

    ``result`` is :func:`toolkit.reference.dft.run_single_point`'s output for the same
    directory (kinds, energy components). Returns a JSON-ready dict; energies in eV.
    """
    from toolkit.reference.dft.cp2k import CUBES, HARTREE

    workdir = Path(workdir)
    valence = read_cube(workdir / CUBES["valence"])
    total = read_cube(workdir / CUBES["total"])
    hartree_cube = read_cube(workdir / CUBES["hartree"])
    spacing, dv = valence.spacing, valence.voxel_volume
    symbols = result["symbols"]
    core, zeff, alpha = core_density(valence, result)
    # the total-density cube is valence minus cores, both rounded to 5 digits; rebuilding
    # it from the valence cube and the exact Gaussians halves the rounding noise, and the
    # potential from an exact FFT Poisson solve avoids the V_H cube's own rounding
    rho_tot = valence.data - core
    v_h = hartree_potential(rho_tot, spacing)
    energy_density = 0.5 * rho_tot * v_h
    reference = valence.data + core  # one maximum per nucleus (valence alone has shells)
    part = bader_partition(reference, spacing, valence.positions, valence.origin, method)

    comps = result["components_hartree"]
    natoms = len(symbols)
    basin_hartree = part.integrate(energy_density, dv)  # Hartree
    self_energy = -(zeff**2) * np.sqrt(alpha / (2.0 * np.pi))  # Hartree, CP2K's sign
    basin_es = basin_hartree + self_energy + comps["overlap"] / natoms
    e_es = comps["hartree"] + comps["self"] + comps["overlap"]
    mismatch = e_es - basin_es.sum()
    charges = part.integrate(valence.data, dv)
    return {
        "method": method,
        "grid_shape": list(valence.data.shape),
        "basin_electrons": charges.tolist(),
        "basin_net_charge": (zeff - charges).tolist(),
        "basin_volume_A3": (part.volumes(dv) * 0.529177210903**3).tolist(),
        "basin_hartree_eV": (basin_hartree * HARTREE).tolist(),
        # E_i = 1/2 int_i rho_tot V_H + E_self,i + E_ovrl/N, plus the grid mismatch spread
        # evenly so that sum_i E_i equals CP2K's E_es exactly (mismatch reported below)
        "basin_electrostatic_eV": ((basin_es + mismatch / natoms) * HARTREE).tolist(),
        "electrostatic_energy_eV": e_es * HARTREE,
        "grid_mismatch_eV": mismatch * HARTREE,
        "checks": {
            "electrons_grid": float(charges.sum()),
            "electrons_expected": float(zeff.sum()),
            "hartree_grid_minus_printed_eV": float(
                (basin_hartree.sum() - comps["hartree"]) * HARTREE),
            "hartree_cubes_minus_printed_eV": float(
                (0.5 * np.sum(total.data * hartree_cube.data) * dv - comps["hartree"]) * HARTREE),
            "self_energy_analytic_minus_printed_eV": float(
                (self_energy.sum() - comps["self"]) * HARTREE),
            "core_cube_max_abs_error": float(np.abs(valence.data - total.data - core).max()),
            "v_hartree_rms_difference_eV": float(
                np.sqrt(np.mean((v_h - hartree_cube.data) ** 2)) * HARTREE),
            "max_attractor_distance_A": float(part.maximum_distance.max() * 0.529177210903),
            "n_maxima": int(len(part.maxima)),
        },
    }
