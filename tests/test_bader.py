"""Bader partition on analytic periodic densities, cube round trip, and (slow) a real
CP2K frame: basin charges add up to the electron count, basin energies to E_es."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from ase import Atoms
from scipy.optimize import brentq
from scipy.special import erf

from toolkit.reference.bader import (
    Cube,
    bader_partition,
    gaussian_cores,
    hartree_potential,
    read_cube,
    write_cube,
)

SIGMA = 0.8  # Gaussian width, same length unit as the grid


def _grid(n: int, length: float) -> tuple[np.ndarray, np.ndarray]:
    spacing = np.full(3, length / n)
    axes = [np.arange(n) * spacing[0]] * 3
    return spacing, np.stack(np.meshgrid(*axes, indexing="ij"))


def _gaussians(points, centres, amplitudes, length, sigma=SIGMA):
    """Periodic sum of Gaussians amp * exp(-r^2 / 2 sigma^2) (one image shell suffices)."""
    rho = np.zeros(points.shape[1:])
    for centre, amp in zip(centres, amplitudes, strict=True):
        d = points - np.asarray(centre)[:, None, None, None]
        d -= np.rint(d / length) * length
        rho += amp * np.exp(-(d**2).sum(0) / (2 * sigma**2))
    return rho


def _slab_fraction(lo: float, hi: float, centre: float, length: float) -> float:
    """Fraction of a periodic 1D Gaussian's weight in [lo, hi)."""
    total = 0.0
    for image in (-1, 0, 1):
        c = centre + image * length
        width = SIGMA * math.sqrt(2)
        total += 0.5 * (erf((hi - c) / width) - erf((lo - c) / width))
    return total


@pytest.mark.parametrize("method", ["near-grid", "on-grid"])
def test_single_gaussian_one_basin(method):
    spacing, points = _grid(24, 8.0)
    rho = _gaussians(points, [(3.1, 4.4, 2.2)], [1.0], 8.0)
    part = bader_partition(rho, spacing, np.array([[3.1, 4.4, 2.2]]), method=method)
    dv = float(np.prod(spacing))
    assert np.all(part.atom_of_point == 0)
    assert part.integrate(rho, dv)[0] == pytest.approx(rho.sum() * dv, rel=1e-14)
    assert part.maximum_distance.max() < spacing[0]


@pytest.mark.parametrize("method", ["near-grid", "on-grid"])
def test_symmetric_pair_off_grid(method):
    """Two equal Gaussians half a box apart along x: the zero-flux surfaces are the planes
    x = x0 + L/4 and x0 + 3L/4 (mirror planes), off the grid points. The integral of atom
    A's own Gaussian over A's basin follows from erf and must match to the voxel error."""
    n, length, x0 = 40, 10.0, 1.37
    spacing, points = _grid(n, length)
    centres = [(x0, 5.0, 5.0), (x0 + length / 2, 5.0, 5.0)]
    rho_a = _gaussians(points, centres[:1], [1.0], length)
    rho = rho_a + _gaussians(points, centres[1:], [1.0], length)
    part = bader_partition(rho, spacing, np.array(centres), method=method)
    dv = float(np.prod(spacing))
    total_a = rho_a.sum() * dv
    expected = _slab_fraction(x0 - length / 4, x0 + length / 4, x0, length)
    got = part.integrate(rho_a, dv)[0] / total_a
    assert got == pytest.approx(expected, abs=2e-3)
    charges = part.integrate(rho, dv)
    assert charges.sum() == pytest.approx(rho.sum() * dv, rel=1e-12)
    assert charges[0] == pytest.approx(charges[1], rel=5e-3)


def test_bcc_diagonal_basins_are_voronoi_cells():
    """Identical Gaussians on a bcc lattice: every Voronoi face is a mirror plane, so the
    Bader basins are the Voronoi cells (truncated octahedra, bonds along the diagonal).
    The near-grid method must follow them more closely than the on-grid method."""
    n, length = 40, 6.0
    spacing, points = _grid(n, length)
    centres = np.array([(0.3, 0.2, 0.1), (3.3, 3.2, 3.1)])
    rho = _gaussians(points, centres, [1.0, 1.0], length, sigma=1.0)
    d = points[None] - centres[:, :, None, None, None]
    d -= np.rint(d / length) * length
    voronoi = np.argmin((d**2).sum(1), axis=0)
    wrong = {}
    for method in ("near-grid", "on-grid"):
        part = bader_partition(rho, spacing, centres, method=method)
        wrong[method] = float(np.mean(part.atom_of_point != voronoi))
    assert wrong["near-grid"] < 0.02
    assert wrong["near-grid"] < wrong["on-grid"]


