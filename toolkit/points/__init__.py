"""Reference points off the atoms (CEMT): E = sum over points p of f_type(p)(B_p).

The Chemical Environment Modeling Theory writes the energy as a sum over reference points
placed anywhere, not only at atoms. Here a point type is part of the descriptor spec
(:class:`toolkit.descriptor_spec.PointType`: bond centres of one element pair, or a regular
grid), and every point is a LAMMPS pseudo-atom of SNAP weight 0 that sees the real atoms.

- :mod:`~toolkit.points.placement`: bond centres (minimum image) and grids in periodic boxes;
  point types derived from the atom spec (:func:`~toolkit.points.placement.bond_types`,
  :func:`~toolkit.points.placement.grid_type`);
- :mod:`~toolkit.points.descriptors`: their SNAP descriptors through LAMMPS, in a container
  the batched trainer (toolkit/models/training.py) trains as it is;
- :mod:`~toolkit.points.models`: point energies, half-bond atomic energies;
- :mod:`~toolkit.points.pair_energy`: exact bond energies of the LJ reference;
- :mod:`~toolkit.points.dft_cubes`, :mod:`~toolkit.points.energy_density`: CP2K runs that keep
  their cubes, and the electrostatic energy density on grid points.

Studies and figures: :mod:`toolkit.studies.reference_points`; CLI: ``aetk points``; the
measurements: docs/reference_points.md. Energy-only: point models are not exported to LAMMPS
pair styles (ML-IAP evaluates atoms), so there is no MD with them.
"""
