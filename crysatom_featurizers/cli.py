"""The ``crysatom`` command line.

Subcommands
-----------
``crysatom embeddings list|show|export``
    Browse the embedding registry and write vectors to CSV or JSON.
``crysatom featurize``
    Element-embedding features of crystals (CIF folder, CSV with a ``formula`` or ``cif``
    column, matminer JSON, or the shipped example crystals) at site, composition or structure
    level, written to CSV or parquet.
``crysatom train`` / ``crysatom predict``
    Fit a :class:`~crysatom_featurizers.estimators.CGCNNRegressor` on a CIF folder with an
    ``id_prop.csv`` (CGCNN convention) or a matminer JSON, save it with joblib, and predict.
``crysatom plot-embedding``
    PCA/t-SNE map, periodic-table heatmap or similarity matrix of an embedding.
``crysatom pretrain``
    Forwards to ``python -m training.pretrain`` in a repository checkout.

Every subcommand prints its options and examples with ``--help``. Errors are reported on one
line (``crysatom: error: ...``) with exit status 1 (2 for invalid options); ``--debug`` shows the
full traceback instead. ``python -m crysatom_featurizers`` runs the same program.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = ["CLIError", "build_parser", "main"]

PROG = "crysatom"
DEFAULT_EMBEDDING = "crysatom"
LEVELS = ("site", "composition", "structure")
OUTPUT_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
# Rows featurized per call, so that the progress bar moves on large inputs.
CHUNK_ROWS = 2000
ERROR_COLUMN = "error"
MAX_MESSAGE = 400  # characters of an error message shown on one line
# Statistic names accepted by the pooling featurizers (matminer PropertyStats names + aliases).
STAT_NAMES = (
    "mean", "std_dev", "min", "max", "minimum", "maximum", "range", "avg_dev", "mode",
    "skewness", "kurtosis",
)  # fmt: skip


class CLIError(Exception):
    """An error reported to the user on one line, without a traceback."""


# ------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------


def _echo(args: argparse.Namespace, message: str) -> None:
    if not getattr(args, "quiet", False):
        print(message)


def _progress(args: argparse.Namespace, iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm progress bar on stderr, off with ``--quiet``."""
    from tqdm.auto import tqdm

    # disable=None: tqdm draws only on a terminal, so logs and pipes stay clean.
    disable = True if getattr(args, "quiet", False) else None
    return tqdm(iterable, disable=disable, file=sys.stderr, leave=False, **kwargs)


def _short_error(error: BaseException | str) -> str:
    """One line for an exception, or for matminer's traceback text in an error column."""
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
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _embedding_spec(name: str, dim: int | None) -> str:
    """The ``atom_features`` string of the estimators: ``name`` or ``name:dim``."""
    return name if dim is None else f"{name}:{dim}"


def _load_embedding(name: str, dim: int | None):
    from crysatom_featurizers.embeddings import EmbeddingNotAvailableError, load

    try:
        return load(name, dim=dim)
    except EmbeddingNotAvailableError as exc:
        raise CLIError(
            f"{_short_error(exc)}. Pick another embedding with --embedding "
            "(see 'crysatom embeddings list')"
        ) from exc


