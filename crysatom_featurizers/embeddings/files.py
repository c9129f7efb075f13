"""Reading and writing element-embedding files: the package's JSON format, CSV, and plain
``{"vectors": {symbol: [...]}}`` JSON from other sources.

Every reader validates what it reads and raises :class:`EmbeddingFileError` naming the file and
the problem; every writer goes through :func:`crysatom_featurizers.io.atomic_write_bytes`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from crysatom_featurizers.chemistry import is_element
from crysatom_featurizers.io import atomic_write_bytes

__all__ = [
    "FILE_FORMAT",
    "FILE_FORMAT_VERSION",
    "EmbeddingFileError",
    "vectors_checksum",
    "jsonable",
    "read_csv_embedding",
    "read_json_embedding",
    "write_csv_embedding",
    "write_json_embedding",
]


FILE_FORMAT = "crysatom-featurizers/element-embedding"
FILE_FORMAT_VERSION = 1


class EmbeddingFileError(ValueError):
    """A vector file that cannot be read: corrupt, truncated or inconsistent.

    The message names the file and what is wrong with it.

    Attributes
    ----------
    path : str
        The file that failed to load.
    problem : str
        What is wrong with it.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"invalid element-embedding file {self.path!r}: {problem}")

    def __reduce__(self):
        return (type(self), (self.path, self.problem))


