"""What the ``crysatom`` commands share: constants, the one-line error, output and input helpers.

File reading and writing live in :mod:`crysatom_featurizers.io`, which raises ordinary
exceptions; :func:`user_errors` turns those into :class:`CLIError` one-line messages.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from crysatom_featurizers import io
from crysatom_featurizers.io import InputTable, short_error

PROG = "crysatom"
LEVELS = ("site", "composition", "structure")
OUTPUT_SUFFIXES = io.TABLE_SUFFIXES
#: Model files: the safe format first (the one to share); the pickle-based ones load only with
#: ``crysatom predict --trust-pickle``.
SAFE_MODEL_SUFFIX = ".safetensors"
PICKLE_MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
MODEL_SUFFIXES = (SAFE_MODEL_SUFFIX, *PICKLE_MODEL_SUFFIXES)
TRUST_FLAG = "--trust-pickle"
FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")
# Rows featurized per call, so that the progress bar moves on large inputs.
CHUNK_ROWS = 2000
ERROR_COLUMN = "error"
# Statistic names accepted by the pooling featurizers (matminer PropertyStats names + aliases).
STAT_NAMES = (
    "mean", "std_dev", "min", "max", "minimum", "maximum", "range", "avg_dev", "mode",
    "skewness", "kurtosis",
)  # fmt: skip
INPUT_FORMATS = "a CIF folder, .cif, .csv or .json(.gz)"


class CLIError(Exception):
    """An error reported to the user on one line, without a traceback."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report the exceptions of file reading and writing as :class:`CLIError` one-liners."""
    try:
        yield
    except (ValueError, OSError, ImportError) as exc:
        raise CLIError(short_error(exc)) from exc


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


def _load_embedding(name: str, dim: int | None):
    from crysatom_featurizers.embeddings import EmbeddingNotAvailableError, resolve

    try:
        return resolve(name, dim)
    except EmbeddingNotAvailableError as exc:
        raise CLIError(
            f"{short_error(exc)}. Pick another embedding with --embedding "
            "(see 'crysatom embeddings list')"
        ) from exc


# ------------------------------------------------------------------------------------------
# Inputs and outputs
# ------------------------------------------------------------------------------------------


def _check_output_path(path: str | Path, suffixes: Sequence[str]) -> Path:
    """The output as a Path, after checking its name; its folder is created."""
    with user_errors():
        return io.check_output_path(path, suffixes)


def _check_not_an_input(
    output: Path, *inputs: str | Path | None, flag: str = "-o", what: str = "the output"
) -> None:
    """Refuse an output path that is one of the inputs (or a folder input's id_prop.csv), before
    any work: writing it would destroy the data it was made from. ``flag`` and ``what`` name
    the option that gave ``output`` in the message."""
    out = Path(output).expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).expanduser().resolve()
        used = [source / "id_prop.csv"] if source.is_dir() else [source]
        for path in used:
            if out == path or (out.exists() and path.exists() and os.path.samefile(out, path)):
                raise CLIError(
                    f"{what} {output} ({flag}) is the input {path}; writing it would destroy "
                    f"the input: choose another {flag}"
                )


def _write_table(frame: Any, path: Path, args: argparse.Namespace | None = None) -> None:
    """Write ``frame`` as CSV or parquet, atomically (see :func:`io.write_table`); a progress
    bar over a large CSV on a terminal unless ``-q``."""
    progress = args is not None and not getattr(args, "quiet", False)
    with user_errors():
        io.write_table(frame, path, progress=progress)


def _input_source(given: str | None, example: bool, name: str) -> str | None:
    """Check the INPUT/DATA argument against ``--example``; None means the examples."""
    if example and given:
        raise CLIError(f"give either {name} or --example, not both")
    if given is not None and not Path(given).expanduser().exists():
        raise CLIError(f"input {given} does not exist")
    return given


def read_input(
    source: str | None,
    args: argparse.Namespace,
    *,
    use_id_prop: bool = False,
    limit: int | None = None,
) -> InputTable:
    """Read ``source`` (None: the example crystals) with the options of ``args``."""
    with user_errors():
        return io.read_input(
            source,
            target=getattr(args, "target", None),
            use_id_prop=use_id_prop,
            limit=limit,
            progress=not getattr(args, "quiet", False),
        )


def _raise_first_error(table: InputTable, errors: dict[int, str], hint: str) -> None:
    if errors:
        position = min(errors)
        more = f" ({len(errors) - 1} more row(s) failed)" if len(errors) > 1 else ""
        raise CLIError(f"{table.describe(position)}: {errors[position]}{more}; {hint}")


def _use_agg() -> None:
    """Use the file-only Agg backend unless pyplot is already in use."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("plotting needs matplotlib: pip install 'crysatom-featurizers[plot]'")
    if "matplotlib.pyplot" not in sys.modules:
        import matplotlib

        matplotlib.use("Agg")


def _save_figure(figure: Any, path: Path, dpi: int = 150) -> None:
    """Save ``figure`` atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with user_errors():
            io.save_figure(figure, path, dpi=dpi)
    finally:
        plt.close(figure)