def _check_output_path(path: Path, suffixes: Sequence[str]) -> None:
    name = path.name.lower()
    if not any(name.endswith(s) for s in suffixes):
        raise CLIError(f"output {path} must end with one of: {', '.join(suffixes)}")
    if path.is_dir():
        raise CLIError(f"output {path} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV (``.csv``, ``.csv.gz``) or parquet (``.parquet``, ``.pq``)."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        if importlib.util.find_spec("pyarrow") is None and (
            importlib.util.find_spec("fastparquet") is None
        ):
            raise CLIError("writing parquet needs pyarrow: pip install pyarrow")
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


# ------------------------------------------------------------------------------------------
# Reading inputs
# ------------------------------------------------------------------------------------------


@dataclass
class InputTable:
    """Rows to featurize or predict, read from one input.

    ``frame`` has the columns ``id``, ``formula``, ``composition`` (pymatgen Composition or
    None) and ``structure`` (pymatgen Structure or None), plus ``target`` when targets were
    read. ``errors`` maps row positions that could not be read to their message; ``where``
    describes each row for messages (``"file x.cif"``).
    """

    frame: pd.DataFrame
    kind: str
    has_structures: bool
    where: list[str]
    errors: dict[int, str] = field(default_factory=dict)

    def describe(self, position: int) -> str:
        return f"row {position + 1} ({self.where[position]})"


def _parse_cif_file(path: Path):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_file(str(path))


def _parse_cif_text(text: str):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Structure.from_str(text, fmt="cif")


def _formula_of(structure) -> str:
    return structure.composition.reduced_formula


def _read_id_prop(folder: Path) -> pd.DataFrame:
    """``id_prop.csv`` of a CGCNN data folder: ``id,target`` per line, no header."""
    import pandas as pd

    path = folder / "id_prop.csv"
    try:
        table = pd.read_csv(path, header=None, dtype={0: str}, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise CLIError(f"{path} is empty; expected lines 'id,target'") from None
    if table.shape[1] < 2:
        raise CLIError(f"{path} must have at least two columns (id,target), found {table.shape[1]}")
    first = table.iloc[0, 1]
    if isinstance(first, str):
        try:
            float(first)
        except ValueError:
            raise CLIError(
                f"{path} looks like it has a header ({table.iloc[0].tolist()}); id_prop.csv "
                "has no header: one 'id,target' line per structure"
            ) from None
    targets = pd.to_numeric(table.iloc[:, 1], errors="coerce")
    return pd.DataFrame({"id": table.iloc[:, 0].astype(str).str.strip(), "target": targets})


def _read_cif_folder(
    folder: Path, args: argparse.Namespace, *, use_id_prop: bool, limit: int | None
) -> InputTable:
    import pandas as pd

    targets = None
    if use_id_prop and (folder / "id_prop.csv").exists():
        id_prop = _read_id_prop(folder)
        ids = list(id_prop["id"])
        targets = list(id_prop["target"])
        paths = [folder / f"{i}.cif" for i in ids]
    else:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".cif")
        if not paths:
            raise CLIError(f"no .cif files in {folder}")
        ids = [p.stem for p in paths]
    if limit is not None:
        paths, ids = paths[:limit], ids[:limit]
        targets = None if targets is None else targets[:limit]
    rows, errors = [], {}
    for position, path in enumerate(_progress(args, paths, desc="reading CIF files", unit="file")):
        structure = None
        try:
            if not path.exists():
                raise FileNotFoundError(f"{path.name} not found in {folder}")
            structure = _parse_cif_file(path)
        except Exception as exc:  # any parser failure becomes a row error
            errors[position] = f"cannot read CIF: {_short_error(exc)}"
        rows.append(
            {
                "id": ids[position],
                "formula": _formula_of(structure) if structure is not None else None,
                "composition": structure.composition if structure is not None else None,
                "structure": structure,
            }
        )
    frame = pd.DataFrame(rows, columns=["id", "formula", "composition", "structure"])
    if targets is not None:
        frame["target"] = targets
    return InputTable(
        frame=frame,
        kind="cif-folder",
        has_structures=True,
        where=[f"file {p.name}" for p in paths],
        errors=errors,
    )


_ID_COLUMNS = ("id", "material_id", "jid", "name", "jarvis_index")


def _pick_id(frame: pd.DataFrame) -> tuple[list[Any], str | None]:
    for column in _ID_COLUMNS:
        if column in frame.columns:
            return list(frame[column]), column
    return [str(i) for i in frame.index], None


def _read_csv(path: Path, args: argparse.Namespace, *, limit: int | None) -> InputTable:
    import pandas as pd
    from pymatgen.core import Composition

    try:
        table = pd.read_csv(path, nrows=limit)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CLIError(f"cannot read CSV {path}: {_short_error(exc)}") from None
    columns = {c.lower(): c for c in table.columns}
    if "cif" not in columns and "formula" not in columns:
        raise CLIError(
            f"{path} needs a 'formula' or a 'cif' column; found columns: {list(table.columns)}"
        )
    ids, id_column = _pick_id(table)
    if id_column is None:
        ids = [str(i + 1) for i in range(len(table))]
    where = [f"id {i}" if id_column else f"line {n + 2} of {path.name}" for n, i in enumerate(ids)]
    rows, errors = [], {}
    if "cif" in columns:
        column = columns["cif"]
        for position, value in enumerate(
            _progress(args, table[column], desc="parsing CIF", unit="row")
        ):
            structure = None
            try:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError("empty 'cif' value")
                candidate = (path.parent / value).expanduser() if len(value) < 1024 else None
                if candidate is not None and "\n" not in value and candidate.is_file():
                    structure = _parse_cif_file(candidate)
                else:
                    structure = _parse_cif_text(value)
            except Exception as exc:
                errors[position] = f"cannot read CIF: {_short_error(exc)}"
            rows.append(
                {
                    "id": ids[position],
                    "formula": _formula_of(structure) if structure is not None else None,
                    "composition": structure.composition if structure is not None else None,
                    "structure": structure,
                }
            )
        has_structures = True
    else:
        column = columns["formula"]
        for position, value in enumerate(table[column]):
            composition = None
            try:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError("empty formula")
                composition = Composition(value)
                if composition.num_atoms <= 0:
                    raise ValueError(f"formula {value!r} has no atoms")
            except Exception as exc:
                errors[position] = f"cannot parse formula {value!r}: {_short_error(exc)}"
                composition = None
            rows.append(
                {
                    "id": ids[position],
                    "formula": value,
                    "composition": composition,
                    "structure": None,
                }
            )
        has_structures = False
    frame = pd.DataFrame(rows, columns=["id", "formula", "composition", "structure"])
    target = getattr(args, "target", None)
    if target is not None:
        if target not in table.columns:
            raise CLIError(f"target column {target!r} not in {path}: {list(table.columns)}")
        frame["target"] = pd.to_numeric(table[target], errors="coerce").to_numpy()
    return InputTable(frame, "csv", has_structures, where, errors)


def _read_json(path: Path, args: argparse.Namespace, *, limit: int | None) -> InputTable:
    import pandas as pd
    from matminer.utils.io import load_dataframe_from_json
    from pymatgen.core import Composition, IStructure, Structure

    try:
        table = load_dataframe_from_json(str(path), pbar=not getattr(args, "quiet", False))
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"cannot read matminer JSON {path}: {_short_error(exc)}") from None
    if limit is not None:
        table = table.iloc[:limit]
    ids, id_column = _pick_id(table)
    where = [f"{id_column or 'index'} {i}" for i in ids]
    rows, errors = [], {}
    if "structure" in table.columns:
        for position, value in enumerate(table["structure"]):
            structure = None
            try:
                if isinstance(value, dict):
                    value = Structure.from_dict(value)
                if not isinstance(value, IStructure):
                    raise TypeError(f"not a structure: {type(value).__name__}")
                structure = value
            except Exception as exc:
                errors[position] = f"bad structure: {_short_error(exc)}"
            rows.append(
                {
                    "id": ids[position],
                    "formula": _formula_of(structure) if structure is not None else None,
                    "composition": structure.composition if structure is not None else None,
                    "structure": structure,
                }
            )
        has_structures = True
    elif "composition" in table.columns or "formula" in table.columns:
        column = "composition" if "composition" in table.columns else "formula"
        for position, value in enumerate(table[column]):
            composition = None
            try:
                composition = value if isinstance(value, Composition) else Composition(value)
            except Exception as exc:
                errors[position] = f"cannot parse {column} {value!r}: {_short_error(exc)}"
            rows.append(
                {
                    "id": ids[position],
                    "formula": composition.reduced_formula if composition is not None else None,
                    "composition": composition,
                    "structure": None,
                }
            )
        has_structures = False
    else:
        raise CLIError(
            f"{path} needs a 'structure', 'composition' or 'formula' column; "
            f"found: {list(table.columns)[:20]}"
        )
    frame = pd.DataFrame(rows, columns=["id", "formula", "composition", "structure"])
    target = getattr(args, "target", None)
    if target is not None:
        if target not in table.columns:
            numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
            raise CLIError(f"target column {target!r} not in {path}; numeric columns: {numeric}")
        frame["target"] = pd.to_numeric(table[target], errors="coerce").to_numpy()
    return InputTable(frame, "json", has_structures, where, errors)


