"""Featurize ``dask.dataframe`` collections partition by partition.

matminer parallelises :meth:`~matminer.featurizers.base.BaseFeaturizer.featurize_dataframe`
with a ``multiprocessing`` pool on one machine. :func:`featurize_dask` instead hands each
partition of a :class:`dask.dataframe.DataFrame` to an ordinary, single-process
``featurize_dataframe`` call, so the same featurizer scales to a laptop's cores, a
``dask.distributed.LocalCluster`` or a cluster of many machines, and the result is identical to
the in-memory call.

Recipe
------
>>> import dask.dataframe as dd
>>> from dask.distributed import Client, LocalCluster
>>> from pymatgen.core import Composition
>>> from crysatom_featurizers.dask import featurize_dask
>>> from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer
>>> client = Client(LocalCluster(n_workers=4, threads_per_worker=1))  # doctest: +SKIP
>>> # on a real cluster, connect to its scheduler instead:
>>> # client = Client("tcp://scheduler-host:8786")
>>> ddf = dd.read_csv("formulas-*.csv")  # doctest: +SKIP
>>> featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")  # doctest: +SKIP
>>> features = featurize_dask(ddf, featurizer, "formula", converter=Composition)  # doctest: +SKIP
>>> features.to_parquet("features/")  # doctest: +SKIP

Strings, not objects: ``dd.from_pandas`` converts object columns to pyarrow strings by default
(dask's ``dataframe.convert-string`` option), which turns pymatgen objects into their ``str()``.
Either keep compact strings in the dask DataFrame (formulas, CIF text; cheap to ship to the
workers) and pass ``converter=Composition`` (or a CIF parser), or create the DataFrame inside
``dask.config.set({"dataframe.convert-string": False})`` to keep the objects.

Use one thread per worker process (``threads_per_worker=1``): featurization is pure Python
and NumPy work that holds the GIL, so threads in one process do not run it in parallel.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover - typing only
    import dask.dataframe as dd
    from matminer.featurizers.base import BaseFeaturizer

__all__ = ["feature_meta", "featurize_dask", "featurize_partition"]


def _error_label(featurizer: BaseFeaturizer) -> str:
    # The name matminer gives the error column with return_errors=True.
    return featurizer.__class__.__name__ + " Exceptions"


def feature_meta(
    featurizer: BaseFeaturizer,
    base: pd.DataFrame | None = None,
    *,
    return_errors: bool = False,
    dtype: Any = "float64",
) -> pd.DataFrame:
    """Empty DataFrame with the columns and dtypes that featurizing ``base`` produces.

    The columns are those of ``base`` followed by ``featurizer.feature_labels()`` (each of
    ``dtype``) and, with ``return_errors``, matminer's ``"<Featurizer> Exceptions"`` column
    (object). Nothing is featurized.

    Parameters
    ----------
    featurizer : matminer.featurizers.base.BaseFeaturizer
        Any featurizer whose ``feature_labels()`` is known without fitting data, or a fitted one.
    base : pandas.DataFrame, optional
        The input columns (only their names and dtypes matter).
    return_errors : bool
        Add the error column.
    dtype : numpy dtype or str
        Dtype of every feature column.

    Returns
    -------
    pandas.DataFrame
        Zero rows.
    """
    labels = list(featurizer.feature_labels())
    base = pd.DataFrame() if base is None else base.iloc[:0]
    clash = [label for label in labels if label in base.columns]
    if clash:
        raise ValueError(
            f"the input already has feature column(s) {clash[:3]}"
            + (" ..." if len(clash) > 3 else "")
            + "; drop them or use a featurizer with other labels"
        )
    # One 2-D block: building a frame column by column is slow for thousands of features.
    features = pd.DataFrame(
        np.empty((0, len(labels)), dtype=dtype), columns=labels, index=base.index
    )
    parts = [base, features]
    if return_errors:
        parts.append(pd.DataFrame({_error_label(featurizer): pd.Series([], dtype=object)}))
        parts[-1].index = base.index
    return pd.concat(parts, axis=1)


def _convert_columns(
    partition: pd.DataFrame,
    columns: list[str],
    converter: Callable[[Any], Any],
    ignore_errors: bool,
) -> tuple[pd.DataFrame, dict[Any, str]]:
    """Apply ``converter`` to every value of ``columns``; failures become ``None``."""
    work = partition.copy()
    failures: dict[int, str] = {}
    for column in columns:
        values = []
        for position, (label, value) in enumerate(partition[column].items()):
            try:
                values.append(converter(value))
            except Exception as exc:
                if not ignore_errors:
                    raise ValueError(
                        f"row {label!r}: cannot convert {column!r} value {value!r}: {exc}"
                    ) from exc
                failures[position] = f"{type(exc).__name__}: cannot convert {value!r}: {exc}"
                values.append(None)
        work[column] = pd.Series(values, index=partition.index, dtype=object)
    return work, failures


def featurize_partition(
    partition: pd.DataFrame,
    featurizer: BaseFeaturizer,
    col_id: str | Sequence[str],
    *,
    ignore_errors: bool = False,
    return_errors: bool = False,
    dtype: Any = "float64",
    converter: Callable[[Any], Any] | None = None,
) -> pd.DataFrame:
    """Featurize one pandas partition in this process, with the dtypes of :func:`feature_meta`.

    This is the function :func:`featurize_dask` maps over the partitions. It is public so the
    same step can be reused with other engines (``dask.bag``, Ray, Spark's ``mapInPandas``).
    Parameters are those of :func:`featurize_dask`.
    """
    if len(partition) == 0:
        return feature_meta(featurizer, partition, return_errors=return_errors, dtype=dtype)
    columns = [col_id] if isinstance(col_id, str) else list(col_id)
    work, failures = partition, {}
    if converter is not None:
        work, failures = _convert_columns(partition, columns, converter, ignore_errors)
    result = featurizer.featurize_dataframe(
        work,
        col_id,
        ignore_errors=ignore_errors,
        return_errors=return_errors,
        inplace=False,
        pbar=False,
    )
    labels = list(featurizer.feature_labels())
    features = result[labels]
    target = np.dtype(dtype)
    if not all(d == target for d in features.dtypes) or failures:
        values = features.to_numpy(dtype=target, copy=True)
        if failures:
            values[sorted(failures)] = np.nan
        features = pd.DataFrame(values, index=result.index, columns=labels)
    parts = [partition, features]  # the caller's input values, not the converted ones
    if return_errors:
        errors = _error_label(featurizer)
        messages = result[errors].astype(object).copy()
        for position, message in failures.items():
            messages.iloc[position] = message
        parts.append(messages.to_frame(errors))
    return pd.concat(parts, axis=1)


def _single_process_copy(featurizer: BaseFeaturizer) -> BaseFeaturizer:
    """A shallow copy of ``featurizer`` that never starts a multiprocessing pool."""
    clone = copy.copy(featurizer)
    # Composite featurizers (MultipleFeaturizer) hold children whose n_jobs they also set; copy
    # the children first so the caller's featurizers keep their settings.
    children = getattr(clone, "featurizers", None)
    if isinstance(children, (list, tuple)):
        clone.featurizers = [_single_process_copy(child) for child in children]
    if hasattr(clone, "set_n_jobs"):
        clone.set_n_jobs(1)
    return clone


def featurize_dask(
    ddf: dd.DataFrame,
    featurizer: BaseFeaturizer,
    col_id: str | Sequence[str],
    *,
    ignore_errors: bool = False,
    return_errors: bool = False,
    dtype: Any = "float64",
    converter: Callable[[Any], Any] | None = None,
) -> dd.DataFrame:
    """Append the features of ``ddf[col_id]`` to a dask DataFrame, lazily.

    Each partition is featurized by a copy of ``featurizer`` with ``n_jobs=1`` (no process
    pool inside dask workers) via matminer's ``featurize_dataframe``. The output ``meta`` is
    built from ``featurizer.feature_labels()``, so building the graph featurizes nothing. The
    result, once computed, equals ``featurizer.featurize_dataframe(ddf.compute(), col_id)``
    with the feature columns cast to ``dtype``.

    Parameters
    ----------
    ddf : dask.dataframe.DataFrame
        Input rows; the index and the other columns are kept.
    featurizer : matminer.featurizers.base.BaseFeaturizer
        A featurizer that needs no fitting (all the embedding featurizers of this package), or
        one already fitted in memory. It is pickled once into the task graph.
    col_id : str or list of str
        Column(s) holding the inputs of ``featurizer.featurize``, as in matminer.
    ignore_errors : bool
        Rows that fail get NaN features instead of failing the computation.
    return_errors : bool
        Add matminer's ``"<Featurizer> Exceptions"`` column with the traceback of each failed
        row (requires ``ignore_errors``).
    dtype : numpy dtype or str
        Dtype of the feature columns (float64, matminer's default).
    converter : callable, optional
        Applied to each value of the ``col_id`` column(s) inside the workers before
        featurizing, e.g. ``pymatgen.core.Composition`` for formula strings or
        ``pymatgen.core.Structure.from_str`` with CIF text (via ``functools.partial``). The
        output keeps the original values. With ``ignore_errors`` a value that cannot be
        converted gives NaN features (and its message in the error column).

    Returns
    -------
    dask.dataframe.DataFrame
        Lazy; call ``.compute()``, ``.to_parquet(...)`` or ``.persist()``.

    Raises
    ------
    TypeError
        If ``ddf`` is not a dask DataFrame (a pandas DataFrame included: wrap it with
        ``dask.dataframe.from_pandas(df, npartitions=...)`` first).
    ValueError
        If ``return_errors`` is set without ``ignore_errors``, a ``col_id`` column is missing,
        or a feature label already is a column of ``ddf``.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> import pandas as pd
    >>> from pymatgen.core import Composition
    >>> from crysatom_featurizers.dask import featurize_dask
    >>> from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer
    >>> df = pd.DataFrame({"formula": ["NaCl", "Fe2O3", "SiO2"]})
    >>> ddf = dd.from_pandas(df, npartitions=2)
    >>> featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    >>> out = featurize_dask(ddf, featurizer, "formula", converter=Composition).compute()
    >>> out.shape[0]
    3
    """
    try:
        import dask
        import dask.dataframe as dd
    except ImportError:
        raise ImportError(
            "featurize_dask needs dask: pip install 'crysatom-featurizers[dask]' (or "
            "pip install 'dask[dataframe]' distributed)"
        ) from None

    if not isinstance(ddf, dd.DataFrame):
        from crysatom_featurizers.graphs.inputs import type_name

        hint = ""
        if isinstance(ddf, pd.DataFrame):
            hint = (
                "; wrap it with dask.dataframe.from_pandas(df, npartitions=...), or call "
                "featurizer.featurize_dataframe(df, col_id) to featurize it in memory"
            )
        raise TypeError(f"featurize_dask takes a dask DataFrame, got {type_name(ddf)}{hint}")
    if return_errors and not ignore_errors:
        raise ValueError("return_errors=True requires ignore_errors=True")
    columns = [col_id] if isinstance(col_id, str) else list(col_id)
    missing = [c for c in columns if c not in ddf.columns]
    if missing:
        raise ValueError(f"column(s) {missing} not in the dask DataFrame: {list(ddf.columns)}")
    np.dtype(dtype)  # fail early on an invalid dtype

    worker_featurizer = _single_process_copy(featurizer)
    meta = feature_meta(worker_featurizer, ddf._meta, return_errors=return_errors, dtype=dtype)
    # Wrapping the featurizer in a delayed object stores it once in the graph instead of once
    # per partition task.
    shared = dask.delayed(worker_featurizer, pure=False)
    return ddf.map_partitions(
        featurize_partition,
        shared,
        col_id,
        ignore_errors=ignore_errors,
        return_errors=return_errors,
        dtype=dtype,
        converter=converter,
        meta=meta,
        align_dataframes=False,
    )
