"""A universal potential's site vectors in the graph estimators: as node inputs
(``site_features``) and as the teacher of a distillation (``distill="chgnet"``)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch_geometric", reason="needs the [gnn] extra")
pytest.importorskip("chgnet", reason="needs the [potentials] extra (chgnet)")

from pymatgen.core import Lattice, Structure  # noqa: E402
from sklearn.base import clone  # noqa: E402

from crysatom_featurizers.estimators import (  # noqa: E402
    ALIGNNRegressor,
    CGCNNClassifier,
    CGCNNRegressor,
    load_model,
)
from crysatom_featurizers.graphs import CrystalGraphTransformer  # noqa: E402
from crysatom_featurizers.potentials import get_potential  # noqa: E402
from tests.prototypes import prototype_dataset  # noqa: E402

TINY = dict(epochs=4, batch_size=12, random_state=0, n_threads=1, validation_fraction=0.25)


@pytest.fixture(scope="module")
def data():
    X, y = prototype_dataset()
    return X[:24], y[:24]


@pytest.fixture(scope="module")
def sites_only(data):
    X, y = data
    return CGCNNRegressor(site_features="chgnet", atom_fea_len=16, n_conv=1, **TINY).fit(X, y)


def test_the_graphs_carry_the_potentials_own_site_vectors(data):
    X, _ = data
    est = CGCNNRegressor(site_features="chgnet")
    graphs = est.graph_transformer().fit_transform(X[:3])
    results, errors = get_potential("chgnet").predict(X[:3])
    assert not errors
    for graph, result in zip(graphs, results):
        np.testing.assert_array_equal(graph.site_features.numpy(), result.site_features)
        assert graph.site_features.shape == (graph.num_nodes, 64)


def test_site_vectors_replace_or_follow_the_element_vectors(data, sites_only, tmp_path):
    X, y = data
    layer = sites_only.model_.embedding
    assert (layer.site_dim, layer.use_elements, layer.out_dim) == (64, False, 64)
    assert sites_only.model_.encoder.in_dim == 64
    assert sites_only.embedding_name_ == "chgnet sites"
    both = CGCNNRegressor(
        site_features="chgnet", embedding="cgcnn", atom_fea_len=16, n_conv=1, **TINY
    ).fit(X, y)
    assert both.model_.encoder.in_dim == 92 + 64 and both.embedding_name_ == "cgcnn"
    # the model file rebuilds the same network; graphs built once give the same predictions
    loaded = load_model(sites_only.save(tmp_path / "sites.safetensors")).set_params(n_threads=1)
    np.testing.assert_array_equal(loaded.predict(X), sites_only.predict(X))
    graphs = sites_only.graph_transformer().fit_transform(X)
    np.testing.assert_array_equal(sites_only.predict(graphs), sites_only.predict(X))
    assert clone(sites_only).get_params()["site_features"] == "chgnet"
    with pytest.raises(ValueError, match="not a function of the element alone"):
        sites_only.model_.element_input_vectors()
    alignn = ALIGNNRegressor(site_features="chgnet", **TINY).fit(X, y)
    assert alignn.model_.atom_embedding[0].in_features == 64
    clf = CGCNNClassifier(site_features="chgnet", atom_fea_len=8, n_conv=1, **TINY)
    assert clf.fit(X, y > np.median(y)).predict_proba(X).shape == (len(X), 2)


def test_site_feature_mistakes_are_clear(data, sites_only):
    X, y = data
    with pytest.raises(ValueError, match="site_features: unknown universal potential 'mace'"):
        CGCNNRegressor(site_features="mace", **TINY).fit(X, y)
    with pytest.raises(ValueError, match="finetune and site_features are alternatives"):
        CGCNNRegressor(site_features="chgnet", finetune="uae", **TINY).fit(X, y)
    with pytest.raises(ValueError, match="fine-tuning starts from a CGCNN encoder"):
        CGCNNRegressor(finetune="chgnet", **TINY).fit(X, y)
    plain = CrystalGraphTransformer(expand_edges=False).fit_transform(X[:2])
    with pytest.raises(ValueError, match=r"row 0 needs the chgnet potential's site vectors"):
        sites_only.predict(plain)
    americium = Structure(Lattice.cubic(3.5), ["Am", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"row 1: site 0: element Am is outside the chgnet"):
        sites_only.predict([X[0], americium])


def test_distillation_from_a_potential_needs_it_at_fit_only(data):
    X, y = data
    est = CGCNNRegressor(
        distill="chgnet", embedding="cgcnn", atom_fea_len=16, n_conv=1, **TINY
    ).fit(X, y)
    transfer = est.transfer_
    assert (transfer["mode"], transfer["encoder"], transfer["hidden_dim"]) == (
        "distill",
        "chgnet",
        64,
    )
    assert transfer["input_embedding"] is None and transfer["checksum"].startswith("chgnet:")
    assert est.model_.embedding.site_dim == 0  # the student reads element vectors only
    # predicting needs no potential: plain graphs, without site vectors, are enough
    plain = CrystalGraphTransformer(expand_edges=False).fit_transform(X)
    np.testing.assert_array_equal(est.predict(plain), est.predict(X))
    with pytest.raises(ValueError, match="needs the chgnet potential's site vectors"):
        clone(est).fit(plain, y)


def test_the_command_line_trains_on_site_vectors(tmp_path, capsys, data):
    from crysatom_featurizers import cli

    X, y = data
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, structure in enumerate(X[:8]):
        structure.to(filename=str(folder / f"m{i}.cif"))
    (folder / "id_prop.csv").write_text("".join(f"m{i},{y[i]:.5f}\n" for i in range(8)))
    model = tmp_path / "sites.safetensors"
    argv = ["train", folder, "-o", model, "--site-features", "chgnet", "--epochs", "2",
            "--threads", "1", "--val-fraction", "0.25", "-q"]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == 0, capsys.readouterr().err
    assert load_model(model).site_features == "chgnet"
    assert cli.main(["predict", str(model), str(folder), "-o", str(tmp_path / "p.csv")]) == 0
    capsys.readouterr()
    argv[5] = "mace"
    assert cli.main([str(a) for a in argv]) == 1
    assert "--site-features: unknown universal potential 'mace'" in capsys.readouterr().err


def test_isolated_sites_follow_allow_isolated(data):
    from crysatom_featurizers.potentials import get_potential

    X, y = data
    # S alone in a 7 Å cell: no neighbour within CHGNet's 6 Å cutoff
    lonely = Structure(Lattice.cubic(7.0), ["S"], [[0, 0, 0]])
    chgnet = get_potential("chgnet")
    results, errors = chgnet.predict([lonely])
    assert results == [None] and "isolated atom" in str(errors[0])
    results, errors = chgnet.predict([lonely], allow_isolated=True)
    assert not errors and results[0].site_features.shape == (1, 64)
    est = CGCNNRegressor(site_features="chgnet", atom_fea_len=8, n_conv=1, **TINY)
    with pytest.raises(ValueError, match="row 24: S: a site has no neighbour within CHGNet"):
        est.fit([*X, lonely], [*y, 1.0])
    est.set_params(allow_isolated=True).fit([*X, lonely], [*y, 1.0])
    assert np.isfinite(est.predict([lonely])).all()
