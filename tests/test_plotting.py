"""Tests of crysatom_featurizers.plotting (Agg backend, figures saved to PNG)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from pymatgen.core import Element  # noqa: E402

from crysatom_featurizers import plotting  # noqa: E402
from crysatom_featurizers.embeddings import ElementEmbedding, load  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def save_png(ax, path) -> bytes:
    ax.figure.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000
    return data


@pytest.fixture
def toy() -> ElementEmbedding:
    rng = np.random.default_rng(0)
    symbols = ["H", "Li", "C", "O", "Na", "Fe", "La", "Ce", "U"]
    return ElementEmbedding.from_dict({s: rng.normal(size=6) for s in symbols}, name="toy")


def test_backend_is_agg():
    assert matplotlib.get_backend().lower() == "agg"


def test_periodic_table_layout_matches_pymatgen():
    """Groups, periods and blocks of the 18-column layout agree with pymatgen's data."""
    positions = set()
    for z in range(1, 119):
        element = Element.from_Z(z)
        row, col = plotting.periodic_table_position(z)
        positions.add((row, col))
        group = plotting.element_group(z)
        if 57 <= z <= 71 or 89 <= z <= 103:
            assert group is None and row in (9, 10) and plotting.element_block(z) == "f"
        else:
            assert (row, col) == (element.row, element.group) == (element.row, group)
            if z != 2:  # He: s-block by its 1s² configuration (pymatgen says p)
                assert plotting.element_block(z) == element.block
    assert len(positions) == 118  # no two elements share a cell
    assert plotting.element_block(2) == "s"


@pytest.mark.parametrize("method", ["pca", "tsne"])
@pytest.mark.parametrize("color_by", ["group", "block"])
def test_embedding_map(tmp_path, toy, method, color_by):
    ax = plotting.plot_embedding_map(toy, method=method, color_by=color_by)
    # One point per element, labelled with its symbol.
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == len(toy)
    assert {t.get_text() for t in ax.texts} == set(toy.symbols)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    if color_by == "block":
        assert legend == ["s-block", "p-block", "d-block", "f-block"]
    else:
        assert "La/Ac" in legend and "group 1" in legend
    save_png(ax, tmp_path / "map.png")


def test_embedding_map_pca_coordinates(toy):
    """Without normalisation the points are the PCA scores of the raw vectors."""
    from sklearn.decomposition import PCA

    ax = plotting.plot_embedding_map(toy, normalize=False, annotate=False, legend=False)
    coords = np.concatenate([c.get_offsets() for c in ax.collections])
    expected = PCA(n_components=2, random_state=0).fit_transform(toy.vectors.astype(float))
    # Points are drawn per colour group; compare as sets of rows.
    key = lambda a: np.round(a[np.lexsort(a.T[::-1])], 6)  # noqa: E731
    np.testing.assert_allclose(key(np.asarray(coords)), key(expected), atol=1e-6)


def test_embedding_map_by_name_and_on_given_axes(tmp_path):
    fig, axes = plt.subplots(1, 2)
    ax = plotting.plot_embedding_map("megnet16", ax=axes[1], annotate=False)
    assert ax is axes[1]
    assert not ax.texts


def test_embedding_map_rejects_bad_options(toy):
    with pytest.raises(ValueError, match="method"):
        plotting.plot_embedding_map(toy, method="umap")
    with pytest.raises(ValueError, match="color_by"):
        plotting.plot_embedding_map(toy, color_by="period")


def test_periodic_table_heatmap(tmp_path):
    values = {"Fe": 1.0, "O": 3.0, "Na": np.nan, "U": 2.0}
    ax = plotting.plot_periodic_table_heatmap(values, title="test", show_values=True)
    texts = [t.get_text() for t in ax.texts]
    # Every element gets a cell label; values appear for the finite entries only.
    assert sum(t in {"H", "Fe", "Og", "Lr"} for t in texts) == 4
    assert "3" in texts and "1" in texts and "nan" not in texts
    assert ax.get_title() == "test"
    # Colours: O (max) and Fe (min) are the colormap's ends, Na (NaN) and H (absent) grey.
    cmap = plt.get_cmap("viridis")
    cells = {(round(p.get_x()), round(p.get_y() * 2)): p.get_facecolor() for p in ax.patches}
    row, col = plotting.periodic_table_position(8)
    np.testing.assert_allclose(cells[(col - 1, (row - 1) * 2)], cmap(1.0))
    row, col = plotting.periodic_table_position(26)
    np.testing.assert_allclose(cells[(col - 1, (row - 1) * 2)], cmap(0.0))
    save_png(ax, tmp_path / "pt.png")


