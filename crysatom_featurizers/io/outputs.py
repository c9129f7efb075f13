"""Writing files atomically: features, models, figures and any other file of the package.

:func:`atomic_write` writes under a temporary name in the same folder and renames the file into
place once everything was written; :func:`write_table`, :func:`save_model` and
:func:`save_figure` write through it. Failures raise :class:`FileWriteError`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = [
    "FileWriteError",
    "TABLE_SUFFIXES",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_output_path",
    "save_figure",
    "save_model",
    "write_table",
]

#: File name endings :func:`write_table` understands (CSV, gzip-compressed CSV, parquet).
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


# ------------------------------------------------------------------------------------------
# Atomic writes
# ------------------------------------------------------------------------------------------


class FileWriteError(OSError):
    """A file could not be written; the previous file at that path, if any, is unchanged.

    ``errno`` and ``strerror`` are those of the underlying :class:`OSError` and ``filename`` is
    the path that was to be written. ``str()`` is one line naming it, e.g.
    ``cannot write out.csv: [Errno 27] File too large``.
    """

    def __str__(self) -> str:
        reason = self.strerror if self.errno is None else f"[Errno {self.errno}] {self.strerror}"
        return f"cannot write {self.filename}: {reason}"


def _write_error(shown: str, exc: OSError) -> FileWriteError:
    if isinstance(exc, FileWriteError):
        return exc
    if exc.errno is not None and exc.strerror:
        reason = exc.strerror
    else:  # e.g. pyarrow's errors carry only a message
        reason = " ".join(str(exc).split()) or type(exc).__name__
    return FileWriteError(exc.errno, reason, shown)


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Reading it means setting it: the most private value for the instant in between.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _new_file_mode(target: Path) -> int:
    """Permissions for the written file: those of the file it replaces, else the umask's."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str],
    mode: str = "w",
    *,
    encoding: str | None = None,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it to ``path`` once the block succeeds.

    The temporary file is a hidden file in the same folder, so the final ``os.replace`` is an
    atomic rename on the same file system: readers see either the previous file or the complete
    new one, never a truncated one. The data are flushed to disk (``fsync``) before the rename.
    On any exception (a failed write, ``KeyboardInterrupt``, an error in the caller's block) the
    temporary file is removed and the previous file at ``path`` is left intact. Missing parent
    folders are created. A file that is replaced keeps its permission bits; a new one gets the
    usual ``0o666`` less the umask. When ``path`` is a symbolic link the file it points to is
    replaced.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    mode : {"w", "wt", "wb"}, default "w"
        Text or binary mode.
    encoding : str, optional
        Text mode only; default ``"utf-8"``.
    newline : str, optional
        Text mode only; as for :func:`open`.

    Yields
    ------
    file object
        The open temporary file; write to it inside the ``with`` block.

    Raises
    ------
    FileWriteError
        When creating, writing, flushing or renaming the file fails with an :class:`OSError`;
        its message names ``path`` (``cannot write out.csv: [Errno 27] File too large``).
        Other exceptions raised in the block propagate unchanged.

    Examples
    --------
    >>> with atomic_write("features.csv") as handle:  # doctest: +SKIP
    ...     frame.to_csv(handle, index=False)
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write mode must be 'w', 'wt' or 'wb', got {mode!r}")
    binary = "b" in mode
    if binary and (encoding is not None or newline is not None):
        raise ValueError("encoding and newline apply to text mode only")
    shown = os.fspath(path)
    target = Path(path)
    try:
        if target.is_symlink():
            target = Path(os.path.realpath(target))
        target.parent.mkdir(parents=True, exist_ok=True)
        handle_fd, temporary = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".part", dir=target.parent
        )
    except OSError as exc:
        raise _write_error(shown, exc) from exc
    try:
        options = {} if binary else {"encoding": encoding or "utf-8", "newline": newline}
        handle = os.fdopen(handle_fd, mode, **options)
    except BaseException:
        os.close(handle_fd)
        os.unlink(temporary)
        raise
    try:
        try:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            # Closing flushes what is left, which may fail again: report the first error.
            with contextlib.suppress(OSError):
                handle.close()
            raise
        handle.close()
        os.chmod(temporary, _new_file_mode(target))
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise _write_error(shown, exc) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; returns the path as a Path."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", newline: str | None = None
) -> Path:
    """Write ``text`` to ``path`` with :func:`atomic_write`; returns the path as a Path."""
    with atomic_write(path, "w", encoding=encoding, newline=newline) as handle:
        handle.write(text)
    return Path(path)


