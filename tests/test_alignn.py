"""ALIGNN: bond vectors, the vectorised line graph and bond angles, the network, and the
scikit-learn estimators on the shared graph-estimator base."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from tests.prototypes import prototype_dataset

pytestmark = pytest.mark.gnn

TINY = dict(
    embedding="cgcnn",
    hidden_features=8,
    alignn_layers=1,
    gcn_layers=1,
    embedding_features=8,
    epochs=3,
    batch_size=16,
    random_state=0,
    n_threads=1,
)


@pytest.fixture(scope="module")
def data():
    return prototype_dataset()


@pytest.fixture(scope="module")
def fitted(data):
    from crysatom_featurizers.estimators import ALIGNNRegressor

    X, y = data
    return ALIGNNRegressor(**TINY).fit(X[:24], y[:24])


def _triclinic() -> Structure:
    return Structure(
        Lattice.from_parameters(3.1, 4.2, 5.3, 80, 95, 110),
        ["Fe", "O", "O"],
        [[0.9, 0.05, 0.02], [0.5, 0.5, 0.51], [0.25, 0.8, 0.33]],
    )


def _packed(structures, **kwargs):
    from crysatom_featurizers.graphs import (
        ALIGNN_GRAPH,
        PackedGraphs,
        add_line_graph,
        structures_to_graphs,
    )

    kwargs.setdefault("settings", ALIGNN_GRAPH)
    graphs = structures_to_graphs(structures, expand_edges=False, edge_vectors=True, **kwargs)
    return graphs, add_line_graph(PackedGraphs.from_graphs(graphs))


# ---- graphs ---------------------------------------------------------------------------------


def test_bond_vectors_point_from_centre_to_neighbour_image():
    from crysatom_featurizers.graphs import structure_to_graph

    s = _triclinic()
    g = structure_to_graph(s, edge_vectors=True, max_neighbors=None, radius=5.0)
    assert g.edge_vec.shape == (g.edge_index.shape[1], 3)
    np.testing.assert_allclose(g.edge_vec.norm(dim=1), g.edge_dist, atol=1e-5)
    # every bond vector ends on a periodic image of its neighbour
    lattice = s.lattice
    for (j, i), v in zip(g.edge_index.t().tolist(), g.edge_vec.numpy()):
        frac = lattice.get_fractional_coords(s[i].coords + v) - s[j].frac_coords
        np.testing.assert_allclose(frac, np.round(frac), atol=1e-5)
    # the CGCNN graph is unchanged by asking for the vectors
    plain = structure_to_graph(s, max_neighbors=None, radius=5.0)
    assert np.array_equal(plain.edge_index, g.edge_index) and "edge_vec" not in plain


def test_line_graph_matches_brute_force_and_batches_like_its_crystals():
    import torch

    from crysatom_featurizers.graphs import line_graph_index

    structures = [_triclinic(), Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]]), _triclinic()]
    graphs, packed = _packed(structures, max_neighbors=6)
    for g, count in zip(graphs, packed.tensors["num_triplets"].tolist()):
        ei = g.edge_index
        brute = {
            (a, c) for c in range(ei.shape[1]) for a in range(ei.shape[1]) if ei[1, a] == ei[0, c]
        }
        fast = line_graph_index(ei, g.num_nodes)
        assert set(map(tuple, fast.t().tolist())) == brute and count == len(brute)
    # a batch of crystals 2 and 1 holds their line graphs, shifted by the first one's bonds
    batch = packed.batch(torch.tensor([2, 1]))
    first = int(packed.num_edges[2])
    t2 = line_graph_index(graphs[2].edge_index, graphs[2].num_nodes)
    t1 = line_graph_index(graphs[1].edge_index, graphs[1].num_nodes) + first
    assert torch.equal(batch.triplet_index, torch.cat([t2, t1], dim=1))


def test_bond_angles_of_simple_cubic():
    from crysatom_featurizers.graphs import bond_cosines

    _, packed = _packed([Structure(Lattice.cubic(3.0), ["Po"], [[0, 0, 0]])], max_neighbors=6)
    batch = packed.batch([0])
    cos = bond_cosines(batch.edge_vec, batch.triplet_index).numpy()
    # each bond meets 6 bonds at its atom: itself reversed (0°), the opposite one, four at 90°
    values, counts = np.unique(np.round(cos, 6), return_counts=True)
    assert values.tolist() == [-1.0, 0.0, 1.0] and counts.tolist() == [6, 24, 6]


def _rock_salt_cells() -> dict[str, Structure]:
    """One rock-salt crystal written four ways: primitive, conventional, sites swapped, 2x1x1."""
    prim = Structure(
        Lattice.from_parameters(3.98, 3.98, 3.98, 60, 60, 60),
        ["Na", "Cl"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
    )
    conventional = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(3.98 * 2**0.5), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    swapped = Structure(prim.lattice, ["Cl", "Na"], [[0.5, 0.5, 0.5], [0, 0, 0]])
    supercell = prim.copy()
    supercell.make_supercell([2, 1, 1])
    return {"prim": prim, "conv": conventional, "swap": swapped, "super": supercell}


def test_alignn_graph_is_undirected_with_ties_and_its_angles_do_not_depend_on_the_cell():
    import torch

    from crysatom_featurizers.graphs import bond_cosines

    histograms = {}
    for name, s in _rock_salt_cells().items():
        graphs, packed = _packed([s])
        g = graphs[0]
        # 6 anions and all 12 cations of the second shell (ties), in both directions
        assert torch.bincount(g.edge_index[1]).tolist() == [18] * len(s)
        batch = packed.batch([0])
        cos = bond_cosines(batch.edge_vec, batch.triplet_index).numpy()
        values, counts = np.unique(np.round(cos, 4) + 0.0, return_counts=True)
        histograms[name] = dict(zip(values.tolist(), (counts / len(s)).tolist()))
    # all 18 x 18 pairs of an atom's bonds: 0 and 180 degrees 18 times each
    prim = histograms["prim"]
    assert sum(prim.values()) == 324 and prim[1.0] == prim[-1.0] == 18 and len(prim) == 7
    for name, h in histograms.items():
        assert h == histograms["prim"], name


def test_bond_angles_of_a_cell_without_inversion_match_the_geometry():
    """In a cell without an inversion centre every bond's opposite is missing, so a sign error
    in the bond vectors or the angle would change the angles (a centrosymmetric cell hides it:
    flipping every bond gives the same set of angles)."""
    import torch

    from crysatom_featurizers.graphs import bond_cosines

    s = _triclinic()  # three sites at generic positions: no inversion, no symmetry
    assert s.get_space_group_info()[1] == 1
    graphs, packed = _packed([s], max_neighbors=4)
    g, batch = graphs[0], packed.batch([0])
    src, dst = g.edge_index
    # each bond vector points from its centre (the target) to an image of its neighbour
    # (the source): in fractional coordinates it differs from frac[src] - frac[dst] by a
    # lattice translation, and its length is the bond's
    frac = s.lattice.get_fractional_coords(g.edge_vec.double().numpy())
    shift = frac - (s.frac_coords[src.numpy()] - s.frac_coords[dst.numpy()])
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-5)
    np.testing.assert_allclose(g.edge_vec.norm(dim=1), g.edge_dist, rtol=1e-5)
    # the angles a-b-c at each atom b are those between every ordered pair of its bonds
    cos = bond_cosines(batch.edge_vec, batch.triplet_index).double().numpy()
    centre = batch.edge_index[1][batch.triplet_index[0]].numpy()
    vec = g.edge_vec.double().numpy()
    for b in range(len(s)):
        bonds = vec[dst.numpy() == b]  # from b to its neighbours
        unit = bonds / np.linalg.norm(bonds, axis=1, keepdims=True)
        expected = np.sort((unit @ unit.T).ravel())
        np.testing.assert_allclose(np.sort(cos[centre == b]), expected, atol=1e-5)
        flipped = np.sort((unit @ -unit.T).ravel())  # what a sign error would give
        assert not np.allclose(expected, flipped, atol=1e-3)
    assert torch.equal(
        torch.bincount(torch.as_tensor(centre), minlength=len(s)),
        torch.bincount(dst, minlength=len(s)) ** 2,
    )


def test_line_graph_needs_bond_vectors():
    from crysatom_featurizers.graphs import PackedGraphs, add_line_graph, structures_to_graphs

    packed = PackedGraphs.from_graphs(structures_to_graphs([_triclinic()], expand_edges=False))
    with pytest.raises(ValueError, match="edge_vectors=True"):
        add_line_graph(packed)


# ---- network --------------------------------------------------------------------------------


def test_network_gives_one_answer_for_any_cell_of_a_crystal():
    import torch

    from crysatom_featurizers.nn import ALIGNN

    torch.manual_seed(0)
    model = ALIGNN("cgcnn", hidden_features=16, alignn_layers=2, gcn_layers=1).eval()
    cells = _rock_salt_cells()
    _, packed = _packed(list(cells.values()))
    with torch.no_grad():
        out = model(packed.batch(torch.arange(len(cells)))).squeeze(1)
    np.testing.assert_allclose(out, out[0].repeat(len(cells)), atol=1e-5)


def test_network_is_invariant_to_rotation_site_order_and_batch_company():
    import torch

    from crysatom_featurizers.nn import ALIGNN

    s = _triclinic()
    rotated = Structure(
        Lattice(s.lattice.matrix @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], float).T),
        s.species,
        s.frac_coords,
    )
    reordered = Structure(s.lattice, s.species[::-1], s.frac_coords[::-1])
    other = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    torch.manual_seed(0)
    model = ALIGNN("cgcnn", hidden_features=16, alignn_layers=2, gcn_layers=1).eval()
    _, packed = _packed([s, rotated, reordered, other])
    with torch.no_grad():
        together = model(packed.batch(torch.arange(4))).squeeze(1)
        alone = torch.stack([model(packed.batch([i])).squeeze() for i in range(4)])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together[:3], together[0].repeat(3), atol=1e-4)
    assert model.num_node_layers == 4 and len(model.encode_layers(packed.batch([0]))) == 4
    rebuilt = ALIGNN.from_config("cgcnn", model.config())
    assert rebuilt.config() == model.config()


# ---- estimators -----------------------------------------------------------------------------


def test_regressor_fits_predicts_and_reproduces(data, fitted):
    from crysatom_featurizers.estimators import ALIGNNRegressor
    from crysatom_featurizers.nn import ALIGNN

    X, y = data
    pred = fitted.predict(X[24:])
    assert pred.shape == (12,) and np.isfinite(pred).all()
    assert isinstance(fitted.model_, ALIGNN) and fitted.model_.node_dim == 8
    again = ALIGNNRegressor(**TINY).fit(X[:24], y[:24])
    np.testing.assert_array_equal(again.predict(X[24:]), pred)
    assert fitted.timings_["graphs_s"] > 0 and len(fitted.history_) == 3


def test_presets_and_explicit_sizes():
    from crysatom_featurizers.estimators import ALIGNNRegressor
    from crysatom_featurizers.nn import ALIGNN_PRESETS

    assert ALIGNN_PRESETS["paper"] == {"hidden_features": 256, "alignn_layers": 4, "gcn_layers": 4}
    est = ALIGNNRegressor(preset="paper", gcn_layers=1)
    assert est._architecture() == {"hidden_features": 256, "alignn_layers": 4, "gcn_layers": 1}
    assert ALIGNNRegressor()._architecture() == ALIGNN_PRESETS["cpu"]


def test_scikit_learn_contract(data, fitted, tmp_path):
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from crysatom_featurizers.estimators import ALIGNNRegressor
    from crysatom_featurizers.graphs import CrystalGraphTransformer

    X, y = data
    params = clone(fitted).get_params()
    assert params["preset"] == "cpu" and "finetune" not in params
    path = tmp_path / "m.joblib"
    joblib.dump(fitted, path)
    np.testing.assert_array_equal(joblib.load(path).predict(X[24:]), fitted.predict(X[24:]))
    # graphs from the transformer, with bond vectors
    pipe = Pipeline(
        [
            ("graphs", CrystalGraphTransformer(edge_vectors=True, symmetric=True)),
            ("alignn", ALIGNNRegressor(**TINY)),
        ]
    ).fit(X[:24], y[:24])
    np.testing.assert_allclose(pipe.predict(X[24:]), fitted.predict(X[24:]), atol=1e-5)
    search = GridSearchCV(
        ALIGNNRegressor(**{**TINY, "epochs": 1}), {"hidden_features": [4, 8]}, cv=2
    ).fit(X[:16], y[:16])
    assert search.best_params_["hidden_features"] in (4, 8)


def test_validation_set_early_stopping_and_classifier(data):
    from crysatom_featurizers.estimators import ALIGNNClassifier, ALIGNNRegressor

    X, y = data
    est = ALIGNNRegressor(**{**TINY, "epochs": 30, "patience": 2, "lr": 0.05}).fit(
        X[:24], y[:24], X_val=X[24:], y_val=y[24:]
    )
    assert est.n_iter_ - est.best_epoch_ <= 2 and len(est.validation_indices_) == 0
    labels = np.where(y > np.median(y), "large", "small")
    clf = ALIGNNClassifier(**TINY).fit(X, labels)
    assert clf.predict_proba(X).shape == (36, 2) and set(clf.predict(X)) <= {"large", "small"}


def test_safe_model_file_round_trip_and_crafted_sizes(data, fitted, tmp_path):
    import json

    from crysatom_featurizers.estimators import ModelFileError, load_model
    from tests.test_model_files import _rewrite, resigned

    X, _ = data
    path = fitted.save(tmp_path / "m.safetensors")
    loaded = load_model(path).set_params(n_threads=fitted.n_threads)
    assert type(loaded).__name__ == "ALIGNNRegressor"
    np.testing.assert_array_equal(loaded.predict(X[24:]), fitted.predict(X[24:]))

    def huge(metadata, tensors):
        network = json.loads(metadata["network"])
        network["config"]["hidden_features"] = 10**9
        metadata["network"] = json.dumps(network)

    crafted = _rewrite(path, tmp_path / "huge.safetensors", resigned(huge))
    with pytest.raises(ModelFileError, match="hidden_features=1000000000 but the weights have 8"):
        load_model(crafted)


def test_distillation_from_a_cgcnn_encoder(data):
    from crysatom_featurizers.estimators import ALIGNNRegressor

    X, y = data
    est = ALIGNNRegressor(**TINY, distill="crysatom", distill_layer=1).fit(X[:24], y[:24])
    assert est.transfer_["mode"] == "distill" and np.isfinite(est.predict(X[24:])).all()
    with pytest.raises(ValueError, match=r"distill_layer must be in \[-3, 2\]"):
        ALIGNNRegressor(**TINY, distill="crysatom", distill_layer=3).fit(X[:24], y[:24])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"preset": "gpu"}, "preset must be one of"),
        ({"hidden_features": 0}, "hidden_features must be an integer >= 1"),
        ({"alignn_layers": 0, "gcn_layers": 0}, "no layer"),
        ({"embedding_features": 2.5}, "embedding_features must be an integer"),
        ({"radius": -1.0}, "radius must be a positive finite number"),
    ],
)
def test_bad_parameters_are_clear(data, params, message):
    from crysatom_featurizers.estimators import ALIGNNRegressor

    X, y = data
    with pytest.raises(ValueError, match=message):
        ALIGNNRegressor(**{**TINY, **params}).fit(X[:8], y[:8])


def test_fine_tuning_is_not_an_alignn_parameter():
    from crysatom_featurizers.estimators import ALIGNNRegressor

    with pytest.raises(TypeError):
        ALIGNNRegressor(finetune="crysatom")


def test_bad_inputs_are_clear(data):
    from crysatom_featurizers.estimators import ALIGNNRegressor
    from crysatom_featurizers.graphs import structures_to_graphs

    X, y = data
    est = ALIGNNRegressor(**TINY)
    isolated = Structure(Lattice.cubic(30.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="row 2.*no neighbour within radius"):
        est.fit([*X[:2], isolated], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="contains Og"):
        est.fit([*X[:2], Structure(Lattice.cubic(4.0), ["Og"], [[0, 0, 0]])], [1.0, 2.0, 3.0])
    plain = structures_to_graphs(X[:3], expand_edges=False)
    with pytest.raises(ValueError, match="row 0.*no bond vectors.*edge_vectors=True"):
        est.fit(plain, y[:3])
    directed = structures_to_graphs(X[:3], expand_edges=False, edge_vectors=True)
    with pytest.raises(ValueError, match="row 0.*is directed.*symmetric=True"):
        est.fit(directed, y[:3])


def test_without_alignn_layers_no_line_graph_is_built(data):
    from crysatom_featurizers.estimators import ALIGNNRegressor

    X, y = data
    est = ALIGNNRegressor(**{**TINY, "alignn_layers": 0, "gcn_layers": 2}).fit(X[:12], y[:12])
    packed, _ = est._pack(X[:2], est.model_.embedding.covered.numpy(), "cgcnn", for_fit=False)
    assert "triplet_index" not in packed.tensors and est.model_.num_node_layers == 3


def test_subclasses_with_their_own_parameters_keep_the_contract():
    from sklearn.base import clone

    from crysatom_featurizers.estimators import ALIGNNRegressor, CGCNNRegressor

    class Wider(CGCNNRegressor):
        def __init__(self, extra=1, epochs=5):
            self.extra = extra
            super().__init__(epochs=epochs)

    est = clone(Wider(extra=3, epochs=7))
    assert est.extra == 3 and est.epochs == 7 and est.lr == 1e-3
    assert clone(ALIGNNRegressor(gcn_layers=3)).get_params()["gcn_layers"] == 3
