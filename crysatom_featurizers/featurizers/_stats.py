"""Weighted statistics of element vectors, defined exactly as matminer's ``PropertyStats``.

Each statistic is ``PropertyStats.<name>(values, weights)`` applied per embedding dimension,
with the weights given as fractions :math:`f_k` (atomic fractions of the elements, or the
shares of the site kinds; :math:`\\sum_k f_k = 1`). For values :math:`x_k` and deviations
:math:`d_k = x_k - \\bar x`:

* ``mean``: :math:`\\bar x = \\sum_k f_k x_k`.
* ``std_dev``: :math:`\\sqrt{\\sum_k f_k d_k^2 / (1 - \\sum_k f_k^2)}` (PropertyStats'
  :math:`\\beta = W / (W^2 - \\sum_k w_k^2)` factor), not the population standard deviation;
  0 for a single entry.
* ``minimum`` / ``min``, ``maximum`` / ``max``, ``range``: unweighted, over the entries present.
* ``avg_dev``: :math:`\\sum_k f_k |d_k|`.
* ``mode``: the smallest value among the entries whose fraction is ``numpy.isclose`` to the
  largest.
* ``skewness``: :math:`u_3 / u_2^{3/2}` with :math:`u_n = \\sum_k f_k d_k^n`; 0 when
  :math:`|u_3| \\le 10^{-8}` or for a single entry.
* ``kurtosis``: :math:`u_4 / u_2^2`; 0 when :math:`|u_4| \\le 10^{-8}` or for a single entry.

Weighting by fractions makes every statistic independent of how a formula is scaled
(Fe2O3 and Fe4O6 agree). matminer's ``ElementProperty`` passes the raw element amounts
instead; all statistics above are scale-free under PropertyStats' formulas except for the
``1e-8`` zero thresholds of ``kurtosis`` (on the unnormalised fourth moment) and ``mode``, so
in near-degenerate dimensions ``ElementProperty``'s ``kurtosis`` can differ between Fe2O3 and
Fe4O6. Ours equals ``ElementProperty`` applied to ``composition.fractional_composition``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: Accepted statistic names -> the matminer ``PropertyStats`` method they reproduce.
STAT_ALIASES: dict[str, str] = {
    "mean": "mean",
    "std_dev": "std_dev",
    "minimum": "minimum",
    "min": "minimum",
    "maximum": "maximum",
    "max": "maximum",
    "range": "range",
    "avg_dev": "avg_dev",
    "mode": "mode",
    "skewness": "skewness",
    "kurtosis": "kurtosis",
}

_ISCLOSE_ATOL = 1e-8  # numpy.isclose(x, 0) default, used by PropertyStats


def unlike_pairs(fractions: np.ndarray) -> np.ndarray:
    """``1 - sum_k f_k^2`` of fractions that sum to 1 (along the last axis): the denominator of
    ``std_dev``. Where it is small it is computed as ``sum_k f_k sum_{j != k} f_j``, which does
    not cancel, so that a composition dominated by one element (``Fe1e308O``) keeps a finite
    ``std_dev`` (its limit) instead of 0/0."""
    fractions = np.asarray(fractions, dtype=np.float64)
    plain = 1.0 - np.sum(fractions**2, axis=-1)
    small = np.asarray(plain < 1e-6)
    if small.any():
        f = fractions[small] if fractions.ndim > 1 else fractions
        zero = np.zeros(f.shape[:-1] + (1,))
        # the sums of the fractions before and after each entry, shifted rather than
        # subtracted (a subtraction would cancel again)
        before = np.concatenate([zero, np.cumsum(f, axis=-1)[..., :-1]], axis=-1)
        after = np.concatenate([np.cumsum(f[..., ::-1], axis=-1)[..., ::-1][..., 1:], zero], -1)
        stable = np.sum(f * (before + after), axis=-1)
        if fractions.ndim > 1:
            plain[small] = stable
        else:
            plain = stable
    return plain


def canonical_stats(stats: str | Iterable[str]) -> tuple[str, ...]:
    """Validate statistic names and return their ``PropertyStats`` names.

    Raises
    ------
    ValueError
        For an unsupported name, listing the supported ones.
    """
    names = (stats,) if isinstance(stats, str) else tuple(stats)
    if not names:
        raise ValueError("stats must name at least one statistic")
    unknown = [name for name in names if name not in STAT_ALIASES]
    if unknown:
        raise ValueError(
            f"unsupported statistic(s) {unknown}; supported: {sorted(STAT_ALIASES)} "
            "(PropertyStats names; 'min'/'max' are aliases of 'minimum'/'maximum')"
        )
    return tuple(STAT_ALIASES[name] for name in names)


def reference_stats(values: np.ndarray, weights: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """Statistics of one set of vectors, written as the PropertyStats formulas.

    Parameters
    ----------
    values : numpy.ndarray, shape (K, d)
        One vector per entry (element or site kind).
    weights : numpy.ndarray, shape (K,)
        Raw weights (amounts or counts); only their ratios matter, except for ``mode`` ties.
    stats : sequence of str
        Canonical statistic names (see :func:`canonical_stats`).

    Returns
    -------
    numpy.ndarray, shape (len(stats), d)
    """
    values = np.asarray(values, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    weights = weights / weights.sum()  # fractions: see the module notes on kurtosis and mode
    n_entries = values.shape[0]
    total = weights.sum()
    mean = (weights @ values) / total
    rows = []
    for stat in stats:
        if stat == "mean":
            rows.append(mean)
        elif stat == "minimum":
            rows.append(values.min(axis=0))
        elif stat == "maximum":
            rows.append(values.max(axis=0))
        elif stat == "range":
            rows.append(values.max(axis=0) - values.min(axis=0))
        elif stat == "avg_dev":
            rows.append((weights @ np.abs(values - mean)) / total)
        elif stat == "mode":
            most = np.isclose(weights, weights.max())
            rows.append(values[most].min(axis=0))
        elif n_entries == 1:  # std_dev, skewness, kurtosis of one entry
            rows.append(np.zeros(values.shape[1]))
        elif stat == "std_dev":
            rows.append(np.sqrt((weights @ (values - mean) ** 2) / unlike_pairs(weights)))
        elif stat == "skewness":
            diff = values - mean
            u3 = (weights @ diff**3) / total
            u2 = (weights @ diff**2) / total
            with np.errstate(divide="ignore", invalid="ignore"):
                rows.append(np.where(np.isclose(u3, 0), 0.0, u3 / u2**1.5))
        elif stat == "kurtosis":
            diff_sq = (values - mean) ** 2
            u4 = weights @ diff_sq**2
            u2 = weights @ diff_sq
            with np.errstate(divide="ignore", invalid="ignore"):
                rows.append(np.where(np.isclose(u4, 0), 0.0, u4 / u2**2 * total))
        else:  # pragma: no cover - canonical_stats guards this
            raise ValueError(f"unsupported statistic {stat!r}")
    return np.vstack(rows)


def grouped_stats(
    table: np.ndarray,
    entry_row: np.ndarray,
    entry_key: np.ndarray,
    entry_weight: np.ndarray,
    n_rows: int,
    stats: Sequence[str],
) -> np.ndarray:
    """Statistics for many rows at once (the vectorized path).

    Rows are grouped by their number of entries K; each group is one dense (rows, K, d) gather
    of ``table`` reduced over K with ``einsum`` and ufunc reductions into preallocated
    buffers, so no Python loop runs over rows.

    Parameters
    ----------
    table : numpy.ndarray of float64, shape (M, d)
        Vector of each key (row ``Z`` of an element lookup table, or a site-kind vector).
    entry_row, entry_key, entry_weight : numpy.ndarray, shape (E,)
        Row, key and raw weight of each entry, sorted by row; each (row, key) at most once.
    n_rows : int
    stats : sequence of str
        Canonical statistic names.

    Returns
    -------
    numpy.ndarray of float64, shape (n_rows, len(stats) * d)
        Statistic-major blocks: columns ``s * d : (s + 1) * d`` hold statistic ``s``. Rows
        without entries are NaN.
    """
    dim = table.shape[1]
    n_stats = len(stats)
    out = np.empty((n_rows, n_stats * dim))
    counts = np.bincount(entry_row, minlength=n_rows) if entry_row.size else np.zeros(n_rows, int)
    empty = counts == 0
    if empty.any():
        out[empty] = np.nan
    if entry_row.size == 0:
        return out
    starts = np.zeros(n_rows, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    for n_entries in np.unique(counts[~empty]).tolist():
        rows = np.flatnonzero(counts == n_entries)
        positions = starts[rows][:, None] + np.arange(n_entries)
        values = table[entry_key[positions]]  # (rows, K, d)
        raw = entry_weight[positions]
        if rows.size == n_rows:  # one group holds every row: write in place
            block = out.reshape(n_rows, n_stats, dim)
            _group_stats(stats, values, raw, block)
        else:
            block = np.empty((rows.size, n_stats, dim))
            _group_stats(stats, values, raw, block)
            out[rows] = block.reshape(rows.size, n_stats * dim)
    return out


def _group_stats(
    stats: Sequence[str], values: np.ndarray, raw: np.ndarray, block: np.ndarray
) -> None:
    """Write every statistic of rows with K entries each into ``block`` (rows, S, d).

    ``values`` is (rows, K, d), ``raw`` the (rows, K) weights (normalised to fractions here).
    """
    n_entries = values.shape[1]
    fractions = raw / raw.sum(axis=1)[:, None]
    index = {stat: s for s, stat in enumerate(stats)}

    mean = block[:, index["mean"]] if "mean" in index else np.empty(block[:, 0].shape)
    np.einsum("nk,nkd->nd", fractions, values, out=mean)

    def extreme(stat: str, ufunc: np.ufunc) -> np.ndarray:
        target = block[:, index[stat]] if stat in index else np.empty(mean.shape)
        if n_entries == 1:
            target[...] = values[:, 0]
        else:
            ufunc(values[:, 0], values[:, 1], out=target)
            for k in range(2, n_entries):
                ufunc(target, values[:, k], out=target)
        return target

    minimum = maximum = None
    if "minimum" in index or "range" in index:
        minimum = extreme("minimum", np.minimum)
    if "maximum" in index or "range" in index:
        maximum = extreme("maximum", np.maximum)
    if "range" in index:
        np.subtract(maximum, minimum, out=block[:, index["range"]])

    deviations = None
    if n_entries > 1 and index.keys() & {"avg_dev", "std_dev", "skewness", "kurtosis"}:
        deviations = values - mean[:, None, :]
    if "avg_dev" in index:
        if deviations is None:
            block[:, index["avg_dev"]] = 0.0
        else:
            np.einsum("nk,nkd->nd", fractions, np.abs(deviations), out=block[:, index["avg_dev"]])
    if "mode" in index:
        most = np.isclose(fractions, fractions.max(axis=1, keepdims=True))
        candidates = np.where(most[:, :, None], values, np.inf)
        np.min(candidates, axis=1, out=block[:, index["mode"]])
    higher = [stat for stat in ("std_dev", "skewness", "kurtosis") if stat in index]
    if not higher:
        return
    if deviations is None:  # a single entry: matminer returns 0
        for stat in higher:
            block[:, index[stat]] = 0.0
        return
    u3 = None
    if "skewness" in index:
        u3 = np.einsum("nk,nkd->nd", fractions, deviations**3)
    squared = np.square(deviations, out=deviations)
    u2 = np.einsum("nk,nkd->nd", fractions, squared)
    if "std_dev" in index:
        target = block[:, index["std_dev"]]
        np.divide(u2, unlike_pairs(fractions)[:, None], out=target)
        np.sqrt(target, out=target)
    if "skewness" in index:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = u3 / u2**1.5
        block[:, index["skewness"]] = np.where(np.abs(u3) <= _ISCLOSE_ATOL, 0.0, ratio)
    if "kurtosis" in index:
        u4 = np.einsum("nk,nkd->nd", fractions, squared * squared)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = u4 / u2**2
        block[:, index["kurtosis"]] = np.where(np.abs(u4) <= _ISCLOSE_ATOL, 0.0, ratio)