def test_periodic_table_heatmap_accepts_series_and_rejects_unknown_symbols():
    ax = plotting.plot_periodic_table_heatmap(pd.Series({"Cu": 1.0, "Zn": 2.0}))
    assert len(ax.patches) == 118
    with pytest.raises(ValueError):
        plotting.plot_periodic_table_heatmap({"Xx": 1.0})


def test_similarity_heatmap(tmp_path, toy):
    ax = plotting.plot_similarity_heatmap(toy)
    matrix = ax.images[0].get_array()
    assert matrix.shape == (len(toy), len(toy))
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-12)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == toy.symbols  # already ordered by Z
    vectors = toy.vectors.astype(float)
    cosine = vectors[1] @ vectors[3] / np.linalg.norm(vectors[1]) / np.linalg.norm(vectors[3])
    assert matrix[1, 3] == pytest.approx(cosine, abs=1e-6)
    save_png(ax, tmp_path / "sim.png")


def test_similarity_heatmap_subset_and_missing():
    ax = plotting.plot_similarity_heatmap(load("megnet16"), elements=["O", "Fe", "Na"])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["O", "Na", "Fe"]
    with pytest.raises(ValueError, match="Og"):
        plotting.plot_similarity_heatmap(load("megnet16"), elements=["Og"])


def test_parity_plot(tmp_path):
    y_true = np.array([0.0, 1.0, 2.0, 3.0])
    y_pred = np.array([0.1, 0.9, 2.2, 2.8])
    ax = plotting.plot_parity(y_true, y_pred, units="eV/atom", label="formation energy")
    text = ax.texts[0].get_text()
    assert "MAE = 0.15 eV/atom" in text
    r2 = 1 - np.sum((y_true - y_pred) ** 2) / np.sum((y_true - y_true.mean()) ** 2)
    assert f"R² = {r2:.3f}" in text
    assert ax.get_xlabel() == "true formation energy (eV/atom)"
    save_png(ax, tmp_path / "parity.png")
    with pytest.raises(ValueError, match="same length"):
        plotting.plot_parity([1, 2], [1])


def test_learning_curve_from_history_and_estimator(tmp_path):
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [1.0, 0.5, 0.4],
            "train_mae": [0.9, 0.6, 0.5],
            "val_loss": [1.1, 0.7, 0.8],
            "val_mae": [1.0, 0.7, 0.75],
            "lr": [1e-3] * 3,
            "time_s": [0.1] * 3,
        }
    )
    ax = plotting.plot_learning_curve(history)
    assert [line.get_label() for line in ax.get_lines()] == ["train_loss", "val_loss"]
    assert [line.get_label() for line in ax.right_ax.get_lines()] == ["train_mae", "val_mae"]
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), history["val_loss"])

    class Fitted:
        history_ = history
        best_epoch_ = 2

    ax = plotting.plot_learning_curve(Fitted(), metrics=["val_mae"], units="eV/atom")
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["val_mae", "best epoch 2"]
    save_png(ax, tmp_path / "curve.png")
    with pytest.raises(ValueError, match="no column"):
        plotting.plot_learning_curve(history, metrics=["val_r2"])
    with pytest.raises(TypeError):
        plotting.plot_learning_curve(42)


@pytest.mark.gnn
def test_learning_curve_of_a_fitted_regressor(tmp_path):
    from pymatgen.core import Lattice, Structure

    from crysatom_featurizers.estimators import CGCNNRegressor

    structures = [
        Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        for a in (3.8, 4.0, 4.2, 4.4, 4.6)
    ]
    model = CGCNNRegressor(
        embedding="cgcnn",
        atom_fea_len=8,
        n_conv=1,
        h_fea_len=8,
        epochs=3,
        validation_fraction=0.2,
        random_state=0,
        n_threads=1,
    ).fit(structures, [a**3 for a in (3.8, 4.0, 4.2, 4.4, 4.6)])
    ax = plotting.plot_learning_curve(model, units="Å³")
    assert len(ax.get_lines()[0].get_xdata()) == model.n_iter_
    assert any(line.get_label() == f"best epoch {model.best_epoch_}" for line in ax.get_lines())
    save_png(ax, tmp_path / "fitted.png")
