"""aetk: machine-learned atomic energies of noble-gas liquids, LAMMPS-native."""

__version__ = "0.1.0"
