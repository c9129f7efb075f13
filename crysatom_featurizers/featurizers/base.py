"""Shared machinery of the element-embedding featurizers.

:class:`ElementEmbeddingFeaturizer` is a matminer :class:`~matminer.featurizers.base.BaseFeaturizer`
that holds an ``embedding`` (a registry name or an
:class:`~crysatom_featurizers.embeddings.ElementEmbedding`) and a ``dim``, resolves them lazily,
and runs batch work on a vectorized in-process path instead of matminer's process pool.
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd
from matminer.featurizers.base import BaseFeaturizer

from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING
from crysatom_featurizers.graphs.inputs import type_name

if TYPE_CHECKING:
    from crysatom_featurizers.embeddings import ElementEmbedding

#: BibTeX entry of the CrysAtom paper.
CRYSATOM_CITATION = (
    "@inproceedings{mukherjee2024crysatom,\n"
    "  title = {{CrysAtom}: Distributed Representation of Atoms for Crystal Property "
    "Prediction},\n"
    "  author = {Mukherjee, Shrimon and Ghosh, Madhusudan and Basuchowdhuri, Partha},\n"
    "  booktitle = {Proceedings of the Third Learning on Graphs Conference (LoG 2024)},\n"
    "  year = {2024},\n"
    "  eprint = {2409.04737},\n"
    "  archivePrefix = {arXiv},\n"
    "  doi = {10.48550/arXiv.2409.04737}\n"
    "}"
)

_SKIP_HINT = (
    "\nTO SKIP THESE ERRORS when featurizing specific compounds, set 'ignore_errors=True' "
    "when running the batch featurize() operation (e.g., featurize_many(), "
    "featurize_dataframe(), etc.)."
)


class ResolvedEmbedding:
    """An embedding together with its float64 lookup table indexed by atomic number.

    Attributes
    ----------
    embedding : ElementEmbedding
    name : str
    dim : int
    table : numpy.ndarray of float64, shape (119, dim)
        Row ``Z`` is the vector of element ``Z``; row 0 and uncovered rows are NaN.
    covered : numpy.ndarray of bool, shape (119,)
    """

    def __init__(self, embedding: ElementEmbedding):
        table, covered = embedding.lookup_table()
        self.embedding = embedding
        self.name = embedding.name
        self.dim = embedding.dim
        self.table = np.asarray(table, dtype=np.float64)
        self.covered = np.asarray(covered, dtype=bool)

    def missing_error(self, symbol: str, *, dummy: bool = False, where: str = "") -> ValueError:
        """The error for an element (or DummySpecies) this embedding has no vector for."""
        from crysatom_featurizers.embeddings import UnknownElementError

        if dummy:
            reason = f"dummy species {symbol!r} is not a chemical element and has no vector"
        else:
            reason = f"element {symbol} is not covered by embedding {self.name!r}"
        if where:
            reason = f"{where}: {reason}"
        return UnknownElementError(symbol, self.name, self.embedding.symbols, reason)


def _registry_name(name: Any, cls: type) -> str:
    """``name`` if it is a registry embedding; otherwise a ValueError listing the names."""
    from crysatom_featurizers.embeddings import available

    if not isinstance(name, str):
        raise TypeError(
            f"{cls.__name__}.from_preset takes a registry name (str), got {type_name(name)}"
        )
    names = available()["name"].tolist()
    if name.strip().lower() not in names:
        raise ValueError(
            f"unknown preset {name!r} for {cls.__name__}.from_preset; known presets (the "
            f"registry embeddings): {', '.join(names)}"
        )
    return name.strip().lower()


class PresetEmbeddingMixin:
    """Fixes the embedding of a preset class to its :attr:`preset` registry name.

    A preset takes every parameter of its generic class except ``embedding``; passing one
    (positionally or as ``embedding=``) raises a TypeError that names the generic class to use
    instead, so a preset never silently runs on another embedding. Put the mixin first in the
    bases and let ``__init__`` take keyword arguments only.
    """

    #: Registry name of the embedding this class always uses.
    preset: ClassVar[str]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # __new__ sees the arguments before __init__ (whose signature scikit-learn reads for
        # get_params), so the check needs no ``embedding`` parameter. Pickling and clone call
        # it without positional arguments and without ``embedding``.
        if "embedding" in kwargs:
            raise TypeError(cls._embedding_message(kwargs["embedding"]))
        if args:
            from crysatom_featurizers.embeddings import ElementEmbedding

            if isinstance(args[0], (str, os.PathLike, ElementEmbedding)):
                raise TypeError(cls._embedding_message(args[0]))
            raise TypeError(
                f"{cls.__name__} takes keyword arguments only, e.g. {cls.__name__}(dim=...)"
            )
        return super().__new__(cls)

    @classmethod
    def _generic_class(cls) -> type:
        """The generic class this preset specialises (the first non-preset base)."""
        return next(
            base
            for base in cls.__mro__
            if base is not object and not issubclass(base, PresetEmbeddingMixin)
        )

    @classmethod
    def _embedding_message(cls, given: Any) -> str:
        head = f"{cls.__name__} always uses the {cls.preset!r} embedding"
        if isinstance(given, str) and given.strip().lower() == cls.preset:
            return f"{head} and takes no embedding argument: drop it"
        return f"{head}, not {given!r:.80}; use {cls._instead(given)}"

    @classmethod
    def _instead(cls, given: Any) -> str:
        """How to build the generic class on ``given``, for the error messages."""
        generic = cls._generic_class()
        if not isinstance(given, str):
            return f"{generic.__name__}(embedding=...)"
        instead = f"{generic.__name__}({given!r})"
        if hasattr(generic, "from_preset"):
            instead += f" or {generic.__name__}.from_preset({given!r})"
        return instead

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> Any:
        """``cls(**kwargs)`` when ``name`` is this class's :attr:`preset`; an error otherwise."""
        if isinstance(name, str) and name.strip().lower() == cls.preset:
            return cls(**kwargs)
        raise ValueError(
            f"{cls.__name__} always uses the {cls.preset!r} embedding, not {name!r}; use "
            f"{cls._instead(name)}"
        )


