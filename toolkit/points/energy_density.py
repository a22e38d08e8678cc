"""The electrostatic energy density of a CP2K frame, coarse-grained onto reference grid points.

Definitions (atomic units inside, eV and A outside; the density fields are those of
:func:`toolkit.reference.bader.analyse_frame`):

- e(r) = 1/2 rho_tot(r) V_H(r): rho_tot = valence cube - exact Gaussian cores (electrons
  positive), V_H its periodic FFT Poisson solution. Its integral is CP2K's Hartree energy.
- Promolecule: every atom's *free-atom* rho_tot and V_H (a single-atom run in the same box,
  so on the same grid; toolkit/points/dft_cubes.py), moved onto the nucleus by an FFT phase
  shift (exact for fields on the plane-wave grid, which is what CP2K's are), and
  e_pro(r) = sum_i 1/2 rho_i(r) V_i(r).
- Deformation density d(r) = e(r) - e_pro(r). Its integral is the electrostatic interaction
  energy E_H - sum_i E_H(free atom i). The intra-atomic energies, hundreds of eV per atom
  concentrated within about 1 A of each nucleus, cancel point by point; left in, they would
  make a coarse cell's energy mostly a function of where nuclei sit relative to the cell,
  a per-atom constant split among cells that total energies can never fix.
- Coarse-graining onto grid points at (i / n) L: cloud-in-cell (trilinear) weights, so each
  fine voxel's share is spread over the 8 nearest grid points with weights summing to 1, and
  the grid energies sum exactly to the integral.
- Mapping, as the basins are mapped (toolkit/reference/local_energy.py): with the shipped
  fit's slope, mapped_g = (1 + slope) D_g + (E_total - (1 + slope) sum_g D_g) / n_g, so the
  grid energies sum to the DFT total. The second term is the same for every point of a frame;
  scores are taken after removing each frame's mean, so only (1 + slope) D_g matters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from toolkit.reference.bader import Cube, core_density, hartree_potential, read_cube
from toolkit.reference.dft.cp2k import BOHR, CUBES, HARTREE, DftError


@dataclass
class FrameField:
    """rho_tot and V_H of one CP2K run on its grid (atomic units)."""

    rho: np.ndarray  # (n1, n2, n3) electrons / bohr^3, electrons positive
    potential: np.ndarray  # (n1, n2, n3) Hartree / e
    spacing: np.ndarray  # (3,) bohr
    origin: np.ndarray  # (3,) bohr
    positions: np.ndarray  # (natoms, 3) bohr
    symbols: list[str]

    @property
    def voxel_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def lengths(self) -> np.ndarray:
        return self.spacing * np.array(self.rho.shape)


def frame_field(workdir: str | Path) -> FrameField:
    """rho_tot = valence - Gaussian cores and its Hartree potential, as analyse_frame does."""
    workdir = Path(workdir)
    result = json.loads((workdir / "result.json").read_text())
    valence: Cube = read_cube(workdir / CUBES["valence"])
    spacing = valence.spacing
    rho = valence.data - core_density(valence, result)[0]
    return FrameField(rho, hartree_potential(rho, spacing), spacing, valence.origin,
                      valence.positions, list(result["symbols"]))


def shifted(field: np.ndarray, spacing: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """``field`` moved by ``displacement`` (bohr) on its periodic grid, by an FFT phase."""
    k = [2.0 * np.pi * np.fft.fftfreq(n, d=h) for n, h in zip(field.shape, spacing,
                                                              strict=True)]
    phase = np.exp(-1j * (k[0][:, None, None] * displacement[0]
                          + k[1][None, :, None] * displacement[1]
                          + k[2][None, None, :] * displacement[2]))
    return np.fft.ifftn(np.fft.fftn(field) * phase).real


def promolecule_energy_density(frame: FrameField, free: dict[str, FrameField]) -> np.ndarray:
    """sum_i 1/2 rho_i V_i of free atoms moved onto the frame's nuclei (Hartree / bohr^3)."""
    out = np.zeros_like(frame.rho)
    transforms = {}
    for symbol, atom in free.items():
        if atom.rho.shape != frame.rho.shape or not np.allclose(atom.spacing, frame.spacing,
                                                                rtol=1e-9):
            raise DftError(f"the free {symbol} atom was computed on another grid "
                           f"({atom.rho.shape}) than the frame ({frame.rho.shape}); it needs "
                           "the frame's box")
        transforms[symbol] = (np.fft.fftn(atom.rho), np.fft.fftn(atom.potential),
                              atom.positions[0])
    k = [2.0 * np.pi * np.fft.fftfreq(n, d=h) for n, h in zip(frame.rho.shape, frame.spacing,
                                                              strict=True)]
    for symbol, position in zip(frame.symbols, frame.positions, strict=True):
        if symbol not in transforms:
            raise DftError(f"no free-atom run for {symbol}")
        rho_k, pot_k, origin = transforms[symbol]
        d = position - origin
        phase = np.exp(-1j * (k[0][:, None, None] * d[0] + k[1][None, :, None] * d[1]
                              + k[2][None, None, :] * d[2]))
        out += 0.5 * np.fft.ifftn(rho_k * phase).real * np.fft.ifftn(pot_k * phase).real
    return out


