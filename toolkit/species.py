"""Element data for the noble-gas liquids, each number with its source.

Units are LAMMPS ``metal``: eV, Angstrom, g/mol, and g/cm^3 for mass densities.

Sources
-------
- Masses: IUPAC 2021 standard atomic weights (abridged to 3 decimals).
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
    symbol: str
    mass: float  # g/mol
    lj_sigma: float  # Angstrom
    lj_epsilon: float  # eV
    atm_c9: float  # eV A^9
    liquid_density_120k: float  # g/cm^3

    @property
    def molar_volume(self) -> float:
        """Liquid molar volume at 120 K in cm^3/mol."""
        return self.mass / self.liquid_density_120k

    @property
    def dispersion_c6(self) -> float:
        """C6 = 4 eps sigma^6 of the LJ tail, eV A^6."""
        return 4.0 * self.lj_epsilon * self.lj_sigma**6


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


def element(symbol: str) -> Element:
    try:
        return ELEMENTS[symbol]
    except KeyError:
        raise UnknownSpeciesError(
            f"unknown element {symbol!r}; this toolkit knows {sorted(ELEMENTS)}. "
            "Add it to toolkit/species.py with sourced parameters."
        ) from None


def system_counts(system: str) -> dict[str, int] | None:
    """Atom counts of a system named by counts (``Ar24Kr8``), or None for a named liquid."""
    if system in SYSTEMS:
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

    Systems are the paper's liquids (``Ar``, ``Kr``, ``ArKr`` = 50/50) or atom counts
    (``Ar24Kr8``: 24 Ar and 8 Kr), see :func:`mixture_name`.
    """
    if system in SYSTEMS:
        return SYSTEMS[system]
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
    molar_volume = sum(x * element(s).molar_volume for s, x in composition.items())  # cm^3/mol
    return AVOGADRO / (molar_volume * 1e24)


def lorentz_berthelot(a: str, b: str) -> tuple[float, float]:
    """(epsilon eV, sigma A) of the a-b pair: arithmetic sigma, geometric epsilon."""
    ea, eb = element(a), element(b)
    return math.sqrt(ea.lj_epsilon * eb.lj_epsilon), 0.5 * (ea.lj_sigma + eb.lj_sigma)


def atm_triple_c9(a: str, b: str, c: str) -> float:
    """C9 of a hetero-triple (eV A^9): geometric mean of the homo-triple values."""
    return (element(a).atm_c9 * element(b).atm_c9 * element(c).atm_c9) ** (1.0 / 3.0)


def snap_weight(symbol: str, reference: str = "Ar") -> float:
    """Per-species SNAP density weight, sqrt(C6_s / C6_ref).

    Why: at long range the pair energy is -C6_ij / r^6 with C6_ij ~ sqrt(C6_i C6_j), so a
    neighbour of species j contributes to an atom's energy in proportion to sqrt(C6_j).
    Weighting the neighbour density the same way makes the bispectrum of a mixed
    environment closer to what the energy sees, and makes Ar and Kr neighbours differ.
    """
    return math.sqrt(element(symbol).dispersion_c6 / element(reference).dispersion_c6)