def format_error(error: BaseException) -> str:
    """Text for matminer's error column: the formatted exception, as matminer stores it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def reraise_for_row(error: BaseException, row: Any) -> BaseException:
    """A copy of ``error`` whose message names the failing row and how to skip it."""
    if isinstance(row, np.generic):
        row = row.item()
    elif isinstance(row, tuple):
        row = tuple(item.item() if isinstance(item, np.generic) else item for item in row)
    message = f"row {row!r}: {error}{_SKIP_HINT}"
    from crysatom_featurizers.embeddings import UnknownElementError

    if isinstance(error, UnknownElementError):
        return UnknownElementError(
            error.element,
            error.embedding_name,
            error.covered,
            f"row {row!r}: "
            + (error.reason or f"element {error.element!r} is not covered")
            + " (ignore_errors=True gives such rows NaN features)",
        )
    try:
        return type(error)(message)
    except Exception:  # exception types with unusual constructors
        return ValueError(message)


def join_columns(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """``pd.concat([left, right], axis=1)`` without copying ``right``'s (fresh) feature block.

    Both frames must be owned by the caller: the result may share their memory.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ``copy`` is deprecated where copy-on-write is default
        return pd.concat([left, right], axis=1, copy=False)


class BatchFeaturizer(BaseFeaturizer):
    """matminer's featurizer protocol on one in-process batch path (not used directly).

    Subclasses implement :meth:`_featurize_batch` (many entries at once, errors per entry)
    and :meth:`feature_labels`; :meth:`featurize_many`, :meth:`featurize_dataframe` and
    :meth:`transform` follow matminer's contract on top of it.
    """

    #: Default ``col_id`` of :meth:`featurize_dataframe`.
    default_column = "composition"

    def implementors(self) -> list[str]:
        return ["crysatom-featurizers developers"]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output feature names (scikit-learn's convention), equal to :meth:`feature_labels`.

        Parameters
        ----------
        input_features : array-like of str, optional
            Names of the input column(s); accepted for scikit-learn compatibility and unused,
            since the output names depend only on the embedding and the parameters.

        Returns
        -------
        numpy.ndarray of str (object dtype)
        """
        return np.asarray(self.feature_labels(), dtype=object)

    # ----------------------------------------------------------------- batch protocol
    def _featurize_batch(
        self, entries: Sequence[Any]
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        """Vectorized features of many entries: (array (n, n_features), position -> error)."""
        raise NotImplementedError

    def _run_batch(
        self, entries: Sequence[Any], pbar: bool
    ) -> tuple[np.ndarray, dict[int, BaseException]]:
        """:meth:`_featurize_batch`, with a progress bar where the work is long enough."""
        return self._featurize_batch(entries)

    def _normalize_entries(self, entries: Any) -> list[Any]:
        """matminer accepts a list of inputs or of 1-tuples; reduce both to a list of inputs."""
        if isinstance(entries, pd.DataFrame):
            if entries.shape[1] != 1:
                raise ValueError(
                    f"{type(self).__name__} takes one input column, got {entries.shape[1]}"
                )
            return list(entries.iloc[:, 0])
        if isinstance(entries, pd.Series):
            return list(entries)
        if not isinstance(entries, (list, tuple, np.ndarray)):
            raise TypeError(
                f"entries must be list-like (list, tuple, array, Series), got "
                f"{type(entries).__name__}"
            )
        if isinstance(entries, np.ndarray) and entries.ndim == 2:
            if entries.shape[1] != 1:
                raise ValueError(
                    f"{type(self).__name__} takes one input column, got {entries.shape[1]}"
                )
            return list(entries[:, 0])
        items = list(entries)
        return [
            item[0]
            if isinstance(item, (tuple, list, np.ndarray))
            and not isinstance(item, str)
            and len(item) == 1
            else item
            for item in items
        ]

    def featurize_many(
        self,
        entries: Any,
        ignore_errors: bool = False,
        return_errors: bool = False,
        pbar: bool = False,
    ) -> np.ndarray | list[list[Any]]:
        """Featurize many entries on the vectorized path.

        Parameters
        ----------
        entries : list-like
            Inputs (or matminer-style 1-tuples of inputs).
        ignore_errors : bool, default False
            Give a failing entry NaN features instead of raising.
        return_errors : bool, default False
            Append the formatted error (NaN when none) to each row; needs ``ignore_errors``.
        pbar : bool, default False
            Show a progress bar where the work is long (the universal-potential featurizers);
            the element-embedding lookups show none.

        Returns
        -------
        numpy.ndarray or list of list
            Float array of shape ``(n_entries, n_features)``; with ``return_errors``, matminer's
            list of rows with the error text as the last item.

        Raises
        ------
        ValueError
            If an entry fails and ``ignore_errors`` is False (the message names the entry), or
            if ``return_errors`` is set without ``ignore_errors``.
        """
        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        items = self._normalize_entries(entries)
        features, errors = self._run_batch(items, pbar)
        if errors and not ignore_errors:
            position = min(errors)
            raise reraise_for_row(errors[position], position) from errors[position]
        if return_errors:
            texts = {i: format_error(e) for i, e in errors.items()}
            return [[*row, texts.get(i, float("nan"))] for i, row in enumerate(features.tolist())]
        return features

    def transform(self, X: Any) -> np.ndarray:
        """scikit-learn ``transform``: features of ``X`` as an array (failing rows are NaN)."""
        return self.featurize_many(X, ignore_errors=True, return_errors=False, pbar=False)

    def featurize_dataframe(
        self,
        df: pd.DataFrame,
        col_id: str | Sequence[str] | None = None,
        ignore_errors: bool = False,
        return_errors: bool = False,
        inplace: bool = False,
        multiindex: bool = False,
        pbar: bool = False,
    ) -> pd.DataFrame | None:
        """Add one row of features per input row, on the vectorized path.

        Same contract as :meth:`matminer.featurizers.base.BaseFeaturizer.featurize_dataframe`
        (feature columns appended after the input columns, NaN rows and an
        ``"<ClassName> Exceptions"`` column for failures with ``ignore_errors``/
        ``return_errors``).

        Parameters
        ----------
        df : pandas.DataFrame
        col_id : str, optional
            Input column; defaults to :attr:`default_column`.
        ignore_errors, return_errors, inplace, multiindex : bool
            As in matminer.
        pbar : bool
            Show a progress bar where the work is long (see :meth:`featurize_many`).

        Returns
        -------
        pandas.DataFrame or None
            ``None`` when ``inplace``.
        """
        if col_id is None:
            col_id = self.default_column
        columns = [col_id] if isinstance(col_id, str) else list(col_id)
        if len(columns) != 1:
            raise ValueError(f"{type(self).__name__} takes one input column, got {columns}")
        entries = list(df[columns[0]])
        return self._attach_rows(
            df,
            entries,
            ignore_errors,
            return_errors,
            inplace,
            multiindex,
            index=df.index,
            pbar=pbar,
        )

    def _checked_output_labels(
        self, df: pd.DataFrame, multiindex: bool, return_errors: bool
    ) -> list[Any]:
        """Output column labels, after matminer's checks on the input frame's columns."""
        if not multiindex and isinstance(df.columns, pd.MultiIndex):
            raise ValueError(
                "Please enable multiindexing to featurize an input dataframe containing a "
                "column multiindex."
            )
        labels = self._generate_column_labels(multiindex, return_errors)
        if not isinstance(labels, list):
            labels = labels.tolist()
        if not getattr(self, "_overwrite_data", False):
            clashes = [c for c in df.columns.values if c in labels]
            if clashes:
                raise ValueError(f'"{clashes[0]}" exists in input dataframe')
        return labels

    def _attach_rows(
        self,
        df: pd.DataFrame,
        entries: list[Any],
        ignore_errors: bool,
        return_errors: bool,
        inplace: bool,
        multiindex: bool,
        index: pd.Index,
        pbar: bool = False,
    ) -> pd.DataFrame | None:
        """Featurize ``entries`` (one per row of ``df``) and join the features to ``df``."""
        from matminer.utils.utils import homogenize_multiindex

        if return_errors and not ignore_errors:
            raise ValueError("Please set ignore_errors to True to use return_errors.")
        if multiindex and inplace:
            warnings.warn(
                "Multiindexing enabled with inplace=True! The original dataframe index has "
                "changed.",
                stacklevel=3,
            )
        labels = self._checked_output_labels(df, multiindex, return_errors)
        features, errors = self._run_batch(entries, pbar)
        if errors and not ignore_errors:
            position = min(errors)
            raise reraise_for_row(errors[position], index[position]) from errors[position]
        plain = self.feature_labels()
        result = pd.DataFrame(features, index=index, columns=plain, copy=False)
        if return_errors:
            column = np.full(len(index), np.nan, dtype=object)
            for position, error in errors.items():
                column[position] = format_error(error)
            result[f"{type(self).__name__} Exceptions"] = column
        if multiindex:
            df = homogenize_multiindex(df, "Input Data")
            result.columns = pd.MultiIndex.from_tuples(labels)
        if inplace:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
                df[result.columns.tolist()] = result
            return None
        if getattr(self, "_overwrite_data", False):
            df = df.drop(columns=[c for c in result.columns if c in df.columns])
        return join_columns(df.copy(), result)


class ElementEmbeddingFeaturizer(BatchFeaturizer):
    """Base of the element-embedding featurizers (not used directly).

    Parameters
    ----------
    embedding : str or ElementEmbedding, default "uae"
        Registry name (see :func:`crysatom_featurizers.embeddings.available`) or an
        :class:`~crysatom_featurizers.embeddings.ElementEmbedding` (for example one built with
        ``ElementEmbedding.from_dict``). Stored as given, so the featurizer stays cheap to pickle
        and clone; it is resolved on first use.
    dim : int, optional
        Vector length to load for a registry name (``None``: the embedding's default).

    Notes
    -----
    ``n_jobs`` defaults to 1. The batch methods (``featurize_many``, ``featurize_dataframe``,
    ``transform``) always run vectorized in this process: a lookup of a few hundred numbers per
    row is far cheaper than shipping rows to worker processes, and matminer's default pool of
    all cores is known to hang (matminer issues #638 and #902). ``set_n_jobs`` is accepted for
    protocol compatibility and does not start a pool.
    """

    #: Default ``col_id`` of :meth:`featurize_dataframe`.
    default_column = "composition"

    def __init__(
        self, embedding: str | ElementEmbedding = DEFAULT_EMBEDDING, dim: int | None = None
    ):
        self.embedding = embedding
        self.dim = dim

    @classmethod
    def from_preset(cls, name: str, **kwargs: Any) -> ElementEmbeddingFeaturizer:
        """A featurizer on the registry embedding ``name`` (matminer's ``from_preset``).

        Parameters
        ----------
        name : str
            A registry name, case-insensitive (see
            :func:`crysatom_featurizers.embeddings.available`), e.g. ``"crysatom"``.
        **kwargs
            The other parameters of the class, e.g. ``dim=100`` or ``stats=("mean",)``.

        Returns
        -------
        ElementEmbeddingFeaturizer
            ``cls(embedding=name, **kwargs)``.

        Raises
        ------
        ValueError
            For a name the registry does not know; the message lists the known names.
        TypeError
            When ``name`` is not a string.

        Examples
        --------
        >>> from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer
        >>> featurizer = ElementEmbeddingCompositionFeaturizer.from_preset("crysatom", dim=100)
        >>> featurizer.feature_labels()[:2]
        ['mean crysatom_0', 'mean crysatom_1']
        """
        return cls(embedding=_registry_name(name, cls), **kwargs)

    # ----------------------------------------------------------------- embedding
    @property
    def n_jobs(self) -> int:
        """Number of worker processes; 1 unless changed with ``set_n_jobs`` (never pooled)."""
        return getattr(self, "_n_jobs", 1)

    def _resolved(self) -> ResolvedEmbedding:
        key = (
            self.embedding if isinstance(self.embedding, str) else id(self.embedding),
            self.dim,
        )
        cached = self.__dict__.get("_resolved_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        from crysatom_featurizers.embeddings import resolve

        resolved = ResolvedEmbedding(resolve(self.embedding, self.dim))
        # Holding the embedding object in the cache keeps its id() unique while cached.
        self._resolved_cache = (key, resolved, self.embedding)
        return resolved

    @property
    def embedding_(self) -> ElementEmbedding:
        """The resolved :class:`~crysatom_featurizers.embeddings.ElementEmbedding`."""
        return self._resolved().embedding

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_resolved_cache", None)
        return state

    def element_labels(self) -> list[str]:
        """Labels of the embedding dimensions: ``"{name}_{i}"``."""
        resolved = self._resolved()
        return [f"{resolved.name}_{i}" for i in range(resolved.dim)]

    # ----------------------------------------------------------------- references
    def citations(self) -> list[str]:
        """BibTeX of the CrysAtom paper plus the embedding's own citation (from its metadata)."""
        citations = [CRYSATOM_CITATION]
        try:
            extra = self._resolved().embedding.metadata.get("citation")
        except Exception:  # an unresolvable embedding still has the paper citation
            extra = None
        if isinstance(extra, str):
            extra = [extra]
        for item in extra or []:
            if item and item not in citations:
                citations.append(str(item))
        return citations