def cic_weights(n_fine: int, spacing: float, origin: float, n_coarse: int,
                length: float) -> np.ndarray:
    """(n_coarse, n_fine): trilinear share of each fine point for each coarse point at
    (i / n_coarse) L along one periodic axis; columns sum to 1."""
    u = np.mod(origin + np.arange(n_fine) * spacing, length) / (length / n_coarse)
    low = np.floor(u).astype(int)
    frac = u - low
    weights = np.zeros((n_coarse, n_fine))
    np.add.at(weights, (low % n_coarse, np.arange(n_fine)), 1.0 - frac)
    np.add.at(weights, ((low + 1) % n_coarse, np.arange(n_fine)), frac)
    return weights


def coarse_grain(field: np.ndarray, spacing: np.ndarray, origin: np.ndarray,
                 shape: tuple[int, int, int]) -> np.ndarray:
    """Cloud-in-cell integrals of ``field`` for grid points at (i / n) L: (n_x n_y n_z,),
    x fastest (the order of toolkit.points.placement.grid_positions); field x volume units."""
    lengths = spacing * np.array(field.shape)
    w = [cic_weights(field.shape[a], spacing[a], origin[a], shape[a], lengths[a])
         for a in range(3)]
    coarse = np.einsum("ai,ijk->ajk", w[0], field)
    coarse = np.einsum("bj,ajk->abk", w[1], coarse)
    coarse = np.einsum("ck,abk->abc", w[2], coarse) * float(np.prod(spacing))
    return coarse.transpose(2, 1, 0).reshape(-1)


def grid_reference(workdir: str | Path, free_dirs: dict[str, str | Path],
                   shape: tuple[int, int, int], slope: float, energy_total: float) -> dict:
    """Grid-point electrostatic energies of one frame (eV): raw e, deformation d, mapped.

    ``shape``: grid points per box edge (toolkit.points.placement.grid_shape); ``slope``:
    the shipped partition fit's slope; ``energy_total``: the frame's DFT total (eV).
    """
    frame = frame_field(workdir)
    free = {symbol: frame_field(path) for symbol, path in free_dirs.items()}
    density = 0.5 * frame.rho * frame.potential
    promolecule = promolecule_energy_density(frame, free)
    deformation = density - promolecule
    raw = coarse_grain(density, frame.spacing, frame.origin, shape) * HARTREE
    deformed = coarse_grain(deformation, frame.spacing, frame.origin, shape) * HARTREE
    n = len(deformed)
    mapped = (1.0 + slope) * deformed + (energy_total - (1.0 + slope) * deformed.sum()) / n
    free_hartree = {s: 0.5 * float(np.sum(f.rho * f.potential)) * f.voxel_volume * HARTREE
                    for s, f in free.items()}
    expected_pro = sum(free_hartree[s] for s in frame.symbols)
    dv = frame.voxel_volume
    return {
        "raw_eV": raw, "deformation_eV": deformed, "mapped_eV": mapped,
        "checks": {
            "hartree_grid_eV": float(density.sum() * dv * HARTREE),
            "promolecule_grid_eV": float(promolecule.sum() * dv * HARTREE),
            "promolecule_expected_eV": expected_pro,
            "interaction_eV": float(deformation.sum() * dv * HARTREE),
            "raw_cell_std_eV": float(raw.std()),
            "deformation_cell_std_eV": float(deformed.std()),
            "max_abs_density_eV_per_A3": float(np.abs(density).max() * HARTREE / BOHR**3),
            "max_abs_deformation_eV_per_A3": float(np.abs(deformation).max() * HARTREE
                                                   / BOHR**3),
        },
    }
