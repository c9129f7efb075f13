"""Reading crystal inputs: CIF folders and files, CSV and JSON tables, the example crystals.

:func:`read_input` picks the reader from the path. Problems with the input as a whole raise
:class:`FileNotFoundError` or :class:`ValueError` with a one-line message naming the file;
rows that cannot be read are collected in :attr:`InputTable.errors`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = [
    "ID_COLUMNS",
    "InputTable",
    "load_json_table",
    "read_cif_file",
    "read_cif_folder",
    "read_csv_table",
    "read_example",
    "read_id_prop",
    "read_input",
    "read_json_table",
    "short_error",
]
MAX_MESSAGE = 400  # characters of an error message kept on one line
# Columns that identify rows, in order of preference.
ID_COLUMNS = ("id", "material_id", "jid", "name", "jarvis_index")
# Columns that make a JSON table readable as crystals or formulas.
_TABLE_COLUMNS = ("structure", "cif", "composition", "formula")
_FORMATS_HINT = (
    "expected a matminer store_dataframe_as_json file or a pandas DataFrame.to_json table with "
    "a 'structure', 'cif', 'composition' or 'formula' column (a CSV with a 'formula' or 'cif' "
    "column, or a folder of .cif files, also work)"
)


# ------------------------------------------------------------------------------------------
# Messages
# ------------------------------------------------------------------------------------------


def short_error(error: BaseException | str, max_chars: int = MAX_MESSAGE) -> str:
    """One line for an exception, or for the traceback text matminer stores in error columns.

    Parameters
    ----------
    error : BaseException or str
        An exception (its message is used, or its type name when the message is empty), or a
        traceback text whose last exception line is kept without its ``SomeError:`` prefix.
    max_chars : int, default 400
        Longer messages are cut and end in ``...``.

    Returns
    -------
    str
        The message on one line, whitespace runs collapsed.
    """
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
    else:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        # The exception line of a traceback is the last one that is not matminer's skip hint.
        lines = [line for line in lines if not line.startswith("TO SKIP THESE ERRORS")]
        text = lines[-1] if lines else str(error)
        head, sep, tail = text.partition(": ")
        if sep and head.replace(".", "").replace("_", "").isalnum() and " " not in head:
            text = tail  # drop the "SomeError: " prefix
    text = text.split("\nTO SKIP THESE ERRORS")[0]
    # Embedding errors list every covered symbol; the count is enough on one line.
    text = re.sub(r"(covers \d+ elements): [A-Z][a-z]?(, [A-Z][a-z]?)*", r"\1", text)
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


# ------------------------------------------------------------------------------------------
# Reading inputs
# ------------------------------------------------------------------------------------------


@dataclass
class InputTable:
    """Rows to featurize or predict, read from one input.

    Attributes
    ----------
    frame : pandas.DataFrame
        Columns ``id``, ``formula``, ``composition`` (pymatgen Composition or None) and
        ``structure`` (pymatgen Structure or None), plus ``target`` when targets were read.
    kind : str
        ``"cif-folder"``, ``"cif"``, ``"csv"``, ``"json"`` or ``"example"``.
    has_structures : bool
        Whether the rows are crystal structures (else compositions only).
    where : list of str
        Where each row comes from, for messages (``"file x.cif"``, ``"id mp-1"``).
    errors : dict of int to str
        Row positions that could not be read, and why.
    target_errors : dict of int to str
        Row positions whose target is missing or not a finite number (their ``target`` is NaN),
        and why; only training needs targets, so these are kept apart from ``errors``.
    """

    frame: pd.DataFrame
    kind: str
    has_structures: bool
    where: list[str]
    errors: dict[int, str] = field(default_factory=dict)
    target_errors: dict[int, str] = field(default_factory=dict)

    def describe(self, position: int) -> str:
        """``"row 3 (file x.cif)"``: a row position (0-based) for messages."""
        return f"row {position + 1} ({self.where[position]})"


_FRAME_COLUMNS = ["id", "formula", "composition", "structure"]


def _progress(iterable: Iterable[Any], enabled: bool, desc: str, unit: str) -> Iterable[Any]:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    # disable=None: tqdm draws only on a terminal, so logs and pipes stay clean.
    return tqdm(iterable, disable=None, file=sys.stderr, leave=False, desc=desc, unit=unit)


def read_cif_file(path: str | os.PathLike[str]):
    """A pymatgen Structure from a CIF file (pymatgen's parser warnings silenced)."""
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(str(path))


def _parse_cif_text(text: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt="cif")


def _to_structure(value: Any, base: Path):
    """A Structure from a Structure, a pymatgen dict, CIF text or a CIF path relative to base."""
    from pymatgen.core import IStructure, Structure

    if isinstance(value, IStructure):
        return value
    if isinstance(value, dict):
        return Structure.from_dict(value)
    if not isinstance(value, str):
        raise TypeError(f"not a structure: {type(value).__name__}")
    if not value.strip():
        raise ValueError("empty CIF value")
    if len(value) < 1024 and "\n" not in value:
        candidate = (base / value).expanduser()
        if candidate.is_file():
            return read_cif_file(candidate)
    return _parse_cif_text(value)


def _structure_row(identifier: Any, structure) -> dict[str, Any]:
    return {
        "id": identifier,
        "formula": structure.composition.reduced_formula if structure is not None else None,
        "composition": structure.composition if structure is not None else None,
        "structure": structure,
    }


def parse_targets(values: Iterable[Any]) -> tuple[Any, dict[int, str]]:
    """Target values as floats, and the positions of the missing or non-numeric ones.

    Returns
    -------
    targets : numpy.ndarray
        float64; NaN where a value is missing, not a number or not finite.
    errors : dict of int to str
        Position -> why (``"target 'abc' is not a number"``, ``"no target value"``).
    """
    import numpy as np

    values = list(values)
    out = np.full(len(values), np.nan)
    errors: dict[int, str] = {}
    for i, raw in enumerate(values):
        text = raw.strip() if isinstance(raw, str) else raw
        if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
            errors[i] = "no target value"
            continue
        try:
            value = float(text)
        except (TypeError, ValueError):
            errors[i] = f"target {raw!r} is not a number"
            continue
        if not np.isfinite(value):
            errors[i] = f"target {raw!r} is not finite"
            continue
        out[i] = value
    return out, errors


def read_id_prop(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """The ``id_prop.csv`` of a CGCNN data folder: one ``id,target`` line per structure.

    Returns
    -------
    pandas.DataFrame
        Columns ``id`` (str) and ``target`` (float; NaN where not a number). Its
        ``attrs["target_errors"]`` maps the positions of missing or non-numeric targets to why.

    Raises
    ------
    ValueError
        When the file is empty, has fewer than two columns, or starts with a header line.
    """
    import pandas as pd

    path = Path(folder) / "id_prop.csv"
    try:
        table = pd.read_csv(path, header=None, dtype={0: str}, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; expected lines 'id,target'") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {short_error(exc)}") from None
    if table.shape[1] < 2:
        raise ValueError(
            f"{path} must have at least two columns (id,target), found {table.shape[1]}"
        )
    first = table.iloc[0, 1]
    if isinstance(first, str):
        try:
            float(first)
        except ValueError:
            raise ValueError(
                f"{path} looks like it has a header ({table.iloc[0].tolist()}); id_prop.csv "
                "has no header: one 'id,target' line per structure"
            ) from None
    targets, errors = parse_targets(table.iloc[:, 1])
    out = pd.DataFrame({"id": table.iloc[:, 0].astype(str).str.strip(), "target": targets})
    out.attrs["target_errors"] = errors
    return out


def read_cif_folder(
    folder: str | os.PathLike[str],
    *,
    use_id_prop: bool = False,
    limit: int | None = None,
    progress: bool = False,
) -> InputTable:
    """Every ``.cif`` file of a folder, or (``use_id_prop``) the files its id_prop.csv lists.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder.
    use_id_prop : bool, default False
        When the folder has an ``id_prop.csv``, read ``ID.cif`` for each of its lines, in its
        order, and its targets into a ``target`` column.
    limit : int, optional
        Only the first ``limit`` structures.
    progress : bool, default False
        Show a progress bar on stderr (when it is a terminal).

    Raises
    ------
    ValueError
        When the folder has no ``.cif`` file (and no id_prop.csv is used) or a bad id_prop.csv.
    """
    import pandas as pd

    folder = Path(folder)
    targets = None
    target_errors: dict[int, str] = {}
    if use_id_prop and (folder / "id_prop.csv").exists():
        id_prop = read_id_prop(folder)
        ids = list(id_prop["id"])
        targets = list(id_prop["target"])
        target_errors = dict(id_prop.attrs["target_errors"])
        paths = [folder / f"{i}.cif" for i in ids]
    else:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".cif")
        if not paths:
            raise ValueError(f"no .cif files in {folder}")
        ids = [p.stem for p in paths]
    if limit is not None:
        paths, ids = paths[:limit], ids[:limit]
        targets = None if targets is None else targets[:limit]
        target_errors = {i: why for i, why in target_errors.items() if i < limit}
    rows, errors = [], {}
    for position, path in enumerate(_progress(paths, progress, "reading CIF files", "file")):
        structure = None
        try:
            if not path.exists():
                raise FileNotFoundError(f"{path.name} not found in {folder}")
            structure = read_cif_file(path)
        except Exception as exc:  # any parser failure becomes a row error
            errors[position] = f"cannot read CIF: {short_error(exc)}"
        rows.append(_structure_row(ids[position], structure))
    frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
    if targets is not None:
        frame["target"] = targets
    where = [f"file {p.name}" for p in paths]
    return InputTable(frame, "cif-folder", True, where, errors, target_errors)


def _pick_id(frame: pd.DataFrame) -> tuple[list[Any], str | None]:
    for column in ID_COLUMNS:
        if column in frame.columns:
            return list(frame[column]), column
    return [str(i) for i in frame.index], None


def _composition_rows(
    values: Iterable[Any], ids: list[Any], column: str, *, keep_text: bool
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """Rows of compositions; ``keep_text`` keeps the formula as written, else reduced."""
    from pymatgen.core import Composition

    rows, errors = [], {}
    for position, value in enumerate(values):
        composition = None
        try:
            if isinstance(value, Composition):
                composition = value
            else:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"empty {column}")
                composition = Composition(value)
            if composition.num_atoms <= 0:
                raise ValueError(f"{column} {value!r} has no atoms")
        except Exception as exc:
            errors[position] = f"cannot parse {column} {value!r}: {short_error(exc)}"
            composition = None
        if keep_text:
            formula = value
        else:
            formula = composition.reduced_formula if composition is not None else None
        rows.append(
            {"id": ids[position], "formula": formula, "composition": composition, "structure": None}
        )
    return rows, errors


def _structure_rows(
    values: Iterable[Any], ids: list[Any], base: Path, prefix: str, progress: bool
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    rows, errors = [], {}
    for position, value in enumerate(_progress(values, progress, "parsing structures", "row")):
        structure = None
        try:
            structure = _to_structure(value, base)
        except Exception as exc:  # any parser failure becomes a row error
            errors[position] = f"{prefix}: {short_error(exc)}"
        rows.append(_structure_row(ids[position], structure))
    return rows, errors


def _add_target(
    frame: pd.DataFrame, table: pd.DataFrame, target: str | None, path: Path
) -> dict[int, str]:
    """Read column ``target`` into ``frame["target"]``; the rows without a usable value."""
    import pandas as pd

    if target is None:
        return {}
    if target not in table.columns:
        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        raise ValueError(f"target column {target!r} not in {path}; numeric columns: {numeric}")
    frame["target"], errors = parse_targets(table[target])
    return errors


def read_csv_table(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> InputTable:
    """A CSV with a ``cif`` column (CIF text or a path relative to the CSV) or a ``formula`` one.

    Column names are matched case-insensitively; ``cif`` wins when both are present. Rows are
    identified by the first of ``id``, ``material_id``, ``jid``, ``name``, ``jarvis_index``
    present, else by their line number.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file (``.csv`` or ``.csv.gz``).
    target : str, optional
        A numeric column to read into ``target``.
    limit : int, optional
        Only the first ``limit`` rows.
    progress : bool, default False
        Show a progress bar on stderr (when it is a terminal).

    Raises
    ------
    ValueError
        When the file cannot be parsed, lacks a ``formula``/``cif`` column or the ``target``
        column, or has no data rows.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_csv(path, nrows=limit)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty; expected a header line and one row per item") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read CSV {path}: {short_error(exc)}") from None
    columns = {str(c).lower(): c for c in table.columns}
    if "cif" not in columns and "formula" not in columns:
        raise ValueError(
            f"{path} needs a 'formula' or a 'cif' column; found columns: {list(table.columns)}"
        )
    if len(table) == 0:
        raise ValueError(f"{path} has a header but no data rows")
    ids, id_column = _pick_id(table)
    if id_column is None:
        ids = [str(i + 1) for i in range(len(table))]
    where = [f"id {i}" if id_column else f"line {n + 2} of {path.name}" for n, i in enumerate(ids)]
    if "cif" in columns:
        rows, errors = _structure_rows(
            table[columns["cif"]], ids, path.parent, "cannot read CIF", progress
        )
    else:
        rows, errors = _composition_rows(table[columns["formula"]], ids, "formula", keep_text=True)
    frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
    target_errors = _add_target(frame, table, target, path)
    return InputTable(frame, "csv", "cif" in columns, where, errors, target_errors)


def _frame_from_json(data: Any) -> pd.DataFrame | None:
    """A DataFrame from decoded JSON in one of pandas' layouts; None when it is not a table."""
    import pandas as pd
    from pymatgen.core import IStructure

    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, list):
        if data and all(isinstance(item, IStructure) for item in data):
            return pd.DataFrame({"structure": data})
        if all(isinstance(item, dict) for item in data):  # orient="records"
            return pd.DataFrame(data)
        return None
    if not isinstance(data, dict):
        return None
    if {"data", "columns", "index"} <= set(data):  # orient="split", matminer's layout
        return pd.DataFrame(data["data"], index=data["index"], columns=data["columns"])
    if "schema" in data and isinstance(data.get("data"), list):  # orient="table"
        frame = pd.DataFrame(data["data"])
        keys = data["schema"].get("primaryKey") if isinstance(data["schema"], dict) else None
        if isinstance(keys, list) and len(keys) == 1 and keys[0] in frame.columns:
            frame = frame.set_index(keys[0])
        return frame
    if data and all(isinstance(value, dict) for value in data.values()):
        inner = set().union(*(value.keys() for value in data.values()))
        if inner & set(_TABLE_COLUMNS) and not set(data) & set(_TABLE_COLUMNS):
            return pd.DataFrame.from_dict(data, orient="index")  # orient="index"
        # orient="columns", DataFrame.to_json's default
        return pd.DataFrame({column: pd.Series(values) for column, values in data.items()})
    return None


def load_json_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A JSON table as a DataFrame, with pymatgen objects decoded.

    Reads matminer's ``store_dataframe_as_json`` files and pandas ``DataFrame.to_json`` output
    in the ``split``, ``records``, ``columns``, ``index`` and ``table`` layouts (structures as
    pymatgen dicts, optionally gzip- or bz2-compressed), and a plain list of structures.
    Objects carrying ``@module``/``@class`` keys are decoded as matminer does; nothing is printed.

    Raises
    ------
    ValueError
        When the file is not valid JSON or not a table in one of those layouts.
    """
    from monty.io import zopen
    from monty.json import MontyDecoder

    path = Path(path)
    try:
        with zopen(str(path), "rb") as handle:
            data = json.load(handle, cls=MontyDecoder)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read JSON {path}: {short_error(exc)}") from None
    frame = _frame_from_json(data)
    if frame is None:
        raise ValueError(f"{path} is not a table this program reads: {_FORMATS_HINT}")
    return frame


def read_json_table(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> InputTable:
    """A JSON table (see :func:`load_json_table`) of structures or compositions.

    The first of the columns ``structure`` (Structure, pymatgen dict or CIF text), ``cif``,
    ``composition`` and ``formula`` present is read.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.json`` / ``.json.gz`` file.
    target : str, optional
        A numeric column to read into ``target``.
    limit : int, optional
        Only the first ``limit`` rows.
    progress : bool, default False
        Show a progress bar on stderr while parsing (when it is a terminal).

    Raises
    ------
    ValueError
        When the file cannot be read, has none of those columns or the ``target`` column, or
        has no rows.
    """
    import pandas as pd

    path = Path(path)
    table = load_json_table(path)
    present = [c for c in _TABLE_COLUMNS if c in table.columns]
    if not present:
        raise ValueError(
            f"{path} needs a 'structure', 'cif', 'composition' or 'formula' column; "
            f"found: {list(table.columns)[:20]}"
        )
    if limit is not None:
        table = table.iloc[:limit]
    if len(table) == 0:
        raise ValueError(f"{path} holds a table with no rows")
    ids, id_column = _pick_id(table)
    where = [f"{id_column or 'index'} {i}" for i in ids]
    column = present[0]
    has_structures = column in ("structure", "cif")
    if has_structures:
        prefix = "bad structure" if column == "structure" else "cannot read CIF"
        rows, errors = _structure_rows(table[column], ids, path.parent, prefix, progress)
    else:
        rows, errors = _composition_rows(table[column], ids, column, keep_text=False)
    frame = pd.DataFrame(rows, columns=_FRAME_COLUMNS)
    target_errors = _add_target(frame, table, target, path)
    return InputTable(frame, "json", has_structures, where, errors, target_errors)


def read_example(limit: int | None = None) -> InputTable:
    """The example crystals that ship with the package (no file, no download)."""
    import pandas as pd

    from crysatom_featurizers.datasets import load_example_structures

    examples = load_example_structures()
    if limit is not None:
        examples = examples.iloc[:limit]
    frame = pd.DataFrame(
        {
            "id": list(examples.index),
            "formula": list(examples["formula"]),
            "composition": [s.composition for s in examples["structure"]],
            "structure": list(examples["structure"]),
        }
    )
    return InputTable(frame, "example", True, [f"example {i}" for i in examples.index])


def read_input(
    source: str | os.PathLike[str] | None,
    *,
    target: str | None = None,
    use_id_prop: bool = False,
    limit: int | None = None,
    progress: bool = False,
) -> InputTable:
    """Read a CIF folder, a ``.cif``, a CSV, a JSON table, or (``source=None``) the examples.

    Parameters
    ----------
    source : str, os.PathLike or None
        A folder of ``.cif`` files, a ``.cif``, a ``.csv``/``.csv.gz`` (see
        :func:`read_csv_table`), a ``.json``/``.json.gz`` (see :func:`read_json_table`), or None
        for the shipped example crystals.
    target : str, optional
        CSV and JSON: a numeric column to read into ``target``.
    use_id_prop : bool, default False
        CIF folders: read the structures and targets its ``id_prop.csv`` lists, when present.
    limit : int, optional
        Only the first ``limit`` rows.
    progress : bool, default False
        Show progress bars on stderr (when it is a terminal).

    Returns
    -------
    InputTable
        The rows, and the rows that could not be read with their messages.

    Raises
    ------
    FileNotFoundError
        When ``source`` does not exist.
    ValueError
        When the input as a whole cannot be used: unknown format, missing columns, no rows.
    """
    if source is None:
        return read_example(limit)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"input {os.fspath(source)} does not exist")
    if path.is_dir():
        return read_cif_folder(path, use_id_prop=use_id_prop, limit=limit, progress=progress)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return read_csv_table(path, target=target, limit=limit, progress=progress)
    if name.endswith((".json", ".json.gz", ".json.bz2")):
        return read_json_table(path, target=target, limit=limit, progress=progress)
    if name.endswith(".cif"):
        import pandas as pd

        structure, errors = None, {}
        try:
            structure = read_cif_file(path)
        except Exception as exc:  # a parser failure is a row error, as in a folder
            errors[0] = f"cannot read CIF: {short_error(exc)}"
        frame = pd.DataFrame([_structure_row(path.stem, structure)], columns=_FRAME_COLUMNS)
        return InputTable(frame, "cif", True, [f"file {path.name}"], errors)
    raise ValueError(
        f"cannot tell the format of {os.fspath(source)}: give a folder of .cif files, a .cif "
        "file, a .csv with a 'formula' or 'cif' column, or a matminer .json/.json.gz"
    )
