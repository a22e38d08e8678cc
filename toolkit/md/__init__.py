"""MD with a trained potential or the classical reference, in LAMMPS.

- :mod:`~toolkit.md.inputs`: the run's settings and its hand-runnable LAMMPS input;
- :mod:`~toolkit.md.runner`: executes it in chunks with a stability monitor (blow-ups are
  diagnosed in one line), Ctrl-C, summary; the comparison with the reference;
- :mod:`~toolkit.md.analysis`: dumps, g(r), NVE drift, wall contacts;
- :mod:`~toolkit.md.calculator`: an ASE calculator evaluating a potential through LAMMPS.
"""

from toolkit.md.inputs import MDRun, PairModel, input_text, load_pair_model
from toolkit.md.runner import MDInstabilityError, MDResult, compare_with_reference, run_md

__all__ = ["MDInstabilityError", "MDResult", "MDRun", "PairModel", "compare_with_reference",
           "input_text", "load_pair_model", "run_md"]
