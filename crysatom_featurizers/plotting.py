"""Plots for element embeddings and fitted models (matplotlib).

matplotlib is an optional dependency (``pip install "crysatom-featurizers[plot]"``) and is
imported only when a plotting function is called. Every function draws into ``ax`` when one is
given, otherwise into a new figure, and returns the :class:`matplotlib.axes.Axes` it drew on
(the figure is ``ax.figure``). The functions work with any backend, including the
non-interactive ``Agg`` backend used on servers and by the ``crysatom`` command line.

Functions
---------
plot_embedding_map
    2-D PCA or t-SNE map of the element vectors, coloured by group or block.
plot_periodic_table_heatmap
    Any per-element quantity on a periodic-table grid.
plot_similarity_heatmap
    Cosine similarity between element vectors, ordered by atomic number.
plot_parity
    Predicted against true values, with MAE and R².
plot_learning_curve
    Training and validation curves from a fitted :class:`~crysatom_featurizers.CGCNNRegressor`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crysatom_featurizers.chemistry import atomic_number, element_symbol, is_element
from crysatom_featurizers.embeddings import resolve

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from crysatom_featurizers.embeddings import ElementEmbedding

__all__ = [
    "element_block",
    "element_group",
    "periodic_table_position",
    "plot_embedding_map",
    "plot_learning_curve",
    "plot_parity",
    "plot_periodic_table_heatmap",
    "plot_similarity_heatmap",
]

# First atomic number of each period, and one past the last element (Og = 118).
_PERIOD_STARTS = (1, 3, 11, 19, 37, 55, 87, 119)
_LANTHANIDES = range(57, 72)  # La-Lu, drawn in the first f-block row
_ACTINIDES = range(89, 104)  # Ac-Lr, drawn in the second f-block row


def _pyplot():
    """Import pyplot lazily, with a clear message when matplotlib is missing."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plotting needs matplotlib: pip install 'crysatom-featurizers[plot]'"
        ) from exc
    return plt


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    plt = _pyplot()
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _period(z: int) -> int:
    if not 1 <= z <= 118:
        raise ValueError(f"atomic number must be between 1 and 118, got {z}")
    for period, start in enumerate(_PERIOD_STARTS[1:], start=1):
        if z < start:
            return period
    raise AssertionError("unreachable")  # pragma: no cover


def element_group(z: int) -> int | None:
    """IUPAC group (1-18) of the element with atomic number ``z``.

    Lanthanides (La-Lu) and actinides (Ac-Lr) have no single group in the 18-column layout and
    return ``None``.
    """
    if z in _LANTHANIDES or z in _ACTINIDES:
        return None
    period = _period(z)
    offset = z - _PERIOD_STARTS[period - 1]  # position within the period, from 0
    if period == 1:
        return 1 if z == 1 else 18
    if period in (2, 3):
        return offset + 1 if offset < 2 else offset + 11
    if period in (4, 5):
        return offset + 1
    # Periods 6 and 7: two s-block columns, 15 f-block elements, then groups 4-18.
    return offset + 1 if offset < 2 else offset - 13


def element_block(z: int) -> str:
    """Block (``"s"``, ``"p"``, ``"d"`` or ``"f"``) of the element with atomic number ``z``.

    He counts as s-block; La-Lu and Ac-Lr count as f-block (the layout drawn by
    :func:`plot_periodic_table_heatmap`).
    """
    if z in _LANTHANIDES or z in _ACTINIDES:
        return "f"
    group = element_group(z)
    if z == 2 or group in (1, 2):
        return "s"
    if group is not None and 3 <= group <= 12:
        return "d"
    return "p"


def periodic_table_position(z: int) -> tuple[int, int]:
    """(row, column) of an element in an 18-column periodic table, both counted from 1.

    Rows 1-7 are the periods. La-Lu sit in row 9 and Ac-Lr in row 10 (columns 3-17), below a
    one-row gap, as in the usual printed table.
    """
    if z in _LANTHANIDES:
        return 9, 3 + (z - _LANTHANIDES.start)
    if z in _ACTINIDES:
        return 10, 3 + (z - _ACTINIDES.start)
    group = element_group(z)
    assert group is not None
    return _period(z), group


