"""Results tables as CSV: one writer and one reader with typed columns.

Every table the toolkit writes (sweep results, transfer results, per-atom energies, MD
thermo) goes through :func:`write_table`: a header of named columns, floats as their
shortest exact ``repr`` (so a table read back gives bit-identical numbers), written
atomically. :func:`read_table` parses each column by its declared type: integer and text
columns by name, every other column as float (an empty cell is NaN).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import numpy as np

from toolkit.errors import AetkError


class TableError(AetkError, ValueError):
    """A table file is missing, malformed or lacks a column the caller needs."""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return repr(float(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def table_text(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """CSV text of ``rows`` in ``columns`` order; a row may lack a column (empty cell) but
    may not carry one the header does not name."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    known = set(columns)
    for row in rows:
        extra = set(row) - known
        if extra:
            raise ValueError(f"row has columns {sorted(extra)} that the table does not name")
        writer.writerow([_cell(row.get(name)) for name in columns])
    return buffer.getvalue()


def write_table(path: str | Path, rows: Iterable[dict], columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV atomically (temp file + rename); returns ``path``."""
    from toolkit.data import atomic_write_text

    atomic_write_text(path, table_text(rows, columns))
    return Path(path)


def _parse(value: str, kind: str, path: Path, name: str) -> object:
    if kind == "text":
        return value
    try:
        if kind == "int":
            return int(value)
        return float(value) if value != "" else math.nan
    except ValueError:
        raise TableError(f"{path}: column {name!r} holds {value!r}, not {kind} (the table "
                         "is damaged or not one the toolkit wrote)") from None


def read_table(path: str | Path, ints: Collection[str] = (), texts: Collection[str] = (),
               require: Collection[str] = ()) -> list[dict]:
    """Rows of a CSV table as dicts: ``ints`` columns as int, ``texts`` as str, the rest float.

    ``require``: columns that must be present (a one-line :class:`TableError` otherwise).
    """
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such table")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in require if c not in header]
        if missing:
            raise TableError(f"{path}: no column(s) {missing}; not the table expected here")
        kinds = {name: "int" if name in ints else "text" if name in texts else "float"
                 for name in header}
        return [{name: _parse(value, kinds[name], path, name) for name, value in row.items()}
                for row in reader]


def read_columns(path: str | Path, ints: Collection[str] = (), texts: Collection[str] = (),
                 require: Collection[str] = ()) -> dict[str, np.ndarray]:
    """The table as one numpy array per column (int64, str or float64 by declared type)."""
    rows = read_table(path, ints, texts, require)
    if not rows:
        raise TableError(f"{path}: the table has no rows")
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}