def _read_example(limit: int | None) -> InputTable:
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
    source: str | None,
    args: argparse.Namespace,
    *,
    use_id_prop: bool = False,
    limit: int | None = None,
) -> InputTable:
    """Read a CIF folder, a CSV, a matminer JSON, or (``source=None``) the example crystals."""
    if source is None:
        return _read_example(limit)
    path = Path(source).expanduser()
    if not path.exists():
        raise CLIError(f"input {source} does not exist")
    if path.is_dir():
        return _read_cif_folder(path, args, use_id_prop=use_id_prop, limit=limit)
    name = path.name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return _read_csv(path, args, limit=limit)
    if name.endswith((".json", ".json.gz")):
        return _read_json(path, args, limit=limit)
    if name.endswith(".cif"):
        structure = None
        errors = {}
        try:
            structure = _parse_cif_file(path)
        except Exception as exc:
            errors[0] = f"cannot read CIF: {_short_error(exc)}"
        import pandas as pd

        frame = pd.DataFrame(
            [
                {
                    "id": path.stem,
                    "formula": _formula_of(structure) if structure is not None else None,
                    "composition": structure.composition if structure is not None else None,
                    "structure": structure,
                }
            ]
        )
        return InputTable(frame, "cif", True, [f"file {path.name}"], errors)
    raise CLIError(
        f"cannot tell the format of {source}: give a folder of .cif files, a .cif file, a .csv "
        "with a 'formula' or 'cif' column, or a matminer .json/.json.gz"
    )


def _raise_first_error(table: InputTable, errors: dict[int, str], hint: str) -> None:
    if errors:
        position = min(errors)
        more = f" ({len(errors) - 1} more row(s) failed)" if len(errors) > 1 else ""
        raise CLIError(f"{table.describe(position)}: {errors[position]}{more}; {hint}")


# ------------------------------------------------------------------------------------------
# embeddings
# ------------------------------------------------------------------------------------------


def _cmd_embeddings_list(args: argparse.Namespace) -> int:
    from crysatom_featurizers.embeddings import available

    table = available()
    rows = []
    for _, row in table.iterrows():
        dims = row["dims"]
        if dims is None:
            dims_text = "any"
        elif len(dims) == 0:
            dims_text = "(not generated)"
        else:
            dims_text = ",".join(str(d) for d in dims)
        default = "" if row["default_dim"] is None else str(row["default_dim"])
        rows.append((row["name"], dims_text, default, str(row["description"] or "")))
    header = ("name", "dims", "default", "description")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(r[:3], widths)) + "  " + r[3]
        for r in [header, *rows]
    ]
    print("\n".join(lines))
    return 0


def _coverage_text(embedding) -> list[str]:
    from pymatgen.core import Element

    zs = []
    for symbol in embedding.symbols:
        try:
            zs.append(int(Element(symbol).Z))
        except ValueError:
            continue
    covered = set(zs)
    missing = [Element.from_Z(z).symbol for z in range(1, 104) if z not in covered]
    symbols = " ".join(Element.from_Z(z).symbol for z in sorted(covered))
    lines = [f"coverage: {len(embedding.symbols)} elements (Z {min(zs)}..{max(zs)})"]
    lines.append(f"  covered: {symbols}")
    lines.append(f"  missing (H..Lr): {' '.join(missing) if missing else 'none'}")
    return lines


def _cmd_embeddings_show(args: argparse.Namespace) -> int:
    embedding = _load_embedding(args.name, args.dim)
    metadata = dict(embedding.metadata)
    lines = [f"name: {embedding.name}", f"dim: {embedding.dim}", f"checksum: {embedding.checksum}"]
    skip = {"name", "dim", "checksum"}
    for key in sorted(metadata):
        if key in skip:
            continue
        value = metadata[key]
        if value in (None, "", [], {}):
            continue
        text = value if isinstance(value, str) else repr(value)
        if len(text) > 300:
            text = text[:297] + "..."
        lines.append(f"{key}: {text}")
    lines += _coverage_text(embedding)
    print("\n".join(lines))
    return 0


def _cmd_embeddings_export(args: argparse.Namespace) -> int:
    output = Path(args.output)
    fmt = args.format
    if fmt is None:
        name = output.name.lower()
        fmt = "json" if name.endswith(".json") else "csv" if name.endswith(".csv") else None
        if fmt is None:
            raise CLIError(f"cannot tell the format of {output}; pass --format csv or json")
    output.parent.mkdir(parents=True, exist_ok=True)
    embedding = _load_embedding(args.name, args.dim)
    if fmt == "csv":
        embedding.to_csv(output)
    else:
        embedding.to_json(output)
    _echo(
        args,
        f"wrote {embedding.name} ({embedding.dim}-dim, {len(embedding)} elements) as {fmt} "
        f"to {output}",
    )
    return 0


# ------------------------------------------------------------------------------------------
# featurize
# ------------------------------------------------------------------------------------------


def _make_featurizer(level: str, name: Any, dim: int | None, stats: Sequence[str] | None):
    from crysatom_featurizers import featurizers

    if level == "site":
        if stats:
            raise CLIError("--stats applies to the composition and structure levels, not site")
        return featurizers.ElementEmbeddingSiteFeaturizer(embedding=name, dim=dim)
    cls = (
        featurizers.ElementEmbeddingCompositionFeaturizer
        if level == "composition"
        else featurizers.ElementEmbeddingStructureFeaturizer
    )
    return cls(embedding=name, dim=dim) if not stats else cls(embedding=name, dim=dim, stats=stats)


def _site_rows(table: InputTable, valid: list[int]) -> pd.DataFrame:
    """One row per site of each valid structure: position, site index, species."""
    import pandas as pd

    records = []
    for position in valid:
        structure = table.frame["structure"].iat[position]
        for index, site in enumerate(structure):
            records.append((position, index, site.species_string, structure))
    return pd.DataFrame(records, columns=["_position", "site_index", "species", "structure"])