def _embedding_label(embedding) -> str:
    return f"{embedding.name} ({embedding.dim}-dim)"


def _elements_by_z(embedding) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Symbols, atomic numbers and vectors of the embedding's real elements, sorted by Z."""
    symbols, zs, rows = [], [], []
    for i, symbol in enumerate(embedding.symbols):
        if not is_element(symbol):  # a pseudo-element such as "D" or "X"
            continue
        z = atomic_number(symbol)
        if 1 <= z <= 118:
            symbols.append(symbol)
            zs.append(z)
            rows.append(i)
    order = np.argsort(zs, kind="stable")
    vectors = np.asarray(embedding.vectors, dtype=np.float64)[np.asarray(rows, dtype=int)]
    return (
        [symbols[i] for i in order],
        np.asarray(zs)[order],
        vectors[order],
    )


def _project(vectors: np.ndarray, method: str, random_state: int, perplexity: float | None):
    """2-D coordinates of ``vectors`` by PCA or t-SNE, and the axis labels."""
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=random_state)
        coords = pca.fit_transform(vectors)
        ratio = pca.explained_variance_ratio_ * 100.0
        return coords, (f"PC 1 ({ratio[0]:.0f}% var.)", f"PC 2 ({ratio[1]:.0f}% var.)")
    if method == "tsne":
        from sklearn.manifold import TSNE

        n = len(vectors)
        if perplexity is None:
            perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state)
        return tsne.fit_transform(vectors), ("t-SNE 1", "t-SNE 2")
    raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")