# ------------------------------------------------------------------------------------------
# Output files
# ------------------------------------------------------------------------------------------


def check_output_path(path: str | os.PathLike[str], suffixes: Sequence[str]) -> Path:
    """Check an output name before any work is done, and create its folder.

    Parameters
    ----------
    path : str or os.PathLike
        The file to be written.
    suffixes : sequence of str
        Accepted endings, lower case (``".csv"``, ``".csv.gz"``, ...).

    Returns
    -------
    Path
        ``path`` as a Path.

    Raises
    ------
    ValueError
        When the name does not end in one of ``suffixes``.
    IsADirectoryError
        When ``path`` is an existing folder.
    NotADirectoryError
        When a folder of ``path`` is an existing file (``table.csv/out.csv``).
    """
    path = Path(path)
    name = path.name.lower()
    if not any(name.endswith(s) for s in suffixes):
        raise ValueError(f"output {path} must end with one of: {', '.join(suffixes)}")
    if path.is_dir():
        raise IsADirectoryError(f"output {path} is a directory; give a file name")
    for folder in [path.parent, *path.parent.parents]:  # a file where a folder must be
        if folder.exists():
            if not folder.is_dir():
                raise NotADirectoryError(
                    f"output {path}: {folder} is a file, not a folder; choose another path"
                )
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


#: Cells per chunk when a CSV is written piece by piece (about 32 MB of float64).
_CSV_CHUNK_CELLS = 4_000_000


def _csv_chunks(frame: pd.DataFrame, progress: bool) -> Iterable[pd.DataFrame]:
    rows = max(1, _CSV_CHUNK_CELLS // max(1, frame.shape[1]))
    starts = range(0, len(frame), rows)
    if progress and len(starts) > 1:
        from tqdm.auto import tqdm

        # disable=None: drawn only when stderr is a terminal
        starts = tqdm(starts, desc="writing CSV", unit="chunk", disable=None, file=sys.stderr)
    for start in starts:
        yield frame.iloc[start : start + rows]


def _write_csv(frame: pd.DataFrame, handle: Any, progress: bool) -> None:
    """CSV in chunks, never the whole text in memory: formatted with pyarrow's compute
    functions when pyarrow is installed (several times faster than pandas on wide numeric
    tables, with pandas' conventions: shortest round-trip floats that always show a decimal
    point or exponent, empty missing values, minimal quoting), else with pandas."""
    try:
        import pyarrow as pa

        schema = pa.Schema.from_pandas(frame, preserve_index=False)
    except (ImportError, TypeError, ValueError, ArithmeticError):  # pyarrow's errors included
        schema = None
    if schema is None or len(frame) == 0:
        for i, chunk in enumerate(_csv_chunks(frame, progress)):
            chunk.to_csv(handle, index=False, header=i == 0)
        if len(frame) == 0:
            frame.to_csv(handle, index=False)
        return
    import csv
    import io

    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([str(c) for c in frame.columns])
    handle.write(header.getvalue().encode())
    for chunk in _csv_chunks(frame, progress):
        table = pa.Table.from_pandas(chunk, schema=schema, preserve_index=False)
        handle.write(_csv_lines(table))


def _csv_text(column: Any) -> Any:
    """One column as CSV fields (a string array without nulls)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(column.type):
        text = pc.cast(column, pa.string())
        if pc.any(pc.equal(column, pc.floor(column))).as_py():  # whole numbers: few columns
            whole = pc.match_substring_regex(text, r"^-?[0-9]+$")  # 1 -> 1.0, -0 -> -0.0
            text = pc.if_else(whole, pc.binary_join_element_wise(text, ".0", ""), text)
    elif pa.types.is_boolean(column.type):
        text = pc.if_else(column, "True", "False")
    elif pa.types.is_integer(column.type):
        text = pc.cast(column, pa.string())
    else:
        text = pc.cast(column, pa.string())
        needs = pc.match_substring_regex(text, '[",\r\n]')
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', "")
        text = pc.if_else(needs, quoted, text)
    return pc.fill_null(text, "")


def _csv_lines(table: Any) -> memoryview:
    """The CSV rows of ``table`` as UTF-8 bytes, each ending in a newline."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    fields = [_csv_text(column) for column in table.columns]
    rows = pc.binary_join_element_wise(*fields, ",") if len(fields) > 1 else fields[0]
    lines = pc.binary_join_element_wise(rows, "\n", "")
    lines = lines.combine_chunks() if isinstance(lines, pa.ChunkedArray) else lines
    lines = lines.cast(pa.large_string()) if len(lines) else lines
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    data = lines.buffers()[2]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])] if len(lines) else memoryview(b"")


