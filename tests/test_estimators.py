"""Tests of the scikit-learn CGCNN estimators (tiny models, structures built in code)."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.estimators import CGCNNClassifier, CGCNNRegressor
from crysatom_featurizers.graphs import CrystalGraphTransformer, structures_to_graphs
from tests.prototypes import prototype_dataset, rock_salt

# A tiny network and few epochs: these tests check the plumbing, not the accuracy.
TINY = dict(
    embedding="cgcnn",
    atom_fea_len=8,
    n_conv=1,
    h_fea_len=16,
    epochs=3,
    batch_size=16,
    random_state=0,
    n_threads=1,
)


@pytest.fixture(scope="module")
def data() -> tuple[list[Structure], np.ndarray]:
    """36 small crystals of three prototypes; the target is the volume per atom (Å^3)."""
    return prototype_dataset()


@pytest.fixture(scope="module")
def fitted(data) -> CGCNNRegressor:
    X, y = data
    return CGCNNRegressor(**TINY).fit(X, y)


# ---- sklearn contract ------------------------------------------------------------------------


def test_default_parameters_follow_cgcnn_and_uae(data):
    params = CGCNNRegressor().get_params()
    # None: CrysAtom vectors and CGCNN's 64 x 3 unless an encoder is fine-tuned
    assert params["embedding"] is None and params["dim"] is None
    assert (params["atom_fea_len"], params["n_conv"], params["h_fea_len"], params["n_h"]) == (
        None,
        None,
        128,
        1,
    )
    assert params["pooling"] == "mean" and params["radius"] == 8.0
    assert params["max_neighbors"] == 12 and params["trainable_embeddings"] is False
    assert params["finetune"] is None and params["distill"] is None
    assert CGCNNClassifier().get_params()["embedding"] is None
    assert "atom_features" not in params  # the alias was removed before the first release
    X, y = data
    model = CGCNNRegressor(epochs=1, validation_fraction=0, random_state=0).fit(X, y)
    assert model.embedding_name_.startswith("uae") and model.embedding_dim_ == 256
    assert model.model_.encoder.hidden_dim == 64 and model.model_.encoder.num_layers == 3
    assert model.transfer_ is None


def test_get_params_set_params_clone(fitted):
    est = CGCNNRegressor(**TINY)
    assert est.get_params()["atom_fea_len"] == 8
    est.set_params(atom_fea_len=4, lr_schedule="cosine")
    assert est.atom_fea_len == 4 and est.lr_schedule == "cosine"
    cloned = clone(fitted)
    assert cloned.get_params() == fitted.get_params()
    assert not hasattr(cloned, "model_")
    clf = CGCNNClassifier(class_weight="balanced", **TINY)
    assert clone(clf).get_params()["class_weight"] == "balanced"


def test_fit_sets_attributes_and_predicts(data, fitted):
    X, y = data
    hist = fitted.history_
    assert list(hist.columns) == [
        "epoch",
        "train_loss",
        "train_mae",
        "val_loss",
        "val_mae",
        "lr",
        "time_s",
    ]
    assert hist["epoch"].tolist() == [1, 2, 3] and fitted.n_iter_ == 3
    assert np.isfinite(hist[["train_loss", "train_mae", "val_loss", "val_mae"]].to_numpy()).all()
    assert fitted.best_epoch_ == int(hist["val_loss"].idxmin()) + 1
    assert len(fitted.validation_indices_) == round(0.1 * len(X))
    assert fitted.n_targets_ == 1 and fitted.embedding_name_ == "cgcnn"
    assert fitted.embedding_dim_ == 92
    assert all(p.device.type == "cpu" for p in fitted.model_.parameters())
    assert not fitted.model_.training
    pred = fitted.predict(X)
    assert pred.shape == (len(X),) and pred.dtype == np.float64
    assert np.isclose(fitted.score(X, y), r2_score(y, pred))
    assert fitted.target_mean_.shape == (1,) and fitted.target_scale_[0] > 0


def test_inputs_list_series_dataframe_and_graphs_agree(data, fitted):
    X, _ = data
    expected = fitted.predict(X)
    series = pd.Series(X, index=[f"m{i}" for i in range(len(X))])
    frame = pd.DataFrame({"structure": series, "other": 1.0})
    graphs = CrystalGraphTransformer().fit_transform(X)
    np.testing.assert_allclose(fitted.predict(series), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.predict(frame), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.predict(graphs), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fitted.predict(tuple(X)), expected, rtol=1e-6, atol=1e-8)


def test_fit_on_graphs_equals_fit_on_structures(data):
    X, y = data
    graphs = structures_to_graphs(X)
    a = CGCNNRegressor(**TINY).fit(X, y).predict(X)
    b = CGCNNRegressor(**TINY).fit(graphs, y).predict(graphs)
    np.testing.assert_array_equal(a, b)


def test_graphs_built_with_other_settings_are_rejected(data, fitted):
    X, _ = data
    with pytest.raises(ValueError, match="graph settings"):
        fitted.predict(structures_to_graphs(X[:3], radius=6.0))
    more = structures_to_graphs(X[:3], max_neighbors=20, expand_edges=False)
    with pytest.raises(ValueError, match="built with max_neighbors=20"):
        fitted.predict(more)
    longer = structures_to_graphs(X[:6], expand_edges=False)
    with pytest.raises(ValueError, match="built with radius=8.0"):
        CGCNNRegressor(**{**TINY, "radius": 3.0}).fit(longer, np.arange(6.0))
    # graphs that do not record their settings are judged by their edges
    for graph in [*more, *longer]:
        del graph.graph_settings
    with pytest.raises(ValueError, match="neighbours"):
        fitted.predict(more)
    with pytest.raises(ValueError, match="edge of length"):
        CGCNNRegressor(**{**TINY, "radius": 3.0}).fit(longer, np.arange(6.0))


def test_pipeline_with_graph_transformer(data):
    X, y = data
    pipe = Pipeline([("graphs", CrystalGraphTransformer()), ("cgcnn", CGCNNRegressor(**TINY))])
    pipe.fit(X, y)
    direct = CGCNNRegressor(**TINY).fit(X, y)
    np.testing.assert_allclose(pipe.predict(X), direct.predict(X), rtol=1e-6, atol=1e-8)
    assert isinstance(pipe.score(X, y), float)


def test_grid_search(data):
    X, y = data
    search = GridSearchCV(
        CGCNNRegressor(**{**TINY, "epochs": 2}), {"atom_fea_len": [4, 8]}, cv=2, error_score="raise"
    )
    search.fit(X, y)
    assert search.best_params_["atom_fea_len"] in (4, 8)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(X[:4]).shape == (4,)


def test_cross_val_score(data):
    X, y = data
    scores = cross_val_score(CGCNNRegressor(**{**TINY, "epochs": 2}), X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_transformed_target_regressor(data):
    X, y = data
    est = TransformedTargetRegressor(
        regressor=CGCNNRegressor(**{**TINY, "standardize_target": False}),
        transformer=StandardScaler(),
    )
    est.fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (len(X),)
    # predictions come back in the units of y, not the scaler's
    assert abs(pred.mean() - y.mean()) < 3 * y.std()
    assert est.regressor_.target_mean_[0] == 0.0 and est.regressor_.target_scale_[0] == 1.0


# ---- persistence, devices and reproducibility -----------------------------------------------


def test_joblib_round_trip_gives_identical_predictions(data, fitted, tmp_path):
    X, _ = data
    path = tmp_path / "cgcnn.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.history_.equals(fitted.history_)
    assert loaded.best_epoch_ == fitted.best_epoch_


def test_state_saved_on_cpu_loads_with_device_cpu(data, fitted):
    X, _ = data
    state = fitted.__getstate__()
    assert "model_" not in state and isinstance(state["_model_bytes"], bytes)
    restored = pickle.loads(pickle.dumps(fitted))
    restored.set_params(device="cpu")
    assert all(p.device.type == "cpu" for p in restored.model_.parameters())
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))


def test_unpickling_maps_model_tensors_to_cpu(fitted, monkeypatch):
    # Without a GPU here, check the mechanism that lets a GPU-fitted model load anywhere.
    seen = {}
    real_load = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    pickle.loads(pickle.dumps(fitted))
    assert seen.get("map_location") == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_model_predicts_on_cuda_and_cuda_model_loads_on_cpu(data, fitted):
    X, y = data
    on_gpu = clone(fitted).set_params(device="cuda")
    on_gpu.__setstate__(fitted.__getstate__())
    np.testing.assert_allclose(on_gpu.predict(X), fitted.predict(X), rtol=1e-4, atol=1e-5)
    trained_on_gpu = CGCNNRegressor(**{**TINY, "device": "cuda"}).fit(X, y)
    back = pickle.loads(pickle.dumps(trained_on_gpu))
    back.set_params(device="cpu")
    np.testing.assert_allclose(back.predict(X), trained_on_gpu.predict(X), rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_device_without_cuda_raises(data):
    X, y = data
    with pytest.raises(ValueError, match="CUDA is not available"):
        CGCNNRegressor(**{**TINY, "device": "cuda"}).fit(X, y)


def test_same_random_state_gives_identical_predictions(data, fitted):
    X, y = data
    again = CGCNNRegressor(**TINY).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(again.validation_indices_, fitted.validation_indices_)
    other = CGCNNRegressor(**{**TINY, "random_state": 1}).fit(X, y)
    assert not np.array_equal(other.predict(X), fitted.predict(X))


def test_fit_leaves_global_torch_state_alone(data):
    X, y = data
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    CGCNNRegressor(**{**TINY, "epochs": 1}).fit(X[:8], y[:8])
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


# ---- targets, schedules, options ------------------------------------------------------------


def test_multi_target(data):
    X, y = data
    Y = np.column_stack([y, -2.0 * y + 5.0])
    est = CGCNNRegressor(**TINY).fit(X, Y)
    assert est.n_targets_ == 2 and est.target_mean_.shape == (2,)
    assert est.predict(X).shape == (len(X), 2)
    column = CGCNNRegressor(**TINY).fit(X, y[:, None])
    assert column.predict(X).shape == (len(X), 1)


def test_best_epoch_is_restored(data):
    X, y = data
    est = CGCNNRegressor(**{**TINY, "epochs": 6, "lr": 0.05, "validation_fraction": 0.25}).fit(X, y)
    val = est.validation_indices_
    pred = est.predict([X[i] for i in val])
    z = (pred - est.target_mean_[0]) / est.target_scale_[0]
    z_true = (y[val] - est.target_mean_[0]) / est.target_scale_[0]
    best = est.history_.loc[est.best_epoch_ - 1, "val_loss"]
    assert np.isclose(np.mean((z - z_true) ** 2), best, rtol=1e-4)
    assert best == est.history_["val_loss"].min()


def test_early_stopping_stops(data):
    X, y = data
    est = CGCNNRegressor(**{**TINY, "epochs": 40, "patience": 1, "lr": 0.5}).fit(X, y)
    assert est.n_iter_ < 40
    assert est.n_iter_ == est.best_epoch_ + 1


def test_without_validation_keeps_last_epoch(data):
    X, y = data
    est = CGCNNRegressor(**{**TINY, "validation_fraction": 0.0}).fit(X, y)
    assert est.best_epoch_ == 3 and len(est.validation_indices_) == 0
    assert est.history_["val_loss"].isna().all()


def test_given_validation_set_selects_on_it_and_trains_on_all_of_x(data):
    """fit(X, y, X_val=, y_val=) equals holding out the same rows through validation_fraction
    (same seed, same rows), and the validation loss is measured on X_val."""
    X, y = data
    params = {**TINY, "epochs": 5, "lr": 0.05, "validation_fraction": 0.25}
    held = CGCNNRegressor(**params).fit(X, y)
    val = held.validation_indices_
    train = np.setdiff1d(np.arange(len(X)), val)
    given = CGCNNRegressor(**{**params, "validation_fraction": 0, "patience": 3}).fit(
        pd.Series([X[i] for i in train], index=train, dtype=object),
        y[train],
        X_val=[X[i] for i in val],
        y_val=pd.Series(y[val]),
    )
    assert len(given.validation_indices_) == 0
    assert given.history_["val_loss"].notna().all()
    np.testing.assert_allclose(
        given.history_["val_loss"], held.history_["val_loss"], rtol=1e-4, atol=1e-6
    )
    assert given.best_epoch_ == held.best_epoch_
    np.testing.assert_allclose(given.predict(X), held.predict(X), rtol=1e-4, atol=1e-5)


def test_given_validation_set_errors(data):
    X, y = data
    est = CGCNNRegressor(**TINY)
    with pytest.raises(ValueError, match="together"):
        est.fit(X[:10], y[:10], X_val=X[10:12])
    with pytest.raises(ValueError, match="X_val and y_val have different lengths"):
        est.fit(X[:10], y[:10], X_val=X[10:12], y_val=y[10:13])
    with pytest.raises(ValueError, match="X_val is empty"):
        est.fit(X[:10], y[:10], X_val=[], y_val=[])
    with pytest.raises(ValueError, match="NaN"):
        est.fit(X[:10], y[:10], X_val=X[10:12], y_val=[1.0, np.nan])
    with pytest.raises(ValueError, match="shape of y"):
        est.fit(X[:10], y[:10], X_val=X[10:12], y_val=np.ones((2, 2)))
    labels = np.array(["a", "b"] * 5)
    with pytest.raises(ValueError, match="absent from y"):
        CGCNNClassifier(**TINY).fit(X[:10], labels, X_val=X[10:12], y_val=["a", "c"])


@pytest.mark.parametrize(
    ("schedule", "kwargs", "expected"),
    [
        ("constant", {}, [1e-2, 1e-2, 1e-2, 1e-2]),
        ("step", {"lr_milestones": [2]}, [1e-2, 1e-2, 1e-3, 1e-3]),
        (
            "cosine",
            {},
            [
                1e-2,
                1e-2 * (1 + np.cos(np.pi / 4)) / 2,
                5e-3,
                1e-2 * (1 + np.cos(3 * np.pi / 4)) / 2,
            ],
        ),
    ],
)
def test_lr_schedules(data, schedule, kwargs, expected):
    X, y = data
    est = CGCNNRegressor(**{**TINY, "epochs": 4, "lr": 1e-2, "lr_schedule": schedule, **kwargs})
    est.fit(X[:12], y[:12])
    np.testing.assert_allclose(est.history_["lr"].to_numpy(), expected, rtol=1e-6)


def test_trainable_embeddings_change_only_when_asked(data):
    X, y = data
    frozen = CGCNNRegressor(**TINY).fit(X, y)
    tuned = CGCNNRegressor(**{**TINY, "trainable_embeddings": True, "lr": 0.05}).fit(X, y)
    from crysatom_featurizers.embeddings import load

    table = torch.as_tensor(np.nan_to_num(load("cgcnn").lookup_table()[0]))
    assert torch.equal(frozen.model_.embedding.weight, table)
    assert not torch.equal(tuned.model_.embedding.weight, table)


def test_disordered_structures(data, disordered):
    X, y = data
    est = CGCNNRegressor(**TINY).fit([*X[:10], disordered], [*y[:10], 20.0])
    assert np.isfinite(est.predict([disordered])).all()


def test_verbose_shows_progress_and_silent_by_default(data, capsys):
    X, y = data
    CGCNNRegressor(**{**TINY, "epochs": 2}).fit(X[:8], y[:8])
    assert capsys.readouterr().err == ""
    CGCNNRegressor(**{**TINY, "epochs": 2, "verbose": 1}).fit(X[:8], y[:8])
    err = capsys.readouterr().err
    assert "CGCNNRegressor" in err and "train_mae" in err and "2/2" in err


def test_isolated_sites_raise_unless_allowed(data):
    X, y = data
    lone = Structure(Lattice.cubic(20.0), ["H"], [[0, 0, 0]])  # nearest image 20 Å away
    with pytest.raises(ValueError, match=r"row 3: site 0 \(H\) has no neighbour.*allow_isolated"):
        CGCNNRegressor(**TINY).fit([*X[:3], lone, *X[3:8]], [*y[:3], 1.0, *y[3:8]])
    est = CGCNNRegressor(**{**TINY, "allow_isolated": True})
    est.fit([*X[:3], lone, *X[3:8]], [*y[:3], 1.0, *y[3:8]])
    assert np.isfinite(est.predict([lone])).all()


def test_edge_expansion_computed_once_or_per_batch_agree(data, fitted, monkeypatch):
    import crysatom_featurizers.nn.train as train

    X, _ = data
    expected = fitted.predict(X)
    monkeypatch.setattr(train, "MAX_EXPANDED_EDGE_BYTES", 0)
    np.testing.assert_allclose(fitted.predict(X), expected, rtol=1e-6, atol=1e-7)


def test_custom_embedding_object(data):
    X, y = data
    rng = np.random.default_rng(0)
    symbols = sorted({el.symbol for s in X for el in s.composition})
    emb = ElementEmbedding.from_dict({el: rng.normal(size=5) for el in symbols}, name="toy")
    est = clone(CGCNNRegressor(**{**TINY, "embedding": emb})).fit(X, y)
    assert est.embedding_name_ == "toy" and est.embedding_dim_ == 5
    assert est.predict(X[:2]).shape == (2,)


def test_embedding_and_dim_spelling(data):
    X, y = data
    a = CGCNNRegressor(**{**TINY, "embedding": "random:8"}).fit(X[:12], y[:12])
    b = CGCNNRegressor(**{**TINY, "embedding": "random", "dim": 8}).fit(X[:12], y[:12])
    assert a.embedding_dim_ == b.embedding_dim_ == 8
    np.testing.assert_array_equal(a.predict(X[:12]), b.predict(X[:12]))
    with pytest.raises(ValueError, match="contradicts"):
        CGCNNRegressor(**{**TINY, "embedding": "random:8", "dim": 4}).fit(X[:12], y[:12])


def test_grid_search_over_embedding(data):
    X, y = data
    search = GridSearchCV(
        CGCNNRegressor(**{**TINY, "epochs": 1}),
        {"embedding": ["cgcnn", "random:8"]},
        cv=2,
        error_score="raise",
    )
    search.fit(X[:16], y[:16])
    assert search.best_params_["embedding"] in ("cgcnn", "random:8")
    assert search.best_estimator_.embedding_dim_ in (92, 8)


# ---- classifier ----------------------------------------------------------------------------


def test_classifier_string_labels_and_proba(data):
    X, y = data
    labels = np.where(y > np.median(y), "large", "small")
    clf = CGCNNClassifier(**TINY).fit(X, labels)
    assert clf.classes_.tolist() == ["large", "small"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    pred = clf.predict(X)
    assert set(pred) <= {"large", "small"}
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert np.isclose(clf.score(X, labels), accuracy_score(labels, pred))
    assert list(clf.history_.columns[1:3]) == ["train_loss", "train_accuracy"]


def test_classifier_hashable_labels_class_weight_and_cv(data):
    X, y = data
    labels = [("cubic", int(v > np.median(y))) for v in y]
    clf = CGCNNClassifier(**{**TINY, "class_weight": "balanced"}).fit(X, labels)
    assert {tuple(c) for c in clf.classes_} == {("cubic", 0), ("cubic", 1)}
    assert all(isinstance(p, tuple) for p in clf.predict(X[:3]))
    three = np.array([0, 1, 2] * 12)
    scores = cross_val_score(CGCNNClassifier(**{**TINY, "epochs": 2}), X, three, cv=2)
    assert scores.shape == (2,)
    with pytest.raises(ValueError, match="not in y"):
        CGCNNClassifier(**{**TINY, "class_weight": {7: 2.0}}).fit(X, three)


def test_classifier_rejects_continuous_labels(data):
    X, y = data
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        CGCNNClassifier(**TINY).fit(X, y)  # volumes per atom, not classes
    clf = CGCNNClassifier(**{**TINY, "epochs": 1}).fit(X, (y > np.median(y)).astype(float))
    assert clf.classes_.tolist() == [0.0, 1.0]  # integral floats are classes


def test_classifier_needs_two_classes(data):
    X, _ = data
    with pytest.raises(ValueError, match="at least 2 classes"):
        CGCNNClassifier(**TINY).fit(X, ["a"] * len(X))


# ---- bad input -------------------------------------------------------------------------------


def test_length_mismatch(data):
    X, y = data
    with pytest.raises(ValueError, match=r"X has 36 structures, y has 35 rows"):
        CGCNNRegressor(**TINY).fit(X, y[:-1])
    with pytest.raises(ValueError, match="different lengths"):
        CGCNNClassifier(**TINY).fit(X, ["a", "b"])


def test_empty_x():
    with pytest.raises(ValueError, match="X is empty"):
        CGCNNRegressor(**TINY).fit([], [])


def test_empty_x_on_predict(fitted):
    with pytest.raises(ValueError, match="X is empty"):
        fitted.predict([])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_targets(data, bad):
    X, y = data
    y_bad = y.copy()
    y_bad[4] = bad
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in y at 1 row\(s\) \(first positions: \[4\]\)"
    ):
        CGCNNRegressor(**TINY).fit(X, y_bad)


def test_non_structure_item_names_index_and_type(data, fitted):
    X, y = data
    bad = [*X[:5], "NaCl", *X[6:]]
    with pytest.raises(TypeError, match=r"X\[5\] is a str"):
        CGCNNRegressor(**TINY).fit(bad, y)
    series = pd.Series([X[0], 3.5], index=["ok", "broken"])
    with pytest.raises(TypeError, match=r"X\['broken'\] is a float"):
        fitted.predict(series)
    with pytest.raises(TypeError, match="single Structure"):
        fitted.predict(X[0])
    with pytest.raises(ValueError, match="'structure' column"):
        fitted.predict(pd.DataFrame({"cif": ["x"]}))


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        CGCNNRegressor().predict([])
    with pytest.raises(NotFittedError):
        CGCNNClassifier().predict_proba([])


def test_unknown_embedding_lists_available(data):
    X, y = data
    with pytest.raises(
        ValueError,
        match=r"unknown embedding 'crysatomm'; available embeddings: .*crysatom.*cgcnn",
    ):
        CGCNNRegressor(**{**TINY, "embedding": "crysatomm"}).fit(X, y)
    with pytest.raises(TypeError, match="embedding must be"):
        CGCNNRegressor(**{**TINY, "embedding": 3}).fit(X, y)


def test_element_missing_from_embedding_names_element_and_row(data):
    X, y = data
    emb = ElementEmbedding.from_dict(
        {el: np.ones(4) * i for i, el in enumerate(["Na", "Cl"])}, name="nacl_only"
    )
    nacl = [rock_salt("Na", "Cl", 5.6 + 0.05 * i) for i in range(6)]
    X_bad = [*nacl[:3], rock_salt("K", "Cl", 6.3), *nacl[3:]]
    with pytest.raises(ValueError, match=r"row 3 contains K, which the 'nacl_only' embedding"):
        CGCNNRegressor(**{**TINY, "embedding": emb}).fit(X_bad, np.arange(7.0))
    est = CGCNNRegressor(**{**TINY, "embedding": emb}).fit(nacl, np.arange(6.0))
    with pytest.raises(ValueError, match=r"row 'kcl' contains K"):
        est.predict(pd.Series([nacl[0], X_bad[3]], index=["nacl", "kcl"]))


def test_invalid_parameters(data):
    X, y = data
    with pytest.raises(ValueError, match="patience"):
        CGCNNRegressor(**{**TINY, "patience": 2, "validation_fraction": 0}).fit(X, y)
    with pytest.raises(ValueError, match="lr_schedule"):
        CGCNNRegressor(**{**TINY, "lr_schedule": "linear"}).fit(X, y)
    with pytest.raises(ValueError, match="pooling"):
        CGCNNRegressor(**{**TINY, "pooling": "median"}).fit(X, y)
    with pytest.raises(ValueError, match="device"):
        CGCNNRegressor(**{**TINY, "device": "tpu"}).fit(X, y)
    with pytest.raises(ValueError, match="at least 2 training structures"):
        CGCNNRegressor(**TINY).fit(X[:2], y[:2])


# ---- a real learning check -------------------------------------------------------------------

# Formal ionic charges of the ions used below.
_CHARGES = {"Li": 1, "Na": 1, "K": 1, "Rb": 1, "Cs": 1, "Mg": 2, "Ca": 2, "Sr": 2, "Ba": 2,
            "Sc": 3, "Y": 3, "La": 3, "F": -1, "Cl": -1, "Br": -1, "I": -1, "O": -2, "S": -2,
            "Se": -2, "N": -3, "P": -3}  # fmt: skip
_COULOMB = 14.399645  # e^2 / (4 pi eps0), eV Å
_MADELUNG = {"rocksalt": 1.747565, "cesium_chloride": 1.762675}


def _madelung_set(n: int, seed: int) -> tuple[list[Structure], np.ndarray]:
    """AB crystals (rock salt or CsCl) and their point-charge Madelung energy, eV/atom.

    E = -M k |q_A q_B| / r0 per ion pair, with r0 the cation-anion distance (Å), halved per
    atom. It depends on the chemistry (charges) and on the structure (M and r0).
    """
    rng = np.random.default_rng(seed)
    cations = [e for e, q in _CHARGES.items() if q > 0]
    anions = [e for e, q in _CHARGES.items() if q < 0]
    structures, energies = [], []
    for _ in range(n):
        a, b = rng.choice(cations), rng.choice(anions)
        r0 = rng.uniform(2.0, 3.6)
        if rng.random() < 0.5:
            kind, s = "rocksalt", rock_salt(a, b, 2 * r0)
        else:
            kind = "cesium_chloride"
            s = Structure(Lattice.cubic(2 * r0 / np.sqrt(3)), [a, b], [[0, 0, 0], [0.5] * 3])
        structures.append(s)
        q = abs(_CHARGES[a] * _CHARGES[b])
        energies.append(-_MADELUNG[kind] * _COULOMB * q / r0 / 2)
    return structures, np.asarray(energies)


def test_learns_madelung_energy():
    X_train, y_train = _madelung_set(320, seed=1)
    X_test, y_test = _madelung_set(80, seed=2)
    est = CGCNNRegressor(
        embedding="cgcnn",
        atom_fea_len=16,
        n_conv=2,
        h_fea_len=32,
        epochs=40,
        batch_size=32,
        lr=3e-3,
        random_state=0,
        n_threads=1,
    ).fit(X_train, y_train)
    r2 = est.score(X_test, y_test)
    mae = np.abs(est.predict(X_test) - y_test).mean()
    baseline = np.abs(y_test - y_train.mean()).mean()
    assert r2 > 0.9, (r2, mae, baseline)
    assert mae < 0.25 * baseline


@pytest.mark.slow
@pytest.mark.shared_data
def test_learns_jarvis_formation_energy(jarvis_path):
    import gzip
    import json

    with gzip.open(jarvis_path, "rt") as fh:
        table = json.load(fh)
    columns = table["columns"]
    col_s, col_y = columns.index("structure"), columns.index("formation_energy_peratom")
    rows = np.random.default_rng(123).choice(len(table["data"]), size=600, replace=False)
    structures = [Structure.from_dict(table["data"][i][col_s]) for i in rows]
    y = np.array([table["data"][i][col_y] for i in rows], dtype=float)
    del table
    est = CGCNNRegressor(
        embedding="cgcnn",
        atom_fea_len=32,
        n_conv=2,
        h_fea_len=64,
        epochs=30,
        batch_size=32,
        lr=3e-3,
        lr_schedule="cosine",
        random_state=0,
        n_threads=1,
    ).fit(structures[:500], y[:500])
    pred = est.predict(structures[500:])
    mae = np.abs(pred - y[500:]).mean()
    baseline = np.abs(y[500:] - y[:500].mean()).mean()
    assert r2_score(y[500:], pred) > 0.5, (mae, baseline)
    assert mae < 0.6 * baseline


def test_parameters_after_embedding_are_keyword_only():
    with pytest.raises(TypeError):
        CGCNNRegressor("cgcnn", True)  # once trainable_embeddings, now refused
    assert CGCNNRegressor("cgcnn", dim=None).get_params()["embedding"] == "cgcnn"


def test_targets_of_any_magnitude_keep_their_scale(data):
    X, y = data
    # a volume per atom in m^3 (about 1e-29): once treated as constant, predicted ~1e28 x off
    cubic_metres = y * 1e-30
    tiny = CGCNNRegressor(**{**TINY, "validation_fraction": 0}).fit(X, cubic_metres)
    np.testing.assert_allclose(tiny.target_scale_, [cubic_metres.std()], rtol=1e-12)
    pred = tiny.predict(X)
    assert np.abs(pred - cubic_metres).max() < 0.5 * cubic_metres.max()
    # the same fit in Å^3 gives the same predictions, scaled
    big = CGCNNRegressor(**{**TINY, "validation_fraction": 0}).fit(X, y)
    np.testing.assert_allclose(pred * 1e30, big.predict(X), rtol=1e-5)
    # still constant: a column whose spread is nothing next to its size
    flat = CGCNNRegressor(**{**TINY, "epochs": 1}).fit(X, np.full(len(X), 3.0))
    assert flat.target_scale_[0] == 1.0
    with pytest.raises(ValueError, match="too large to standardise .* rescale them"):
        CGCNNRegressor(**TINY).fit(X, y * 1e300)


def test_the_alignn_papers_recipe_adamw_onecycle_and_warm_up(data, monkeypatch):
    import torch

    X, y = data
    seen: list[tuple[str, float]] = []
    for cls in (torch.optim.AdamW, torch.optim.Adam):  # AdamW may inherit Adam.step
        original = cls.step

        def step(self, *args, _original=original, **kwargs):
            seen.append((type(self).__name__, float(self.param_groups[0]["lr"])))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "step", step)
    base = {**TINY, "epochs": 4, "batch_size": 8, "lr": 1e-2, "validation_fraction": 0}
    # 12 crystals in batches of 8: 2 steps per epoch, 8 in all
    CGCNNRegressor(**base, optimizer="adamw", lr_schedule="onecycle").fit(X[:12], y[:12])
    names, rates = zip(*seen)
    assert set(names) == {"AdamW"} and len(rates) == 8
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-2)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        reference, max_lr=1e-2, total_steps=8, pct_start=0.3
    )
    expected = []
    for _ in range(8):
        expected.append(scheduler.get_last_lr()[0])
        reference.step()
        scheduler.step()
    np.testing.assert_allclose(rates, expected, rtol=1e-9)  # stepped per batch
    seen.clear()
    CGCNNRegressor(**base, warmup_epochs=2).fit(X[:12], y[:12])
    rates = [rate for _, rate in seen]
    np.testing.assert_allclose(rates, [2.5e-3, 5e-3, 7.5e-3, 1e-2, 1e-2, 1e-2, 1e-2, 1e-2])
    with pytest.raises(ValueError, match="has its own warm-up"):
        CGCNNRegressor(**base, warmup_epochs=1, lr_schedule="onecycle").fit(X[:12], y[:12])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        CGCNNRegressor(**base, optimizer="sgd").fit(X[:12], y[:12])


@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1.0, 1e6, 1e150])
def test_fits_at_any_magnitude_match_a_fit_on_rescaled_targets(data, scale):
    X, y = data
    params = {**TINY, "validation_fraction": 0, "epochs": 2}
    reference = CGCNNRegressor(**params).fit(X[:12], y[:12]).predict(X[:12])
    scaled = CGCNNRegressor(**params).fit(X[:12], y[:12] * scale).predict(X[:12])
    np.testing.assert_allclose(scaled / scale, reference, rtol=1e-5)