def vectors_checksum(symbols: Sequence[str], vectors: np.ndarray) -> str:
    """SHA-256 hex digest identifying an embedding's content.

    The digest covers, in this order: the symbols joined by ``","`` and encoded
    as UTF-8, one byte ``b"\\n"``, then the vectors as C-ordered float32
    little-endian bytes (``np.asarray(vectors, dtype="<f4").tobytes()``).
    The embedding's name and metadata are not part of it.

    Parameters
    ----------
    symbols : sequence of str
        Element symbols, in the row order of ``vectors``.
    vectors : numpy.ndarray
        Matrix of shape ``(len(symbols), dim)``.

    Returns
    -------
    str
        64-character lowercase hex digest.
    """
    digest = hashlib.sha256()
    digest.update(",".join(symbols).encode("utf-8"))
    digest.update(b"\n")
    digest.update(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
    return digest.hexdigest()


def read_json_embedding(cls: type, path: Path) -> Any:
    """Read a JSON (``.json`` or ``.json.gz``) vector file; see :meth:`ElementEmbedding.from_json`."""
    raw = _read_bytes(path)
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise EmbeddingFileError(path, f"not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise EmbeddingFileError(path, f"not valid JSON ({exc})") from None
    return _embedding_from_document(cls, document, path)


def read_csv_embedding(cls: type, path: Path, name: str | None = None) -> Any:
    """Read a CSV vector file; see :meth:`ElementEmbedding.from_csv`."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EmbeddingFileError(path, f"not UTF-8 text ({exc})") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if any(c.strip() for c in row)]
    except csv.Error as exc:
        raise EmbeddingFileError(path, f"not valid CSV ({exc})") from None
    if rows and _is_header(rows[0]):
        rows = rows[1:]
    if not rows:
        raise EmbeddingFileError(path, "no data rows")
    width = len(rows[0])
    if width < 2:
        raise EmbeddingFileError(path, "expected an element column followed by >= 1 number")
    symbols: list[str] = []
    values = np.empty((len(rows), width - 1), dtype=np.float64)
    for i, row in enumerate(rows):
        line = i + 1
        if len(row) != width:
            raise EmbeddingFileError(
                path, f"wrong shape: data row {line} has {len(row)} cells, expected {width}"
            )
        symbols.append(row[0].strip())
        try:
            values[i] = [float(cell) for cell in row[1:]]
        except ValueError:
            raise EmbeddingFileError(
                path, f"data row {line} ({row[0].strip()!r}) has a cell that is not a number"
            ) from None
    if name is None:
        name = path.name.split(".")[0] or "custom"
    metadata = {"source": f"file {path.name}"}
    return _construct(cls, path, name, symbols, values, metadata)


def write_json_embedding(embedding: Any, path: Path, *, indent: int | None = None) -> Path:
    """Write ``embedding.to_document()`` as JSON (gzip when the name ends in ``.gz``)."""
    text = json.dumps(embedding.to_document(), indent=indent, allow_nan=False)
    data = text.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
    return path


def write_csv_embedding(embedding: Any, path: Path) -> Path:
    """Write the vectors as CSV (header ``element,{name}_0,...``; gzip for ``.gz``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["element", *[f"{embedding.name}_{i}" for i in range(embedding.dim)]])
    for symbol, row in zip(embedding.symbols, embedding.vectors.astype(np.float64)):
        writer.writerow([symbol, *[repr(float(v)) for v in row]])
    data = buffer.getvalue().encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write_bytes(path, data)
    return path


def _is_header(row: list[str]) -> bool:
    if not row or not is_element(row[0].strip()):
        return True
    for cell in row[1:]:
        try:
            float(cell)
        except ValueError:
            return True
    return False


def _read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"element-embedding file not found: {str(path)!r}")
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise EmbeddingFileError(path, "is a directory, not a file") from None
    if data[:2] == b"\x1f\x8b" or path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except EOFError:
            raise EmbeddingFileError(path, "truncated gzip stream (file is incomplete)") from None
        except (OSError, zlib.error) as exc:
            raise EmbeddingFileError(path, f"corrupt gzip data ({exc})") from None
    if not data.strip():
        raise EmbeddingFileError(path, "file is empty")
    return data


def _construct(
    cls: type, path: Path, name: str, symbols: list[str], values: Any, metadata: Mapping[str, Any]
) -> Any:
    """Run the constructor's validation, reporting failures against ``path``."""
    unknown = [s for s in symbols if not isinstance(s, str) or not is_element(s)]
    if unknown:
        raise EmbeddingFileError(
            path,
            f"unknown element symbols {unknown[:10]} (expected canonical symbols such as 'Fe')",
        )
    seen: set[str] = set()
    duplicates = sorted({s for s in symbols if s in seen or seen.add(s)})
    if duplicates:
        raise EmbeddingFileError(path, f"duplicate element symbols {duplicates}")
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and not np.isfinite(array).all():
        bad = [symbols[i] for i in np.flatnonzero(~np.isfinite(array).all(axis=1))]
        raise EmbeddingFileError(path, f"non-finite values (NaN/inf) in the vectors of {bad}")
    with np.errstate(over="ignore"):
        if array.ndim == 2 and not np.isfinite(array.astype(np.float32)).all():
            raise EmbeddingFileError(path, "values too large for float32")
    try:
        return cls(name, symbols, array, metadata)
    except ValueError as exc:
        raise EmbeddingFileError(path, str(exc)) from None


def _embedding_from_plain_mapping(cls: type, document: dict, path: Path) -> Any:
    """A third-party file ``{"vectors": {symbol: [floats]}, ...}`` (no package metadata).

    The name is the file's stem; ``source``, ``license`` and ``dim`` (checked) are kept.
    """
    name = path.name.split(".")[0]
    try:
        embedding = cls.from_dict(
            document["vectors"],
            name=name,
            metadata={
                "source": str(document.get("source", path)),
                "license": str(document.get("license", "unknown")),
                "file": str(path),
            },
        )
    except (TypeError, ValueError) as exc:
        raise EmbeddingFileError(path, str(exc)) from None
    dim = document.get("dim")
    if dim is not None and dim != embedding.dim:
        raise EmbeddingFileError(
            path, f"field 'dim' is {dim!r} but the vectors have length {embedding.dim}"
        )
    return embedding


def _embedding_from_document(cls: type, document: Any, path: Path) -> Any:
    if not isinstance(document, dict):
        raise EmbeddingFileError(
            path, f"top level must be a JSON object, got {type(document).__name__}"
        )
    if "format" not in document and isinstance(document.get("vectors"), dict):
        return _embedding_from_plain_mapping(cls, document, path)
    required = ("format", "format_version", "name", "dim", "symbols", "vectors", "metadata")
    missing = [key for key in required if key not in document]
    if missing:
        raise EmbeddingFileError(path, f"missing fields {missing}")
    if document["format"] != FILE_FORMAT:
        raise EmbeddingFileError(
            path, f"field 'format' is {document['format']!r}, expected {FILE_FORMAT!r}"
        )
    if document["format_version"] != FILE_FORMAT_VERSION:
        raise EmbeddingFileError(
            path,
            f"unsupported format_version {document['format_version']!r} "
            f"(this version reads {FILE_FORMAT_VERSION})",
        )
    name, dim, symbols = document["name"], document["dim"], document["symbols"]
    vectors, metadata = document["vectors"], document["metadata"]
    if not isinstance(name, str) or not name:
        raise EmbeddingFileError(path, f"field 'name' must be a non-empty string, got {name!r}")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise EmbeddingFileError(path, f"field 'dim' must be a positive integer, got {dim!r}")
    if not isinstance(symbols, list) or not symbols:
        raise EmbeddingFileError(path, "field 'symbols' must be a non-empty list")
    if not isinstance(metadata, dict):
        raise EmbeddingFileError(path, "field 'metadata' must be an object")
    if not isinstance(vectors, list) or len(vectors) != len(symbols):
        got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
        raise EmbeddingFileError(path, f"wrong shape: {len(symbols)} symbols but {got} vector rows")
    for symbol, row in zip(symbols, vectors):
        if not isinstance(row, list) or len(row) != dim:
            got = len(row) if isinstance(row, list) else type(row).__name__
            raise EmbeddingFileError(
                path, f"wrong shape: the vector of {symbol!r} has length {got}, expected dim={dim}"
            )
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
            raise EmbeddingFileError(path, f"the vector of {symbol!r} holds non-numbers")
    checksum = metadata.get("checksum")
    if not isinstance(checksum, str):
        raise EmbeddingFileError(path, "missing field 'metadata.checksum' (sha256 of the vectors)")
    embedding_values = np.asarray(vectors, dtype=np.float64)
    embedding = _construct(cls, path, name, list(symbols), embedding_values, metadata)
    # The stored checksum covers the file's own row order.
    actual = vectors_checksum(symbols, embedding_values)
    if actual != checksum:
        raise EmbeddingFileError(
            path,
            f"checksum mismatch: metadata says {checksum}, the vectors hash to {actual} "
            "(file edited or corrupted)",
        )
    return embedding


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays inside metadata into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