def test_unequal_pair_boundary_moves_to_the_smaller_atom():
    """Amplitudes 6:1: the boundary on the bond axis sits at the density minimum (a 1D
    root, not the midpoint). Voronoi (midpoint) assignment is the wrong model: it must be
    rejected by the same check that the Bader partition passes."""
    n, length = 48, 12.0
    spacing, points = _grid(n, length)
    a, b = (3.0, 6.0, 6.0), (7.0, 6.0, 6.0)
    rho = _gaussians(points, [a, b], [6.0, 1.0], length, sigma=1.0)

    def slope(x):  # d rho / dx on the axis (nearest images only; others are ~1e-7)
        return -(x - a[0]) * 6.0 * math.exp(-((x - a[0]) ** 2) / 2) - (x - b[0]) * math.exp(
            -((x - b[0]) ** 2) / 2
        )

    boundary = brentq(slope, a[0] + 0.5, b[0] - 0.5)
    assert boundary > 5.0 + 2 * spacing[0]  # clearly away from the midpoint
    part = bader_partition(rho, spacing, np.array([a, b]))
    j = k = int(round(6.0 / spacing[0]))
    line = part.atom_of_point[:, j, k]
    x = np.arange(n) * spacing[0]
    between = (x > a[0]) & (x < b[0])
    bader_edge = x[between][line[between] == 0].max()
    assert abs(bader_edge - boundary) <= spacing[0]
    voronoi_edge = 5.0 - 1e-9
    assert abs(voronoi_edge - boundary) > spacing[0]


def test_shell_maxima_go_to_their_atom():
    """A density with a ring of maxima around each nucleus (like a valence pseudo-density):
    every maximum is given to its nearest atom and the two basins hold equal charge."""
    n, length = 40, 12.0
    spacing, points = _grid(n, length)
    centres = np.array([(3.0, 6.0, 6.0), (9.0, 6.0, 6.0)])
    rho = np.zeros(points.shape[1:])
    for c in centres:
        d = points - c[:, None, None, None]
        d -= np.rint(d / length) * length
        r2 = (d**2).sum(0)
        rho += r2 * np.exp(-r2 / 1.5)
    part = bader_partition(rho, spacing, centres)
    assert len(part.maxima) > 2  # many maxima on the shells ...
    assert part.maximum_distance.max() < 2.5  # ... all near an atom
    charges = part.integrate(rho, float(np.prod(spacing)))
    assert charges[0] == pytest.approx(charges[1], rel=1e-3)


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match="unknown Bader method"):
        bader_partition(np.ones((4, 4, 4)), np.ones(3), np.zeros((1, 3)), method="weight")


def test_cube_round_trip_and_layout(tmp_path):
    """Values, grid and atoms survive a write/read; the first index is the slowest."""
    rng = np.random.default_rng(3)
    data = rng.normal(size=(6, 4, 3))
    cube = Cube(data=data, origin=np.zeros(3), voxel=np.diag([0.5, 0.25, 0.2]),
                numbers=np.array([18, 36]), positions=np.array([[0.1, 0.2, 0.3], [1.0, 0.5, 0.4]]))
    write_cube(tmp_path / "a.cube", cube)
    back = read_cube(tmp_path / "a.cube")
    np.testing.assert_allclose(back.data, data, rtol=1e-15)
    np.testing.assert_allclose(back.lengths, [3.0, 1.0, 0.6])
    assert back.numbers.tolist() == [18, 36]
    text = (tmp_path / "a.cube").read_text().splitlines()
    assert float(text[8].split()[1]) == pytest.approx(data[0, 0, 1], rel=1e-15)
    (tmp_path / "b.cube").write_text("\n".join(text[:-1]) + "\n")
    with pytest.raises(ValueError, match="truncated"):
        read_cube(tmp_path / "b.cube")