def _featurize_in_chunks(
    featurizer, frame: pd.DataFrame, col_id: str | list[str], args: argparse.Namespace
) -> pd.DataFrame:
    """Feature frame (same index as ``frame``) plus an error column (None where fine)."""
    import numpy as np
    import pandas as pd

    labels = list(featurizer.feature_labels())
    error_label = f"{type(featurizer).__name__} Exceptions"
    parts = []
    starts = range(0, len(frame), CHUNK_ROWS)
    with _progress(args, total=len(frame), desc="featurizing", unit="row") as bar:
        for start in starts:
            chunk = frame.iloc[start : start + CHUNK_ROWS]
            result = featurizer.featurize_dataframe(
                chunk[[col_id] if isinstance(col_id, str) else col_id],
                col_id,
                ignore_errors=True,
                return_errors=True,
                pbar=False,
            )
            out = result[labels].copy()
            out[ERROR_COLUMN] = [
                None if (not isinstance(e, str) and (e is None or np.isnan(e))) else _short_error(e)
                for e in result[error_label]
            ]
            parts.append(out)
            bar.update(len(chunk))
    if not parts:
        return pd.DataFrame(columns=[*labels, ERROR_COLUMN])
    return pd.concat(parts)


def _cmd_featurize(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    if args.example and args.input:
        raise CLIError("give either INPUT or --example, not both")
    if args.input is not None and not Path(args.input).expanduser().exists():
        raise CLIError(f"input {args.input} does not exist")
    output = Path(args.output)
    _check_output_path(output, OUTPUT_SUFFIXES)
    embedding = _load_embedding(args.embedding, args.dim)
    featurizer = _make_featurizer(args.level, embedding, None, args.stats)
    table = read_input(args.input, args, limit=args.limit)
    if args.level in ("site", "structure") and not table.has_structures:
        raise CLIError(
            f"--level {args.level} needs crystal structures, but {args.input} holds only "
            "formulas; use --level composition or give CIF files"
        )
    hint = "fix the input or pass --ignore-errors to keep going"
    if not args.ignore_errors:
        _raise_first_error(table, table.errors, hint)
    n = len(table.frame)
    valid = [i for i in range(n) if i not in table.errors]
    base = table.frame[["id", "formula"]].reset_index(drop=True)
    errors: dict[int, str] = dict(table.errors)

    if args.level == "site":
        sites = _site_rows(table, valid)
        features = _featurize_in_chunks(featurizer, sites, ["structure", "site_index"], args)
        site_errors = features[ERROR_COLUMN].to_numpy()
        for row, message in enumerate(site_errors):
            if message is not None:
                position = int(sites["_position"].iat[row])
                site = f"site {int(sites['site_index'].iat[row])}"
                errors.setdefault(position, f"{site}: {message}")
        if not args.ignore_errors:
            _raise_first_error(table, errors, hint)
        left = base.iloc[sites["_position"].to_numpy()].reset_index(drop=True)
        left["site_index"] = sites["site_index"].to_numpy()
        left["species"] = sites["species"].to_numpy()
        body = features.drop(columns=[ERROR_COLUMN]).reset_index(drop=True)
        result = pd.concat([left, body], axis=1)
        if args.ignore_errors:
            result[ERROR_COLUMN] = [errors.get(int(p)) for p in sites["_position"]]
            failed = [p for p in sorted(table.errors)]
            if failed:
                missing_rows = base.iloc[failed].reset_index(drop=True)
                missing_rows[ERROR_COLUMN] = [table.errors[p] for p in failed]
                result = pd.concat([result, missing_rows], ignore_index=True)
        n_items = f"{len(valid)} structures, {len(sites)} sites"
    else:
        column = "composition" if args.level == "composition" else "structure"
        subset = table.frame.iloc[valid][[column]].reset_index(drop=True)
        features = _featurize_in_chunks(featurizer, subset, column, args)
        for row, message in enumerate(features[ERROR_COLUMN].to_numpy()):
            if message is not None:
                errors[valid[row]] = message
        if not args.ignore_errors:
            _raise_first_error(table, errors, hint)
        labels = [c for c in features.columns if c != ERROR_COLUMN]
        body = pd.DataFrame(np.nan, index=range(n), columns=labels, dtype=float)
        if valid:
            body.iloc[valid] = features[labels].to_numpy()
        result = pd.concat([base, body], axis=1)
        if args.ignore_errors:
            result[ERROR_COLUMN] = [errors.get(i) for i in range(n)]
        noun = "structures" if table.has_structures else "compositions"
        n_items = f"{n} {noun}"
    _write_table(result, output)
    source = "example crystals" if table.kind == "example" else str(args.input)
    n_failed = len(errors)
    failed_text = (
        f"; {n_failed} row(s) failed (see the '{ERROR_COLUMN}' column)" if n_failed else ""
    )
    _echo(
        args,
        f"featurized {n_items} from {source} at {args.level} level with embedding "
        f"{embedding.name} ({embedding.dim}-dim): {result.shape[0]} rows × {result.shape[1]} "
        f"columns -> {output}{failed_text}",
    )
    return 0


# ------------------------------------------------------------------------------------------
# train / predict
# ------------------------------------------------------------------------------------------


def _check_coverage(table: InputTable, embedding, positions: list[int]) -> dict[int, str]:
    """Rows whose structures contain elements the embedding has no vector for."""
    errors = {}
    covered = set(embedding.symbols)
    for position in positions:
        structure = table.frame["structure"].iat[position]
        missing = sorted({el.symbol for el in structure.composition.elements} - covered)
        if missing:
            errors[position] = (
                f"element(s) {', '.join(missing)} not covered by embedding {embedding.name!r} "
                f"({len(covered)} elements)"
            )
    return errors


def _training_table(args: argparse.Namespace) -> tuple[InputTable, list[int]]:
    table = read_input(args.data, args, use_id_prop=True, limit=args.limit)
    if not table.has_structures:
        raise CLIError(f"{args.data} holds no crystal structures; training needs structures")
    if "target" not in table.frame.columns:
        if table.kind == "cif-folder":
            raise CLIError(f"{args.data} has no id_prop.csv (lines 'id,target', no header)")
        raise CLIError(f"pass --target COLUMN to say which column of {args.data} to learn")
    return table, list(range(len(table.frame)))


def _cmd_train(args: argparse.Namespace) -> int:
    import joblib
    import numpy as np

    from crysatom_featurizers.estimators import CGCNNRegressor

    output = Path(args.output)
    _check_output_path(output, (".joblib", ".pkl", ".pickle"))
    embedding = _load_embedding(args.embedding, args.dim)
    table, positions = _training_table(args)
    errors = dict(table.errors)
    errors.update(_check_coverage(table, embedding, [p for p in positions if p not in errors]))
    hint = "fix the data or pass --ignore-errors to drop those rows"
    if not args.ignore_errors:
        _raise_first_error(table, errors, hint)
    targets = table.frame["target"].to_numpy(dtype=float)
    keep = [p for p in positions if p not in errors and np.isfinite(targets[p])]
    n_no_target = sum(1 for p in positions if p not in errors and not np.isfinite(targets[p]))
    if n_no_target:
        _echo(args, f"skipping {n_no_target} row(s) without a finite target value")
    if errors:
        _echo(args, f"skipping {len(errors)} row(s) that could not be used (--ignore-errors)")
    if len(keep) < 4:
        raise CLIError(f"need at least 4 usable structures to train, found {len(keep)}")

    rng = np.random.default_rng(args.seed)
    test_idx: list[int] = []
    if args.test_fraction:
        if not 0 < args.test_fraction < 1:
            raise CLIError(f"--test-fraction must be between 0 and 1, got {args.test_fraction}")
        n_test = max(1, int(round(args.test_fraction * len(keep))))
        shuffled = list(rng.permutation(keep))
        test_idx, keep = sorted(shuffled[:n_test]), sorted(shuffled[n_test:])
    structures = table.frame["structure"]
    model = CGCNNRegressor(
        atom_features=_embedding_spec(args.embedding, args.dim),
        atom_fea_len=args.atom_fea_len,
        n_conv=args.n_conv,
        h_fea_len=args.h_fea_len,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        validation_fraction=args.val_fraction,
        patience=args.patience,
        device=args.device,
        random_state=args.seed,
        n_threads=args.threads,
        verbose=0 if args.quiet else 1,
    )
    model.fit(structures.iloc[keep].reset_index(drop=True), targets[keep])
    joblib.dump(model, output)

    history = model.history_
    best = history.loc[history["epoch"] == model.best_epoch_].iloc[0]
    units = f" {args.units}" if args.units else ""
    if np.isfinite(best["val_mae"]):
        # The estimator holds out round(fraction * n) structures, at least one.
        n_val = max(1, int(round(args.val_fraction * len(keep))))
        _echo(
            args,
            f"validation MAE: {best['val_mae']:.4g}{units} (best epoch {model.best_epoch_} of "
            f"{model.n_iter_}; {len(keep) - n_val} training, {n_val} validation structures)",
        )
    else:
        _echo(args, f"training MAE: {best['train_mae']:.4g}{units} (no validation split)")
    if test_idx:
        predictions = model.predict(structures.iloc[test_idx].reset_index(drop=True))
        test_mae = float(np.mean(np.abs(predictions - targets[test_idx])))
        _echo(args, f"test MAE: {test_mae:.4g}{units} ({len(test_idx)} held-out structures)")
    if args.plot_dir:
        plot_dir = Path(args.plot_dir)
        plot_dir.mkdir(parents=True, exist_ok=True)
        _use_agg()
        from crysatom_featurizers import plotting

        ax = plotting.plot_learning_curve(model, units=args.units)
        _save_figure(ax.figure, plot_dir / "learning_curve.png")
        written = [plot_dir / "learning_curve.png"]
        if test_idx:
            ax = plotting.plot_parity(
                targets[test_idx],
                predictions,
                units=args.units,
                label=args.target or "target",
                title="held-out test set",
            )
            _save_figure(ax.figure, plot_dir / "parity_test.png")
            written.append(plot_dir / "parity_test.png")
        _echo(args, "plots: " + ", ".join(str(p) for p in written))
    _echo(args, f"saved model to {output}")
    return 0


def _load_model(path: str):
    import joblib

    model_path = Path(path)
    if not model_path.is_file():
        raise CLIError(f"model file {path} does not exist")
    try:
        model = joblib.load(model_path)
    except Exception as exc:
        detail = _short_error(exc)
        detail = detail if len(detail) <= 120 else detail[:117] + "..."
        raise CLIError(
            f"cannot load model {path}: not a model saved with joblib by 'crysatom train' "
            f"({type(exc).__name__}: {detail})"
        ) from None
    if not hasattr(model, "predict"):
        raise CLIError(f"{path} holds a {type(model).__name__}, not a fitted model")
    return model


def _predict_rows(model, structures: list[Any], args: argparse.Namespace):
    """Predictions for ``structures``; rows that fail get NaN and a message."""
    import numpy as np
    import pandas as pd

    def run(items: list[Any]) -> np.ndarray:
        return np.asarray(model.predict(pd.Series(items, dtype=object)), dtype=float)

    chunk = 512
    outputs: list[np.ndarray] = []
    errors: dict[int, str] = {}
    with _progress(args, total=len(structures), desc="predicting", unit="structure") as bar:
        for start in range(0, len(structures), chunk):
            items = structures[start : start + chunk]
            try:
                outputs.append(run(items))
            except (ValueError, TypeError, RuntimeError) as exc:
                if not args.ignore_errors:
                    raise
                # Isolate the failing structures one by one.
                rows = []
                for offset, item in enumerate(items):
                    try:
                        rows.append(run([item])[0])
                    except (ValueError, TypeError, RuntimeError) as row_exc:
                        errors[start + offset] = _short_error(row_exc)
                        rows.append(np.nan)
                del exc
                outputs.append(np.asarray(rows, dtype=float))
            bar.update(len(items))
    return np.concatenate(outputs) if outputs else np.empty(0), errors


def _cmd_predict(args: argparse.Namespace) -> int:
    import numpy as np

    if args.example and args.data:
        raise CLIError("give either DATA or --example, not both")
    output = Path(args.output)
    _check_output_path(output, OUTPUT_SUFFIXES)
    model = _load_model(args.model)
    table = read_input(args.data, args, use_id_prop=True, limit=args.limit)
    if not table.has_structures:
        raise CLIError(f"{args.data} holds no crystal structures; the model needs structures")
    errors = dict(table.errors)
    name = getattr(model, "embedding_name_", None)
    if name is not None:
        try:
            embedding = _load_embedding(name, getattr(model, "embedding_dim_", None))
        except (ValueError, OSError):
            embedding = None
        if embedding is not None:
            valid = [p for p in range(len(table.frame)) if p not in errors]
            errors.update(_check_coverage(table, embedding, valid))
    hint = "fix the data or pass --ignore-errors to keep going"
    if not args.ignore_errors:
        _raise_first_error(table, errors, hint)
    valid = [p for p in range(len(table.frame)) if p not in errors]
    predictions = np.full(len(table.frame), np.nan)
    if valid:
        try:
            values, row_errors = _predict_rows(
                model, [table.frame["structure"].iat[p] for p in valid], args
            )
        except (ValueError, TypeError, RuntimeError) as exc:
            raise CLIError(f"prediction failed: {_short_error(exc)}; {hint}") from None
        if values.ndim > 1:
            raise CLIError("the model predicts several targets; the CLI handles one")
        predictions[valid] = values
        for offset, message in row_errors.items():
            errors[valid[offset]] = message
    result = table.frame[["id", "formula"]].copy()
    result["prediction"] = predictions
    has_target = "target" in table.frame.columns
    if has_target:
        result["target"] = table.frame["target"].to_numpy(dtype=float)
        result["abs_error"] = (result["prediction"] - result["target"]).abs()
    if args.ignore_errors:
        result[ERROR_COLUMN] = [errors.get(i) for i in range(len(result))]
    _write_table(result, output)
    units = f" {args.units}" if args.units else ""
    message = f"predicted {int(np.isfinite(predictions).sum())} of {len(result)} structures"
    if has_target:
        ok = np.isfinite(result["abs_error"].to_numpy())
        if ok.any():
            message += (
                f"; MAE against the given targets: {result['abs_error'][ok].mean():.4g}{units}"
            )
    _echo(args, f"{message} -> {output}")
    if args.parity:
        if not has_target:
            raise CLIError("--parity needs targets (id_prop.csv in the folder, or --target)")
        ok = np.isfinite(result["abs_error"].to_numpy())
        _use_agg()
        from crysatom_featurizers import plotting

        ax = plotting.plot_parity(
            result["target"][ok], result["prediction"][ok], units=args.units, label=args.target
        )
        _save_figure(ax.figure, Path(args.parity))
        _echo(args, f"parity plot -> {args.parity}")
    return 0


# ------------------------------------------------------------------------------------------
# plot-embedding
# ------------------------------------------------------------------------------------------


def _use_agg() -> None:
    """Use the file-only Agg backend unless pyplot is already in use."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("plotting needs matplotlib: pip install 'crysatom-featurizers[plot]'")
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")


def _save_figure(figure, path: Path, dpi: int = 150) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(figure)


def _cmd_plot_embedding(args: argparse.Namespace) -> int:
    output = Path(args.output)
    _check_output_path(output, (".png", ".pdf", ".svg", ".jpg", ".jpeg"))
    _use_agg()
    from crysatom_featurizers import plotting

    embedding = _load_embedding(args.name, args.dim)
    if args.kind == "map":
        ax = plotting.plot_embedding_map(
            embedding, method=args.method, color_by=args.color, annotate=not args.no_labels
        )
        what = f"{args.method.upper()} map coloured by {args.color}"
    elif args.kind == "similarity":
        ax = plotting.plot_similarity_heatmap(embedding)
        what = "cosine similarity matrix"
    else:
        import numpy as np

        if args.component is None:
            values = np.linalg.norm(np.asarray(embedding.vectors, dtype=float), axis=1)
            label, what = "vector norm", "periodic table of the vector norm"
        else:
            if not 0 <= args.component < embedding.dim:
                raise CLIError(
                    f"--component must be between 0 and {embedding.dim - 1}, got {args.component}"
                )
            values = np.asarray(embedding.vectors, dtype=float)[:, args.component]
            label = f"component {args.component}"
            what = f"periodic table of component {args.component}"
        ax = plotting.plot_periodic_table_heatmap(
            dict(zip(embedding.symbols, values)),
            title=f"{embedding.name} ({embedding.dim}-dim): {label}",
            colorbar_label=label,
        )
    _save_figure(ax.figure, output, dpi=args.dpi)
    _echo(args, f"wrote {what} of {embedding.name} ({embedding.dim}-dim) to {output}")
    return 0


# ------------------------------------------------------------------------------------------
# pretrain (forwarding)
# ------------------------------------------------------------------------------------------


def _pretrain_location() -> Path | None:
    """Folder holding the ``training`` package (a repository checkout), or None."""
    spec = importlib.util.find_spec("training.pretrain") if _training_importable() else None
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parents[1]
    candidate = Path.cwd() / "training" / "pretrain.py"
    if candidate.is_file():
        return Path.cwd()
    return None


def _training_importable() -> bool:
    try:
        return importlib.util.find_spec("training") is not None
    except (ImportError, ValueError):
        return False


PRETRAIN_HELP = """\
usage: crysatom pretrain [ARGS ...]

Pretrain CrysAtom element vectors. This forwards ARGS unchanged to
`python -m training.pretrain`, which lives in the repository's training/ folder
(a source checkout, not the installed package). Run it from the repository root.

examples:
  crysatom pretrain --help                 # the pretraining script's own options
  crysatom pretrain --config training/configs/cpu.yaml --dim 200
"""


def _cmd_pretrain(forwarded: list[str], debug: bool) -> int:
    root = _pretrain_location()
    if root is None:
        print(PRETRAIN_HELP, file=sys.stderr)
        print(
            f"{PROG}: error: pretraining needs the repository's training/ package, which is not "
            "installed with the library; clone the repository and run this command (or "
            "`python -m training.pretrain`) from its root",
            file=sys.stderr,
        )
        return 1
    command = [sys.executable, "-m", "training.pretrain", *forwarded]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH", "")]))
    if debug:
        print("running: " + " ".join(command), file=sys.stderr)
    return subprocess.call(command, cwd=root, env=env)


# ------------------------------------------------------------------------------------------
# Parser
# ------------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("general options")
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback on errors",
    )
    group.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bars or summary lines",
    )
    return common


def _wrap(text: str, width: int = 88) -> str:
    """Wrap each paragraph (the raw formatter keeps the epilog's example lines as written)."""
    return "\n\n".join(textwrap.fill(p, width) for p in text.split("\n\n"))


def _subparser(subparsers, name: str, common, help: str, description: str, epilog: str):
    return subparsers.add_parser(
        name,
        help=help,
        description=_wrap(description),
        epilog=epilog,
        parents=[common],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_embedding_options(parser: argparse.ArgumentParser, *, default: str | None) -> None:
    parser.add_argument(
        "--embedding",
        "-e",
        default=default,
        metavar="NAME",
        help=f"element embedding (see 'crysatom embeddings list'; default: {default})",
    )
    parser.add_argument(
        "--dim",
        type=_positive_int,
        default=None,
        help="vector dimension (default: the embedding's)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``crysatom`` argument parser (exposed for documentation tools and tests)."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "CrysAtom element embeddings as crystal descriptors, and CGCNN property models, "
            "from the command line."
        ),
        epilog=(
            "examples:\n"
            "  crysatom featurize --example -o example_features.csv\n"
            "  crysatom embeddings list\n"
            "  crysatom featurize cifs/ -o features.parquet --level structure -e skipatom\n"
            "  crysatom train data/ -o model.joblib --epochs 50\n"
            "  crysatom <command> --help   # options and examples of one command"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bars or summary lines"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    # embeddings ------------------------------------------------------------------------
    emb = _subparser(
        subparsers,
        "embeddings",
        common,
        "list, show and export element embeddings",
        "Browse the registry of element embeddings.",
        "examples:\n"
        "  crysatom embeddings list\n"
        "  crysatom embeddings show crysatom --dim 100\n"
        "  crysatom embeddings export skipatom --format csv -o skipatom.csv",
    )
    emb_sub = emb.add_subparsers(dest="action", metavar="ACTION")
    emb_sub.required = True
    p = _subparser(
        emb_sub,
        "list",
        common,
        "every registered embedding and its dimensions",
        "List every registered embedding, its dimensions and a description.",
        "example:\n  crysatom embeddings list",
    )
    p.set_defaults(handler=_cmd_embeddings_list)
    p = _subparser(
        emb_sub,
        "show",
        common,
        "metadata and element coverage of one embedding",
        "Print an embedding's metadata (source, citation, corpus, licence, checksum) and the "
        "elements it covers.",
        "examples:\n  crysatom embeddings show skipatom\n  crysatom embeddings show crysatom --dim 50",
    )
    p.add_argument("name", metavar="NAME", help="embedding name")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector dimension")
    p.set_defaults(handler=_cmd_embeddings_show)
    p = _subparser(
        emb_sub,
        "export",
        common,
        "write an embedding's vectors to CSV or JSON",
        "Write an embedding's vectors to a file: CSV (one row per element, columns "
        "NAME_0..NAME_{dim-1}) or this package's JSON format (vectors and metadata).",
        "examples:\n"
        "  crysatom embeddings export crysatom --dim 200 --format json -o crysatom_200.json\n"
        "  crysatom embeddings export skipatom -o skipatom.csv",
    )
    p.add_argument("name", metavar="NAME", help="embedding name")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector dimension")
    p.add_argument(
        "--format", choices=("csv", "json"), default=None, help="default: from the extension"
    )
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output file")
    p.set_defaults(handler=_cmd_embeddings_export)

    # featurize -------------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "featurize",
        common,
        "element-embedding features of crystals or formulas",
        "Compute element-embedding features and write them as CSV or parquet.\n\n"
        "INPUT is a folder of .cif files, a single .cif, a CSV with a 'formula' or a 'cif' "
        "column (CIF text or a path relative to the CSV), or a matminer DataFrame saved as "
        ".json/.json.gz (a 'structure' or 'composition' column). Without INPUT (or with "
        "--example) the example crystals that ship with the package are featurized, offline.\n\n"
        "Levels: 'composition' pools the element vectors of the formula with weighted "
        "statistics; 'structure' pools over the sites; 'site' writes one row per site.",
        "examples:\n"
        "  crysatom featurize --example -o example_features.csv\n"
        "  crysatom featurize cifs/ -o features.parquet --level structure\n"
        "  crysatom featurize formulas.csv -o features.csv -e skipatom --stats mean max\n"
        "  crysatom featurize data.json.gz -o sites.csv --level site --embedding crysatom --dim 50\n"
        "  crysatom featurize formulas.csv -o features.csv --ignore-errors",
    )
    p.add_argument("input", nargs="?", metavar="INPUT", help="CIF folder, .cif, .csv or .json(.gz)")
    p.add_argument("--example", action="store_true", help="featurize the shipped example crystals")
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="output .csv, .csv.gz or .parquet"
    )
    p.add_argument("--level", choices=LEVELS, default="composition", help="default: composition")
    _add_embedding_options(p, default=DEFAULT_EMBEDDING)
    p.add_argument(
        "--stats",
        nargs="+",
        choices=STAT_NAMES,
        default=None,
        metavar="STAT",
        help="statistics pooled over elements or sites (default: mean std_dev min max range)",
    )
    p.add_argument(
        "--ignore-errors",
        action="store_true",
        help=f"keep going on bad rows: NaN features and a message in an '{ERROR_COLUMN}' column",
    )
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N rows")
    p.set_defaults(handler=_cmd_featurize)

    # train -----------------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "train",
        common,
        "fit a CGCNN regressor and save it",
        "Fit a CGCNNRegressor (element embedding as frozen input node features) and save it "
        "with joblib.\n\n"
        "DATA is a CGCNN-style folder (one ID.cif per structure and an id_prop.csv with lines "
        "'ID,target', no header) or a matminer .json/.json.gz / .csv with --target COLUMN. "
        "A share of the training rows (--val-fraction) is held out to pick the best epoch; its "
        "MAE is printed. --test-fraction holds out a further test set that the fit never sees.",
        "examples:\n"
        "  crysatom train cgcnn_data/ -o model.joblib --epochs 100\n"
        "  crysatom train jarvis.json.gz --target formation_energy_peratom --units eV/atom \\\n"
        "      -o eform.joblib -e crysatom --limit 2000 --test-fraction 0.1 --plot-dir plots/\n"
        "  crysatom predict model.joblib new_cifs/ -o predictions.csv",
    )
    p.add_argument("data", metavar="DATA", help="CIF folder with id_prop.csv, or .json(.gz)/.csv")
    p.add_argument("-o", "--output", required=True, metavar="MODEL", help="output .joblib file")
    p.add_argument("--target", default=None, metavar="COLUMN", help="target column (json/csv)")
    p.add_argument("--units", default=None, help="target units for messages, e.g. eV/atom")
    _add_embedding_options(p, default=DEFAULT_EMBEDDING)
    p.add_argument("--epochs", type=_positive_int, default=100, help="default: 100")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    p.add_argument("--atom-fea-len", type=_positive_int, default=64, help="default: 64")
    p.add_argument("--n-conv", type=_positive_int, default=3, help="default: 3")
    p.add_argument("--h-fea-len", type=_positive_int, default=128, help="default: 128")
    p.add_argument("--val-fraction", type=float, default=0.1, help="default: 0.1")
    p.add_argument("--test-fraction", type=float, default=0.0, help="default: 0 (no test set)")
    p.add_argument("--patience", type=_positive_int, default=None, help="early-stopping epochs")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N rows")
    p.add_argument("--plot-dir", default=None, help="write learning-curve (and parity) plots")
    p.add_argument("--ignore-errors", action="store_true", help="drop unreadable or uncovered rows")
    p.set_defaults(handler=_cmd_train)

    # predict ---------------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "predict",
        common,
        "predict with a saved model",
        "Predict with a model saved by 'crysatom train' (or any joblib-saved estimator that "
        "takes pymatgen structures). DATA is read as by 'crysatom featurize'; when it has "
        "targets (id_prop.csv, or --target) they are written next to the predictions and the "
        "MAE is printed.",
        "examples:\n"
        "  crysatom predict model.joblib new_cifs/ -o predictions.csv\n"
        "  crysatom predict model.joblib --example -o example_predictions.csv\n"
        "  crysatom predict model.joblib test_data/ -o preds.csv --parity parity.png",
    )
    p.add_argument("model", metavar="MODEL", help="model .joblib file")
    p.add_argument("data", nargs="?", metavar="DATA", help="CIF folder, .cif, .csv or .json(.gz)")
    p.add_argument("--example", action="store_true", help="predict the shipped example crystals")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="output .csv or .parquet")
    p.add_argument("--target", default=None, metavar="COLUMN", help="target column (json/csv)")
    p.add_argument("--units", default=None, help="target units for messages and plots")
    p.add_argument("--parity", default=None, metavar="PNG", help="also write a parity plot")
    p.add_argument("--limit", type=_positive_int, default=None, help="only the first N rows")
    p.add_argument(
        "--ignore-errors", action="store_true", help="NaN and an error message for bad rows"
    )
    p.set_defaults(handler=_cmd_predict)

    # plot-embedding --------------------------------------------------------------------
    p = _subparser(
        subparsers,
        "plot-embedding",
        common,
        "plot an embedding (map, periodic table, similarity)",
        "Plot an element embedding: a 2-D PCA or t-SNE map with element labels, coloured by "
        "group or block (--kind map, the default); one vector component or the vector norm on "
        "a periodic table (--kind periodic-table); or the cosine-similarity matrix ordered by "
        "atomic number (--kind similarity).",
        "examples:\n"
        "  crysatom plot-embedding crysatom -o crysatom_pca.png\n"
        "  crysatom plot-embedding skipatom --method tsne --color block -o skipatom_tsne.png\n"
        "  crysatom plot-embedding crysatom --kind periodic-table --component 3 -o c3.png\n"
        "  crysatom plot-embedding atom2vec --kind similarity -o atom2vec_similarity.png",
    )
    p.add_argument("name", metavar="NAME", help="embedding name")
    p.add_argument("--dim", type=_positive_int, default=None, help="vector dimension")
    p.add_argument("--kind", choices=("map", "periodic-table", "similarity"), default="map")
    p.add_argument("--method", choices=("pca", "tsne"), default="pca", help="map projection")
    p.add_argument("--color", choices=("group", "block"), default="group", help="map colours")
    p.add_argument("--no-labels", action="store_true", help="map without element labels")
    p.add_argument(
        "--component", type=int, default=None, help="periodic-table: component (default: norm)"
    )
    p.add_argument("--dpi", type=_positive_int, default=150)
    p.add_argument("-o", "--output", required=True, metavar="FILE", help=".png, .pdf or .svg")
    p.set_defaults(handler=_cmd_plot_embedding)

    # pretrain (documented here; handled before parsing so that its options pass through)
    subparsers.add_parser(
        "pretrain",
        help="forward to 'python -m training.pretrain' (repository checkout)",
        add_help=False,
    )
    return parser


