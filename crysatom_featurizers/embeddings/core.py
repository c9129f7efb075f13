"""The :class:`ElementEmbedding` container, its errors and its on-disk formats.

An element embedding maps chemical elements to fixed-length float32 vectors.
Files are plain JSON (optionally gzip-compressed) or CSV; nothing is ever
unpickled. Every file is validated on load, and any problem raises
:class:`EmbeddingFileError` naming the file and the fault.

JSON layout (``format_version`` 1)::

    {
      "format": "crysatom-featurizers/element-embedding",
      "format_version": 1,
      "name": "skipatom",
      "dim": 200,
      "symbols": ["H", "Li", ...],            # element symbols, sorted by atomic number
      "vectors": [[...200 numbers...], ...],  # one row per symbol
      "metadata": {"source": ..., "citation": ..., "license": ..., "checksum": "<sha256>"}
    }

The checksum is defined by :func:`vectors_checksum`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crysatom_featurizers.chemistry import (
    ELEMENT_SYMBOLS,
    atomic_number,
    is_element,
    parse_species,
)

from .files import (
    FILE_FORMAT,
    FILE_FORMAT_VERSION,
    EmbeddingFileError,
    jsonable,
    read_csv_embedding,
    read_json_embedding,
    vectors_checksum,
    write_csv_embedding,
    write_json_embedding,
)

__all__ = [
    "FILE_FORMAT",
    "FILE_FORMAT_VERSION",
    "ELEMENT_SYMBOLS",
    "ElementEmbedding",
    "EmbeddingFileError",
    "UnknownElementError",
    "atomic_number",
    "vectors_checksum",
]


# Metadata keys every embedding carries (None when unknown).
_STANDARD_METADATA = ("source", "citation", "corpus", "corpus_size", "license")


class UnknownElementError(ValueError):
    """An element (or species) that an embedding does not cover.

    Raised for elements missing from the embedding, for ``DummySpecies`` and for
    strings that do not name an element. The message names the element, the
    embedding and the elements the embedding covers.

    Attributes
    ----------
    element : str
        The offending element, species or input, as text.
    embedding_name : str
        Name of the embedding that was queried.
    covered : tuple of str
        Symbols the embedding covers, sorted by atomic number.
    """

    def __init__(self, element: str, embedding_name: str, covered: Sequence[str], reason: str = ""):
        self.element = element
        self.embedding_name = embedding_name
        self.covered = tuple(covered)
        self.reason = reason
        detail = reason or f"element {element!r} is not covered by embedding {embedding_name!r}"
        message = (
            f"{detail}; embedding {embedding_name!r} covers {len(self.covered)} elements: "
            f"{', '.join(self.covered)}"
        )
        super().__init__(message)

    def __reduce__(self):  # keep the extra attributes through pickling (joblib workers)
        return (type(self), (self.element, self.embedding_name, self.covered, self.reason))


def _describe(item: Any) -> str:
    return str(item) if not isinstance(item, str) else item


class ElementEmbedding:
    """Fixed-length float32 vectors for chemical elements.

    Parameters
    ----------
    name : str
        Short name of the embedding (``"skipatom"``); used in feature labels.
    symbols : sequence of str
        Canonical element symbols, one per row of ``vectors``. They are stored
        sorted by atomic number (rows are reordered to match).
    vectors : array_like of shape (n_elements, dim)
        Finite numbers; stored as a read-only float32 copy.
    metadata : mapping, optional
        Provenance: ``source``, ``citation``, ``corpus``, ``corpus_size``,
        ``license`` and anything else that is JSON-serializable. ``dim`` and
        ``checksum`` are always recomputed from the vectors.

    Attributes
    ----------
    name : str
        Name of the embedding.
    symbols : list of str
        Covered element symbols, sorted by atomic number.
    vectors : numpy.ndarray
        Read-only float32 matrix of shape ``(len(symbols), dim)``.

    Raises
    ------
    ValueError
        If the symbols are not canonical element symbols, repeat, or do not
        match the vectors' shape, or if a value is not finite.

    Examples
    --------
    >>> emb = ElementEmbedding.from_dict({"Fe": [1.0, 0.0], "O": [0.0, 1.0]}, name="toy")
    >>> emb.symbols
    ['O', 'Fe']
    >>> emb.vector("Fe2+").tolist()
    [1.0, 0.0]
    """

    def __init__(
        self,
        name: str,
        symbols: Sequence[str],
        vectors: Any,
        metadata: Mapping[str, Any] | None = None,
    ):
        if not isinstance(name, str) or not name:
            raise ValueError(f"embedding name must be a non-empty string, got {name!r}")
        symbols = list(symbols)
        for symbol in symbols:
            if not isinstance(symbol, str) or not is_element(symbol):
                raise ValueError(
                    f"embedding {name!r}: {symbol!r} is not an element symbol "
                    "(expected one of the 118 canonical symbols such as 'Fe')"
                )
        if len(set(symbols)) != len(symbols):
            seen: set[str] = set()
            duplicates = sorted({s for s in symbols if s in seen or seen.add(s)})
            raise ValueError(f"embedding {name!r}: duplicate element symbols {duplicates}")
        if not symbols:
            raise ValueError(f"embedding {name!r} has no elements")
        try:
            with np.errstate(over="ignore"):  # overflow to inf is reported below
                array = np.array(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"embedding {name!r}: vectors must be a numeric matrix ({exc})"
            ) from None
        if array.ndim != 2 or array.shape[0] != len(symbols) or array.shape[1] < 1:
            raise ValueError(
                f"embedding {name!r}: expected vectors of shape ({len(symbols)}, dim >= 1) "
                f"for {len(symbols)} symbols, got shape {array.shape}"
            )
        finite = np.isfinite(array)
        if not finite.all():
            bad = [symbols[i] for i in np.flatnonzero(~finite.all(axis=1))]
            raise ValueError(
                f"embedding {name!r}: non-finite values (NaN/inf, or too large for float32) "
                f"in the vectors of {bad}"
            )
        order = np.argsort([atomic_number(s) for s in symbols], kind="stable")
        array = np.ascontiguousarray(array[order])
        array.setflags(write=False)
        self.name = name
        self.symbols = [symbols[i] for i in order]
        self.vectors = array
        self._index = {symbol: i for i, symbol in enumerate(self.symbols)}
        self._checksum = vectors_checksum(self.symbols, self.vectors)
        meta: dict[str, Any] = {key: None for key in _STANDARD_METADATA}
        meta.update(copy.deepcopy(dict(metadata or {})))
        meta["dim"] = int(array.shape[1])
        meta["n_elements"] = len(self.symbols)
        meta["checksum"] = self._checksum
        self._metadata = meta
        self._tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    # ------------------------------------------------------------------ basics
    @property
    def dim(self) -> int:
        """Length of each vector."""
        return int(self.vectors.shape[1])

    @property
    def checksum(self) -> str:
        """SHA-256 of the symbols and vectors (see :func:`vectors_checksum`)."""
        return self._checksum

    @property
    def metadata(self) -> dict[str, Any]:
        """Provenance and bookkeeping (a copy: the embedding itself is immutable)."""
        return copy.deepcopy(self._metadata)

    @property
    def atomic_numbers(self) -> np.ndarray:
        """Atomic numbers of :attr:`symbols` (int64, ascending)."""
        return np.array([atomic_number(s) for s in self.symbols], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return (
            f"ElementEmbedding(name={self.name!r}, dim={self.dim}, n_elements={len(self)}, "
            f"elements={self.symbols[0]}..{self.symbols[-1]})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ElementEmbedding):
            return NotImplemented
        return self.name == other.name and self.checksum == other.checksum

    def __hash__(self) -> int:
        return hash((self.name, self.checksum))

    def __reduce__(self):
        # Rebuild through __init__ so unpickled vectors are read-only again.
        return (type(self), (self.name, self.symbols, np.array(self.vectors), self._metadata))

    # ------------------------------------------------------------------ lookup
    def _element_symbol(self, item: Any) -> str:
        """Map a str / int / Element / Species to a canonical element symbol."""
        if isinstance(item, str) and is_element(item):
            return item
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if 1 <= int(item) <= len(ELEMENT_SYMBOLS):
                return ELEMENT_SYMBOLS[int(item) - 1]
            raise UnknownElementError(
                str(item), self.name, self.symbols, f"{int(item)} is not an atomic number"
            )
        from pymatgen.core.periodic_table import DummySpecies, Element, Species

        if isinstance(item, DummySpecies):
            kind, text = "dummy", str(item)
        elif isinstance(item, Element):
            return item.symbol
        elif isinstance(item, Species):
            return item.element.symbol
        elif isinstance(item, str):
            kind, text = parse_species(item)
        else:
            raise UnknownElementError(
                _describe(item),
                self.name,
                self.symbols,
                f"expected an element symbol, Element or Species, got {type(item).__name__} "
                f"{item!r}",
            )
        if kind == "element":
            return text
        if kind == "dummy":
            raise UnknownElementError(
                text,
                self.name,
                self.symbols,
                f"dummy species {text!r} is not a chemical element and has no vector",
            )
        raise UnknownElementError(
            item, self.name, self.symbols, f"{item!r} does not name an element or species"
        )

    def _row(self, item: Any) -> int:
        symbol = self._element_symbol(item)
        try:
            return self._index[symbol]
        except KeyError:
            shown = symbol if _describe(item) == symbol else f"{symbol} (from {_describe(item)!r})"
            raise UnknownElementError(
                symbol,
                self.name,
                self.symbols,
                f"element {shown} is not covered by embedding {self.name!r}",
            ) from None

    def vector(self, symbol: Any) -> np.ndarray:
        """Vector of one element.

        Parameters
        ----------
        symbol : str, int, pymatgen Element or Species
            ``"Fe"``, ``"Fe2+"``, ``26``, ``Element("Fe")`` or ``Species("Fe", 2)``.
            Oxidation states are ignored: a species maps to its element.

        Returns
        -------
        numpy.ndarray
            Read-only float32 view of shape ``(dim,)``.

        Raises
        ------
        UnknownElementError
            If the element is not covered, or ``symbol`` is a ``DummySpecies``
            or does not name an element.
        """
        return self.vectors[self._row(symbol)]

    def vectors_for(self, symbols: Iterable[Any]) -> np.ndarray:
        """Stack the vectors of several elements into a new ``(n, dim)`` float32 array."""
        rows = [self._row(s) for s in symbols]
        return self.vectors[np.asarray(rows, dtype=np.int64)].copy()

    def __contains__(self, symbol: object) -> bool:
        try:
            self._row(symbol)
        except ValueError:
            return False
        return True

    def as_dataframe(self) -> pd.DataFrame:
        """The embedding as a DataFrame.

        Returns
        -------
        pandas.DataFrame
            Index: the element symbols (named ``"element"``); columns
            ``f"{name}_{i}"`` for ``i`` in ``range(dim)``; float32 values.
        """
        return pd.DataFrame(
            np.array(self.vectors),
            index=pd.Index(self.symbols, name="element"),
            columns=[f"{self.name}_{i}" for i in range(self.dim)],
        )

    def lookup_table(self, max_z: int = 118) -> tuple[np.ndarray, np.ndarray]:
        """Dense table indexed by atomic number, for vectorized lookups.

        Parameters
        ----------
        max_z : int, default 118
            Largest atomic number with a row. Covered elements with a larger Z
            are left out.

        Returns
        -------
        table : numpy.ndarray
            Read-only float32 array of shape ``(max_z + 1, dim)``; row ``Z``
            holds the vector of element ``Z``. Row 0 and the rows of uncovered
            elements are NaN.
        covered : numpy.ndarray
            Read-only bool array of shape ``(max_z + 1,)``, True where row ``Z``
            holds a vector.
        """
        max_z = int(max_z)
        if max_z < 1:
            raise ValueError(f"max_z must be >= 1, got {max_z}")
        if max_z not in self._tables:
            table = np.full((max_z + 1, self.dim), np.nan, dtype=np.float32)
            covered = np.zeros(max_z + 1, dtype=bool)
            z = self.atomic_numbers
            keep = z <= max_z
            table[z[keep]] = self.vectors[keep]
            covered[z[keep]] = True
            table.setflags(write=False)
            covered.setflags(write=False)
            self._tables[max_z] = (table, covered)
        return self._tables[max_z]

    # ---------------------------------------------------------------- creation
    @classmethod
    def from_dict(
        cls,
        mapping: Mapping[Any, Any],
        name: str = "custom",
        metadata: Mapping[str, Any] | None = None,
    ) -> ElementEmbedding:
        """Build an embedding from ``{element: vector}``.

        Parameters
        ----------
        mapping : mapping
            Keys are element symbols, atomic numbers or pymatgen ``Element``
            objects; values are 1-D array-likes of equal length.
        name : str, default "custom"
            Name of the embedding.
        metadata : mapping, optional
            Provenance, see :class:`ElementEmbedding`.

        Raises
        ------
        ValueError
            If a key is not an element, two keys name the same element, or the
            vectors differ in length or hold non-finite values.
        """
        if not isinstance(mapping, Mapping) or not mapping:
            raise ValueError("from_dict expects a non-empty mapping {element: vector}")
        symbols: list[str] = []
        rows: list[np.ndarray] = []
        for key, value in mapping.items():
            symbol = _key_to_symbol(key)
            if symbol is None:
                raise ValueError(
                    f"embedding {name!r}: key {key!r} is not an element symbol "
                    "(use e.g. 'Fe', 26 or Element('Fe'))"
                )
            row = np.asarray(value, dtype=np.float64)
            if row.ndim != 1:
                raise ValueError(
                    f"embedding {name!r}: the vector of {symbol} must be 1-D, got shape {row.shape}"
                )
            symbols.append(symbol)
            rows.append(row)
        lengths = {row.shape[0] for row in rows}
        if len(lengths) != 1:
            by_length = {
                length: [s for s, r in zip(symbols, rows) if r.shape[0] == length]
                for length in sorted(lengths)
            }
            raise ValueError(f"embedding {name!r}: vectors differ in length: {by_length}")
        return cls(name, symbols, np.stack(rows), metadata)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> ElementEmbedding:
        """Load and validate a JSON (``.json`` or ``.json.gz``) vector file.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        EmbeddingFileError
            If the file is corrupt or truncated, is not valid JSON, lacks a
            field, has vectors of the wrong shape, non-finite values, unknown or
            duplicate symbols, or a checksum that does not match its vectors.
        """
        return read_json_embedding(cls, Path(path))

    @classmethod
    def from_csv(cls, path: str | os.PathLike, name: str | None = None) -> ElementEmbedding:
        """Load and validate a CSV vector file (``.csv`` or ``.csv.gz``).

        The first column holds element symbols and the other columns numbers.
        A header row is optional: the first row is taken as a header when its
        first cell is not an element symbol or any other cell is not a number.
        Blank lines are skipped.

        Parameters
        ----------
        path : str or path-like
            The file.
        name : str, optional
            Name of the embedding; defaults to the file name without extensions.

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        EmbeddingFileError
            If the file is unreadable, has no rows, rows of different lengths,
            cells that are not numbers, non-finite values, or unknown or
            duplicate symbols.
        """
        return read_csv_embedding(cls, Path(path), name)

    # ------------------------------------------------------------------ saving
    def to_document(self) -> dict[str, Any]:
        """The JSON document written by :meth:`to_json` (plain Python types)."""
        return {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "name": self.name,
            "dim": self.dim,
            "symbols": list(self.symbols),
            # float32 -> float64 is exact, and Python's float repr round-trips exactly.
            "vectors": self.vectors.astype(np.float64).tolist(),
            "metadata": jsonable(self._metadata),
        }

    def to_json(self, path: str | os.PathLike, *, indent: int | None = None) -> Path:
        """Write the embedding as JSON; gzip-compressed when the name ends in ``.gz``.

        The file is written atomically (:func:`crysatom_featurizers.io.atomic_write`):
        readers never see a half-written file, and a failed write raises
        :class:`~crysatom_featurizers.io.FileWriteError` naming the path and leaves an
        earlier file intact. Returns the path written.
        """
        return write_json_embedding(self, Path(path), indent=indent)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the embedding as CSV (header ``element,{name}_0,...``).

        Metadata is not stored in CSV; use :meth:`to_json` to keep it.
        Gzip-compressed when the name ends in ``.gz``. Written atomically, as
        :meth:`to_json`. Returns the path written.
        """
        return write_csv_embedding(self, Path(path))

    def renamed(self, name: str) -> ElementEmbedding:
        """A copy of this embedding under another name (same vectors and checksum)."""
        return type(self)(name, self.symbols, self.vectors, self._metadata)


# ---------------------------------------------------------------------- helpers
def _key_to_symbol(key: Any) -> str | None:
    if isinstance(key, str):
        return key if is_element(key) else None
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return ELEMENT_SYMBOLS[int(key) - 1] if 1 <= int(key) <= len(ELEMENT_SYMBOLS) else None
    symbol = getattr(key, "symbol", None)
    if type(key).__name__ == "Element" and is_element(symbol):
        return symbol
    return None