def plot_embedding_map(
    embedding: ElementEmbedding | str,
    method: str = "pca",
    color_by: str = "group",
    ax: Axes | None = None,
    annotate: bool = True,
    *,
    dim: int | None = None,
    random_state: int = 0,
    perplexity: float | None = None,
    legend: bool = True,
    normalize: bool = True,
) -> Axes:
    """Map the element vectors to 2-D and draw one labelled point per element.

    Parameters
    ----------
    embedding : ElementEmbedding or str
        The embedding, or anything :func:`crysatom_featurizers.embeddings.resolve` accepts (a
        registered name, ``"name:dim"``, a vector file).
    method : {"pca", "tsne"}
        Projection. PCA axes show the explained variance; t-SNE uses ``init="pca"``.
    color_by : {"group", "block"}
        Colour points by IUPAC group (lanthanides and actinides share one colour, "La/Ac") or by
        block (s, p, d, f).
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    annotate : bool
        Write the element symbol next to each point.
    dim : int, optional
        Vector dimension, only used when ``embedding`` is a name.
    random_state : int
        Seed for the projection.
    perplexity : float, optional
        t-SNE perplexity; defaults to ``min(30, (n_elements - 1) / 3)``.
    legend : bool
        Draw a legend of the colour categories.
    normalize : bool
        Scale every vector to unit length before projecting, so the map reflects directions
        (cosine geometry) rather than a few elements with large norms.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from crysatom_featurizers.plotting import plot_embedding_map
    >>> ax = plot_embedding_map("skipatom", method="pca", color_by="block")
    >>> ax.figure.savefig("skipatom_pca.png")  # doctest: +SKIP
    """
    if color_by not in ("group", "block"):
        raise ValueError(f"color_by must be 'group' or 'block', got {color_by!r}")
    embedding = resolve(embedding, dim)
    symbols, zs, vectors = _elements_by_z(embedding)
    if len(symbols) < 3:
        raise ValueError(
            f"embedding {embedding.name!r} covers {len(symbols)} elements; a map needs at least 3"
        )
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)
    coords, (xlabel, ylabel) = _project(vectors, method, random_state, perplexity)

    plt = _pyplot()
    ax = _new_axes(ax, (8.0, 6.5))
    if color_by == "block":
        categories = [element_block(int(z)) for z in zs]
        order = ["s", "p", "d", "f"]
        cmap = plt.get_cmap("tab10")
        colors = {c: cmap(i) for i, c in enumerate(order)}
        names = {c: f"{c}-block" for c in order}
    else:
        categories = [
            "La/Ac" if element_group(int(z)) is None else str(element_group(int(z))) for z in zs
        ]
        order = [str(g) for g in range(1, 19)] + ["La/Ac"]
        cmap = plt.get_cmap("tab20")
        colors = {c: cmap(i % 20) for i, c in enumerate(order)}
        names = {c: (c if c == "La/Ac" else f"group {c}") for c in order}
    categories_arr = np.asarray(categories)
    for category in order:
        mask = categories_arr == category
        if mask.any():
            ax.scatter(
                coords[mask, 0],
                coords[mask, 1],
                s=36,
                color=colors[category],
                label=names[category],
                edgecolors="black",
                linewidths=0.3,
            )
    if annotate:
        for (x, y), symbol in zip(coords, symbols):
            ax.annotate(
                symbol, (x, y), xytext=(2, 2), textcoords="offset points", fontsize=7, alpha=0.85
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    scaling = ", unit vectors" if normalize else ""
    ax.set_title(
        f"{_embedding_label(embedding)}: {method.upper()} map of {len(symbols)} elements{scaling}"
    )
    if legend:
        ax.legend(
            fontsize=7,
            ncol=2 if color_by == "group" else 1,
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            frameon=False,
        )
    return ax


def plot_periodic_table_heatmap(
    values: Mapping[str, float] | pd.Series,
    ax: Axes | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    *,
    colorbar_label: str | None = None,
    show_values: bool = False,
    value_format: str = "{:.2g}",
    vmin: float | None = None,
    vmax: float | None = None,
    missing_color: str = "#e6e6e6",
) -> Axes:
    """Draw a per-element quantity on a periodic-table grid.

    Parameters
    ----------
    values : dict or pandas.Series
        Element symbol -> value (for example one vector component, a probe prediction or an
        error). Elements without a value, or with NaN, are drawn in ``missing_color``.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    cmap : str
        Matplotlib colormap name.
    title : str, optional
        Axes title.
    colorbar_label : str, optional
        Label of the colour bar (give units, e.g. ``"MAE (eV/atom)"``).
    show_values : bool
        Print the value under each symbol, formatted with ``value_format``.
    vmin, vmax : float, optional
        Colour scale limits; default to the range of the finite values.
    missing_color : str
        Fill of elements without a value.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> from crysatom_featurizers.embeddings import load
    >>> from crysatom_featurizers.plotting import plot_periodic_table_heatmap
    >>> emb = load("skipatom")
    >>> ax = plot_periodic_table_heatmap(
    ...     dict(zip(emb.symbols, emb.vectors[:, 0])), title="skipatom component 0"
    ... )
    """
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    plt = _pyplot()
    series = pd.Series(values, dtype=float) if isinstance(values, Mapping) else values.astype(float)
    cells: dict[int, float] = {}
    for symbol, value in series.items():
        if not is_element(str(symbol)):
            raise ValueError(f"{symbol!r} is not an element symbol")
        z = atomic_number(str(symbol))
        cells[z] = float(value)
    finite = np.array([v for v in cells.values() if np.isfinite(v)])
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi == lo:
        hi = lo + 1.0
    norm = Normalize(vmin=lo, vmax=hi)
    colormap = plt.get_cmap(cmap)

    ax = _new_axes(ax, (12.0, 6.5))

    for z in range(1, 119):
        row, col = periodic_table_position(z)
        y = row - 1 - (0.5 if row >= 9 else 0.0)  # row 8 is left out: a half-row gap
        value = cells.get(z, np.nan)
        face = colormap(norm(value)) if np.isfinite(value) else missing_color
        ax.add_patch(
            Rectangle((col - 1, y), 0.95, 0.95, facecolor=face, edgecolor="white", linewidth=0.5)
        )
        # Dark text on light cells, light text on dark cells.
        rgb = np.asarray(face if isinstance(face, tuple) else (0.9, 0.9, 0.9))[:3]
        text_color = "black" if rgb @ np.array([0.299, 0.587, 0.114]) > 0.5 else "white"
        symbol = element_symbol(z)
        label_y = y + (0.36 if show_values else 0.475)
        ax.text(
            col - 1 + 0.475,
            label_y,
            symbol,
            ha="center",
            va="center",
            fontsize=8,
            color=text_color,
        )
        if show_values and np.isfinite(value):
            ax.text(
                col - 1 + 0.475,
                y + 0.7,
                value_format.format(value),
                ha="center",
                va="center",
                fontsize=5.5,
                color=text_color,
            )
    # Placeholders in group 3 of periods 6 and 7 point to the f-block rows.
    for row, text in ((6, "La–Lu"), (7, "Ac–Lr")):
        ax.text(2 + 0.475, row - 1 + 0.475, text, ha="center", va="center", fontsize=6)
    ax.set_xlim(-0.1, 18.05)
    ax.set_ylim(9.55, -0.1)
    ax.set_aspect("equal")
    ax.axis("off")
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=colormap)
    colorbar = ax.figure.colorbar(mappable, ax=ax, shrink=0.6, pad=0.01)
    if colorbar_label:
        colorbar.set_label(colorbar_label)
    if title:
        ax.set_title(title)
    return ax