def _version() -> str:
    from crysatom_featurizers import __version__

    return __version__


def _known_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [
        CLIError,
        ValueError,
        TypeError,
        KeyError,
        OSError,
        ImportError,
        RuntimeError,
        FloatingPointError,
    ]
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``crysatom`` program.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit status: 0 on success, 1 on errors, 2 on invalid options, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    # 'pretrain' forwards everything after it untouched.
    head = [a for a in argv if a not in ("--debug", "-q", "--quiet")]
    if head and head[0] == "pretrain":
        rest = argv[argv.index("pretrain") + 1 :]
        if rest in (["-h"], ["--help"]):
            print(PRETRAIN_HELP)
            if _pretrain_location() is None:
                return 0
            print("options of python -m training.pretrain:\n", flush=True)
        return _cmd_pretrain(rest, debug)

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0 if not argv else 2  # bare `crysatom` asks for help; options alone are a misuse
    args.debug = getattr(args, "debug", False)
    args.quiet = getattr(args, "quiet", False)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                # pymatgen and torch warn about data quirks the messages already cover.
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", FutureWarning)
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except _known_errors() as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {_short_error(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # anything unexpected still gets one line
        if args.debug:
            raise
        print(
            f"{PROG}: error: unexpected {type(exc).__name__}: {_short_error(exc)} "
            "(rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