def write_table(
    frame: pd.DataFrame, path: str | os.PathLike[str], *, progress: bool = False
) -> Path:
    """Write ``frame`` without its index, atomically.

    CSV for ``.csv`` (written in chunks, with pyarrow's CSV writer when pyarrow is installed;
    missing values are empty cells), gzip-compressed CSV for ``.csv.gz`` (no time stamp, so
    equal tables give equal files), parquet for ``.parquet`` / ``.pq``. ``progress`` shows a
    bar over the chunks of a large CSV when stderr is a terminal.

    Raises
    ------
    ImportError
        For parquet without pyarrow or fastparquet installed.
    FileWriteError
        When the file cannot be written; a previous file at ``path`` is left intact.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        if importlib.util.find_spec("pyarrow") is None and (
            importlib.util.find_spec("fastparquet") is None
        ):
            raise ImportError(f"writing parquet ({path}) needs pyarrow: pip install pyarrow")
        with atomic_write(path, "wb") as handle:
            frame.to_parquet(handle, index=False)
    elif name.endswith(".gz"):
        with atomic_write(path, "wb") as handle:
            frame.to_csv(handle, index=False, compression={"method": "gzip", "mtime": 0})
    else:
        with atomic_write(path, "wb") as handle:
            _write_csv(frame, handle, progress)
    return path


def save_model(model: Any, path: str | os.PathLike[str]) -> Path:
    """Save ``model`` with :func:`joblib.dump`, atomically; returns the path.

    Raises
    ------
    FileWriteError
        When the file cannot be written; a previous model at ``path`` is left intact.
    """
    import joblib

    with atomic_write(path, "wb") as handle:
        joblib.dump(model, handle)
    return Path(path)


def save_figure(figure: Any, path: str | os.PathLike[str], *, dpi: int = 150) -> Path:
    """Save a matplotlib figure, atomically, in the format its file name ends in.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
        The figure to save; it is not closed.
    path : str or os.PathLike
        ``.png``, ``.pdf``, ``.svg``, ``.jpg`` ... (any format matplotlib writes).
    dpi : int, default 150
        Resolution of raster formats, dots per inch.

    Raises
    ------
    ValueError
        When the name has no extension.
    FileWriteError
        When the file cannot be written; a previous file at ``path`` is left intact.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if not fmt:
        raise ValueError(f"cannot tell the image format of {path}: give it an extension (.png)")
    with atomic_write(path, "wb") as handle:
        figure.savefig(handle, format=fmt, dpi=dpi, bbox_inches="tight")
    return path