def plot_similarity_heatmap(
    embedding: ElementEmbedding | str,
    ax: Axes | None = None,
    cmap: str = "RdBu_r",
    *,
    dim: int | None = None,
    elements: Sequence[str] | None = None,
) -> Axes:
    """Cosine similarity between the element vectors, rows and columns ordered by Z.

    Parameters
    ----------
    embedding : ElementEmbedding or str
        The embedding, or a registered name.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    cmap : str
        Diverging colormap; the colour scale spans -1 to 1.
    dim : int, optional
        Vector dimension, only used when ``embedding`` is a name.
    elements : sequence of str, optional
        Restrict the plot to these elements (still ordered by Z).

    Returns
    -------
    matplotlib.axes.Axes
    """
    embedding = resolve(embedding, dim)
    symbols, _, vectors = _elements_by_z(embedding)
    if elements is not None:
        wanted = set(elements)
        missing = wanted.difference(symbols)
        if missing:
            raise ValueError(
                f"embedding {embedding.name!r} has no vector for: {', '.join(sorted(missing))}"
            )
        keep = [i for i, s in enumerate(symbols) if s in wanted]
        symbols = [symbols[i] for i in keep]
        vectors = vectors[keep]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    similarity = unit @ unit.T

    ax = _new_axes(ax, (9.0, 8.0))
    image = ax.imshow(similarity, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(len(symbols))
    fontsize = 8 if len(symbols) <= 40 else 4.5
    ax.set_xticks(ticks, symbols, rotation=90, fontsize=fontsize)
    ax.set_yticks(ticks, symbols, fontsize=fontsize)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="cosine similarity")
    ax.set_title(f"{_embedding_label(embedding)}: cosine similarity (ordered by Z)")
    return ax


def plot_parity(
    y_true: Sequence[float] | np.ndarray,
    y_pred: Sequence[float] | np.ndarray,
    ax: Axes | None = None,
    units: str | None = None,
    *,
    label: str | None = None,
    title: str | None = None,
) -> Axes:
    """Predicted against true values, with the y = x line, MAE and R².

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        Reference and predicted values.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    units : str, optional
        Units of the target, e.g. ``"eV/atom"``; shown on the axes and with the MAE.
    label : str, optional
        Name of the target, e.g. ``"formation energy"``.
    title : str, optional
        Axes title.

    Returns
    -------
    matplotlib.axes.Axes
    """
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}"
        )
    if y_true.size == 0:
        raise ValueError("y_true and y_pred are empty")
    mae = float(np.mean(np.abs(y_true - y_pred)))
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")

    ax = _new_axes(ax, (5.5, 5.5))
    ax.scatter(y_true, y_pred, s=14, alpha=0.7, edgecolors="none")
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    limits = (lo - pad, hi + pad)
    ax.plot(limits, limits, color="black", linewidth=0.8, linestyle="--", label="y = x")
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.set_aspect("equal")
    name = label or "target"
    suffix = f" ({units})" if units else ""
    ax.set_xlabel(f"true {name}{suffix}")
    ax.set_ylabel(f"predicted {name}{suffix}")
    unit_text = f" {units}" if units else ""
    ax.text(
        0.04,
        0.96,
        f"MAE = {mae:.3g}{unit_text}\nR² = {r2:.3f}\nn = {y_true.size}",
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )
    if title:
        ax.set_title(title)
    return ax