def test_hartree_potential_of_gaussians_matches_analytic_energy():
    """A unit Gaussian charge inside an opposite, wider one (same centre): the neutral,
    spherical pair has no multipoles, so periodic images do not interact and
    E_H = sqrt(a/2pi) + sqrt(b/2pi) - 2 sqrt(ab/(pi(a+b))) exactly (atomic units)."""
    n, length, a, b = 64, 16.0, 2.0, 0.5
    spacing = np.full(3, length / n)
    pos = np.array([[7.3, 8.1, 8.6]])
    narrow = gaussian_cores((n, n, n), spacing, pos, np.array([1.0]), np.array([a]))
    wide = gaussian_cores((n, n, n), spacing, pos, np.array([1.0]), np.array([b]))
    dv = float(np.prod(spacing))
    assert narrow.sum() * dv == pytest.approx(1.0, abs=1e-10)
    rho = narrow - wide
    energy = 0.5 * np.sum(rho * hartree_potential(rho, spacing)) * dv
    self_terms = math.sqrt(a / (2 * math.pi)) + math.sqrt(b / (2 * math.pi))
    cross = 2 * math.sqrt(a * b / (math.pi * (a + b)))
    assert energy == pytest.approx(self_terms - cross, abs=1e-7)
    assert abs(energy - (self_terms + cross)) > 1.0  # a sign error would be caught


# -- real CP2K ---------------------------------------------------------------------------
needs_cp2k = pytest.mark.skipif(
    shutil.which("cp2k.psmp") is None,
    reason="cp2k.psmp not on PATH (apt-get install cp2k, or make setup)",
)


def tiny_argon() -> Atoms:
    """Three Ar atoms in a 6.5 A periodic box at liquid-like distances (~3.6-3.8 A)."""
    positions = [(0.4, 0.5, 0.6), (3.9, 0.9, 0.3), (2.0, 3.6, 1.1)]
    return Atoms("Ar3", positions=positions, cell=[6.5, 6.5, 6.5], pbc=True)


@pytest.mark.slow
@needs_cp2k
def test_cp2k_frame_partition_adds_up(tmp_path):
    from toolkit.reference.bader import analyse_frame
    from toolkit.reference.dft import DftSettings, Launcher, run_single_point

    atoms = tiny_argon()
    settings = DftSettings(cutoff=200.0, rel_cutoff=40.0, vdw=None)
    result = run_single_point(atoms, tmp_path, settings, Launcher(np=1, omp_threads=1))
    basins = analyse_frame(tmp_path, result)
    checks = basins["checks"]
    # valence electrons: 8 per Ar for GTH-PBE-q8; the cube's 5 digits cost ~1e-5 e
    assert checks["electrons_grid"] == pytest.approx(24.0, abs=2e-3)
    assert sum(basins["basin_electrons"]) == pytest.approx(24.0, abs=2e-3)
    # each basin holds a neutral Ar atom to a few hundredths of an electron
    np.testing.assert_allclose(basins["basin_net_charge"], 0.0, atol=0.05)
    # grid Hartree energy of (valence + Gaussian cores) vs CP2K's printed value
    assert abs(checks["hartree_grid_minus_printed_eV"]) < 3e-3 * len(atoms)
    assert abs(checks["self_energy_analytic_minus_printed_eV"]) < 1e-8
    assert checks["core_cube_max_abs_error"] < 1e-3
    assert checks["max_attractor_distance_A"] < 0.2
    # the components parsed from CP2K's output add up to the total CP2K printed (a check of
    # the parser against CP2K's own sum, not of a sum against itself)
    comps = result["components_hartree"]
    parts = sum(value for key, value in comps.items() if key != "total")
    assert parts == pytest.approx(comps["total"], abs=1e-8)
    assert abs(parts - comps["total"] + comps["hartree"]) > 1.0  # the Hartree part counts
    # the grid basins need only a small correction to add up to CP2K's E_es
    assert abs(basins["grid_mismatch_eV"]) < 3e-3 * len(atoms)
    assert result["electrostatic_energy"] == basins["electrostatic_energy_eV"]
    # three equivalent-ish neutral atoms: basin energies agree to well under 1%
    per_atom = np.array(basins["basin_electrostatic_eV"])
    assert np.ptp(per_atom) < 0.01 * abs(per_atom.mean())
