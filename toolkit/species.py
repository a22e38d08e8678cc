"""Element data, each number with its source; classical (LJ/ATM) parameters for Ar and Kr.

Units are LAMMPS ``metal``: eV, Angstrom, g/mol, and g/cm^3 for mass densities.

Any element: :func:`element` knows every chemical symbol, with its mass and atomic number
from ASE (``ase.data``: IUPAC standard atomic weights). The classical reference parameters
(LJ, ATM, liquid density) exist for Ar and Kr only (:func:`classical_element`); asking for
them for another element is refused in one line that points to ``--reference lammps:FILE``
(any LAMMPS potential as the reference, toolkit/reference/lammps_reference.py).

Sources
-------
- Masses of Ar and Kr: IUPAC 2021 standard atomic weights (abridged to 3 decimals); equal
  to ASE's values. Other elements: ``ase.data.atomic_masses``.
- Lennard-Jones parameters: Rutkai, Thol, Span, Vrabec, "How well does the Lennard-Jones
  potential represent the thermodynamic properties of noble gases?", Mol. Phys. 115,
  1104 (2017), Table 1: Ar sigma = 3.3952 A, epsilon/k_B = 116.79 K; Kr sigma = 3.6274 A,
  epsilon/k_B = 162.58 K. One consistent fit for both elements, so mixing is meaningful.
- Axilrod-Teller-Muto C9 (triple-dipole) coefficients: Kumar and Meath, Mol. Phys. 54, 823
  (1985), dipole oscillator strength distributions: Ar 517.2 a.u., Kr 1572 a.u.
  (1 a.u. = E_h a_0^9 = 0.088516 eV A^9). Hetero-triples use the geometric mean, an
  approximation good to a few per cent for the rare gases.
- Liquid densities at 120 K: saturated-liquid densities from the reference equations of
  state (Ar: Tegeler, Span, Wagner, J. Phys. Chem. Ref. Data 28, 779 (1999);
  Kr: Lemmon and Span, J. Chem. Eng. Data 51, 785 (2006)), rounded to 3 digits:
  Ar 1.16 g/cm^3, Kr 2.41 g/cm^3 (Kr at 120 K sits just above its normal boiling point).
  The equimolar mixture is taken at ideal mixing of molar volumes; the paper does not
  state its densities.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from toolkit.errors import AetkError

BOLTZMANN_EV_PER_K = 8.617333262e-5
HARTREE_BOHR9_IN_EV_ANGSTROM9 = 27.211386245988 * 0.529177210903**9
AVOGADRO = 6.02214076e23


@dataclass(frozen=True)
class Element:
    """An element; the classical fields are None except for Ar and Kr (see module doc)."""

    symbol: str
    mass: float  # g/mol
    lj_sigma: float | None = None  # Angstrom
    lj_epsilon: float | None = None  # eV
    atm_c9: float | None = None  # eV A^9
    liquid_density_120k: float | None = None  # g/cm^3

    @property
    def atomic_number(self) -> int:
        from ase.data import atomic_numbers

        return int(atomic_numbers[self.symbol])

    @property
    def classical(self) -> bool:
        """True when LJ, ATM and liquid-density data exist (Ar, Kr)."""
        return self.lj_sigma is not None

    @property
    def molar_volume(self) -> float:
        """Liquid molar volume at 120 K in cm^3/mol."""
        return self.mass / self.liquid_density_120k

    @property
    def dispersion_c6(self) -> float:
        """C6 = 4 eps sigma^6 of the LJ tail, eV A^6."""
        return 4.0 * self.lj_epsilon * self.lj_sigma**6


# The elements with classical reference parameters (the noble-gas liquids of the paper).
ELEMENTS: dict[str, Element] = {
    "Ar": Element(
        symbol="Ar",
        mass=39.948,
        lj_sigma=3.3952,
        lj_epsilon=116.79 * BOLTZMANN_EV_PER_K,
        atm_c9=517.2 * HARTREE_BOHR9_IN_EV_ANGSTROM9,
        liquid_density_120k=1.16,
    ),
    "Kr": Element(
        symbol="Kr",
        mass=83.798,
        lj_sigma=3.6274,
        lj_epsilon=162.58 * BOLTZMANN_EV_PER_K,
        atm_c9=1572.0 * HARTREE_BOHR9_IN_EV_ANGSTROM9,
        liquid_density_120k=2.41,
    ),
}

# The three liquids of the paper: name -> composition (mole fractions, in type order).
SYSTEMS: dict[str, dict[str, float]] = {
    "Ar": {"Ar": 1.0},
    "Kr": {"Kr": 1.0},
    "ArKr": {"Ar": 0.5, "Kr": 0.5},
}
_FORMULA = re.compile(r"([A-Z][a-z]?)(\d+)")


class UnknownSpeciesError(AetkError, ValueError):
    pass


def is_element(symbol: str) -> bool:
    """True for a chemical symbol (H ... Og), as ASE spells it."""
    from ase.data import atomic_numbers

    return isinstance(symbol, str) and symbol != "X" and symbol in atomic_numbers


def element(symbol: str) -> Element:
    """Any element: Ar and Kr with their classical parameters, others with mass only."""
    if symbol in ELEMENTS:
        return ELEMENTS[symbol]
    if not is_element(symbol):
        raise UnknownSpeciesError(
            f"unknown element {symbol!r}: not a chemical symbol (write it as in the periodic "
            "table, e.g. Si, Cu, Ar)")
    from ase.data import atomic_masses, atomic_numbers

    return Element(symbol=symbol, mass=float(atomic_masses[atomic_numbers[symbol]]))


def classical_element(symbol: str) -> Element:
    """An element with LJ/ATM/density parameters; refused in one line for all but Ar, Kr."""
    found = element(symbol)
    if not found.classical:
        raise UnknownSpeciesError(
            f"no classical LJ/ATM reference for {symbol}: toolkit/species.py has sourced "
            f"parameters for {sorted(ELEMENTS)} only; use any LAMMPS potential as the "
            "reference instead (aetk generate --reference lammps:FILE, e.g. lammps:si-sw)")
    return found


def system_counts(system: str) -> dict[str, int] | None:
    """Atom counts of a system named by counts (``Ar24Kr8``), or None for a named liquid or
    a bare element symbol (``Si``: a pure system of any size)."""
    if system in SYSTEMS or is_element(system):
        return None
    parts = _FORMULA.findall(system)
    if not parts or "".join(f"{s}{n}" for s, n in parts) != system:
        raise UnknownSpeciesError(
            f"unknown system {system!r}; choose one of {sorted(SYSTEMS)} or give atom counts "
            "such as Ar24Kr8")
    counts: dict[str, int] = {}
    for symbol, count in parts:
        element(symbol)
        if symbol in counts or int(count) < 1:
            raise UnknownSpeciesError(f"system {system!r}: each element once, with a count >= 1")
        counts[symbol] = int(count)
    return counts


def system_composition(system: str) -> dict[str, float]:
    """Mole fractions of a system, elements in the order of its name.

    Systems are the paper's liquids (``Ar``, ``Kr``, ``ArKr`` = 50/50), any element symbol
    (``Si``: pure), or atom counts (``Ar24Kr8``: 24 Ar and 8 Kr), see :func:`mixture_name`.
    """
    if system in SYSTEMS:
        return SYSTEMS[system]
    if is_element(system):
        return {system: 1.0}
    counts = system_counts(system)
    total = sum(counts.values())
    return {s: n / total for s, n in counts.items()}


def mixture_name(fractions: dict[str, float], natoms: int) -> str:
    """The counts name (``Ar81Kr27``) of ``natoms`` atoms with these mole fractions.

    Counts are rounded; elements with no atom are left out, so a fraction of 0 gives the
    pure liquid (``Ar108``).
    """
    if any(not 0.0 <= x <= 1.0 for x in fractions.values()) or \
            abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise UnknownSpeciesError(f"mole fractions {fractions} must lie in [0, 1] and sum to 1")
    counts = {s: round(x * natoms) for s, x in fractions.items()}
    last = list(counts)[-1]
    counts[last] = natoms - sum(n for s, n in counts.items() if s != last)
    return "".join(f"{s}{n}" for s, n in counts.items() if n > 0)


def number_density(composition: dict[str, float]) -> float:
    """Atoms per A^3 of the liquid at 120 K, ideal mixing of molar volumes."""
    molar_volume = sum(x * classical_element(s).molar_volume  # cm^3/mol
                       for s, x in composition.items())
    return AVOGADRO / (molar_volume * 1e24)


def lorentz_berthelot(a: str, b: str) -> tuple[float, float]:
    """(epsilon eV, sigma A) of the a-b pair: arithmetic sigma, geometric epsilon."""
    ea, eb = classical_element(a), classical_element(b)
    return math.sqrt(ea.lj_epsilon * eb.lj_epsilon), 0.5 * (ea.lj_sigma + eb.lj_sigma)


def atm_triple_c9(a: str, b: str, c: str) -> float:
    """C9 of a hetero-triple (eV A^9): geometric mean of the homo-triple values."""
    return (classical_element(a).atm_c9 * classical_element(b).atm_c9
            * classical_element(c).atm_c9) ** (1.0 / 3.0)


def snap_weight(symbol: str, reference: str = "Ar") -> float:
    """Per-species SNAP density weight, sqrt(C6_s / C6_ref).

    Why: at long range the pair energy is -C6_ij / r^6 with C6_ij ~ sqrt(C6_i C6_j), so a
    neighbour of species j contributes to an atom's energy in proportion to sqrt(C6_j).
    Weighting the neighbour density the same way makes the bispectrum of a mixed
    environment closer to what the energy sees, and makes Ar and Kr neighbours differ.
    """
    return math.sqrt(classical_element(symbol).dispersion_c6
                     / classical_element(reference).dispersion_c6)