def _history_frame(history: Any) -> pd.DataFrame:
    """Normalise a training history to a DataFrame indexed by epoch (from 1)."""
    if isinstance(history, pd.DataFrame):
        frame = history.copy()
    elif isinstance(history, Mapping):
        frame = pd.DataFrame({k: list(v) for k, v in history.items()})
    elif isinstance(history, Sequence) and history and isinstance(history[0], Mapping):
        frame = pd.DataFrame(list(history))
    else:
        raise TypeError(
            "expected a fitted estimator with a history_ attribute, a DataFrame, a dict of lists "
            f"or a list of dicts, got {type(history).__name__}"
        )
    if frame.empty:
        raise ValueError("the training history is empty")
    if "epoch" in frame.columns:
        frame = frame.set_index("epoch")
    else:
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    # Columns that are NaN throughout (e.g. validation metrics without a validation split).
    return frame.select_dtypes(include="number").dropna(axis=1, how="all")


def plot_learning_curve(
    estimator_or_history: Any,
    ax: Axes | None = None,
    *,
    metrics: Sequence[str] | None = None,
    log_y: bool = False,
    units: str | None = None,
) -> Axes:
    """Training and validation curves per epoch.

    Parameters
    ----------
    estimator_or_history : CGCNNRegressor or DataFrame or dict or list of dict
        A fitted estimator (its ``history_`` is used and ``best_epoch_``, when present, is
        marked), or the history itself: one row (or list entry) per epoch.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure is created when omitted.
    metrics : sequence of str, optional
        History columns to draw. By default the loss columns go on the left axis and the
        MAE-like columns (names containing ``"mae"``) on a second y axis on the right.
    log_y : bool
        Logarithmic y axis for the losses.
    units : str, optional
        Units of the MAE columns, e.g. ``"eV/atom"``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes holding the loss curves (the MAE axis is ``ax.right_ax`` when drawn).
    """
    history = getattr(estimator_or_history, "history_", estimator_or_history)
    best_epoch = getattr(estimator_or_history, "best_epoch_", None)
    frame = _history_frame(history)
    if metrics is not None:
        missing = [m for m in metrics if m not in frame.columns]
        if missing:
            raise ValueError(
                f"history has no column(s) {missing}; available: {list(frame.columns)}"
            )
        left, right = list(metrics), []
    else:
        skip = {"time", "time_s", "lr", "learning_rate", "seconds", "wall_time"}
        columns = [c for c in frame.columns if str(c).lower() not in skip]
        right = [c for c in columns if "mae" in str(c).lower()]
        left = [c for c in columns if c not in right]
        if not left:
            left, right = right, []
    if not left:
        raise ValueError(f"history has no numeric columns to plot: {list(frame.columns)}")

    ax = _new_axes(ax, (6.5, 4.5))
    epochs = np.asarray(frame.index, dtype=float)
    lines = []
    for column in left:
        lines += ax.plot(epochs, frame[column].to_numpy(dtype=float), label=str(column))
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss" if metrics is None else ", ".join(map(str, left)))
    if log_y:
        ax.set_yscale("log")
    if right:
        right_ax = ax.twinx()
        for i, column in enumerate(right):
            lines += right_ax.plot(
                epochs,
                frame[column].to_numpy(dtype=float),
                label=str(column),
                linestyle="--",
                color=f"C{len(left) + i}",
            )
        right_ax.set_ylabel(f"MAE ({units})" if units else "MAE")
        ax.right_ax = right_ax
    if best_epoch is not None:
        lines.append(
            ax.axvline(
                float(best_epoch), color="grey", linestyle=":", label=f"best epoch {best_epoch}"
            )
        )
    ax.legend(handles=lines, fontsize=8, loc="upper right")
    ax.set_title("learning curve")
    return ax
