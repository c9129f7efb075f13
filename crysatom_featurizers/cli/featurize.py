"""``crysatom featurize``: element-embedding features of crystals or formulas."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crysatom_featurizers.cli._common import (
    CHUNK_ROWS,
    ERROR_COLUMN,
    OUTPUT_SUFFIXES,
    CLIError,
    _check_not_an_input,
    _check_output_path,
    _echo,
    _input_source,
    _load_embedding,
    _progress,
    _raise_first_error,
    _write_table,
    read_input,
)
from crysatom_featurizers.io import InputTable, short_error

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import pandas as pd


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
) -> tuple[list[str], np.ndarray, list[str | None]]:
    """Feature labels, the features of every row of ``frame`` (one float array, filled chunk
    by chunk: no copies of the whole table) and each row's error message (None where fine)."""
    import numpy as np

    labels = list(featurizer.feature_labels())
    error_label = f"{type(featurizer).__name__} Exceptions"
    values = np.full((len(frame), len(labels)), np.nan)
    messages: list[str | None] = []
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
            values[start : start + len(chunk)] = result[labels].to_numpy(dtype=float)
            messages.extend(
                None if (not isinstance(e, str) and (e is None or np.isnan(e))) else short_error(e)
                for e in result[error_label]
            )
            bar.update(len(chunk))
    return labels, values, messages


def _cmd_featurize(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    # Without INPUT the example crystals are featurized (documented; --example says so too).
    _input_source(args.input, args.example, "INPUT")
    output = _check_output_path(args.output, OUTPUT_SUFFIXES)
    _check_not_an_input(output, args.input)
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
        labels, values, site_errors = _featurize_in_chunks(
            featurizer, sites, ["structure", "site_index"], args
        )
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
        body = pd.DataFrame(values, columns=labels, copy=False)
        result = pd.concat([left, body], axis=1, copy=False)
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
        labels, values, messages = _featurize_in_chunks(featurizer, subset, column, args)
        for row, message in enumerate(messages):
            if message is not None:
                errors[valid[row]] = message
        if not args.ignore_errors:
            _raise_first_error(table, errors, hint)
        if len(valid) < n:  # rows that could not be read stay NaN
            full = np.full((n, len(labels)), np.nan)
            full[valid] = values
            values = full
        body = pd.DataFrame(values, columns=labels, copy=False)
        result = pd.concat([base, body], axis=1, copy=False)
        if args.ignore_errors:
            result[ERROR_COLUMN] = [errors.get(i) for i in range(n)]
        noun = "structures" if table.has_structures else "compositions"
        n_items = f"{n} {noun}"
    _write_table(result, output, args)
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
