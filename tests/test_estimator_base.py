"""Tests of the graph-estimator seams: a network plugged into the shared base, the task
mixins, graph settings in the models, and the student interface of distillation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import RegressorMixin, clone
from sklearn.model_selection import GridSearchCV

from crysatom_featurizers.estimators import CGCNNClassifier, CGCNNRegressor
from crysatom_featurizers.estimators._base import _GraphEstimator
from crysatom_featurizers.estimators._tasks import _ClassificationTask, _RegressionTask
from crysatom_featurizers.graphs import CGCNN_GRAPH, GraphSettings
from crysatom_featurizers.nn import CGCNN, ElementEmbeddingLayer
from crysatom_featurizers.nn.transfer import DistilledModel
from tests.prototypes import prototype_dataset


class _MeanElementNet(torch.nn.Module):
    """Mean of the element vectors of a crystal, then a linear map: no graph layers."""

    def __init__(self, embedding, n_outputs: int) -> None:
        super().__init__()
        self.embedding = ElementEmbeddingLayer(embedding)
        self.out = torch.nn.Linear(self.embedding.dim, n_outputs)

    def forward(self, batch):
        x = self.embedding(batch)
        sums = torch.zeros(batch.num_graphs, x.shape[1]).index_add_(0, batch.batch, x)
        counts = torch.bincount(batch.batch, minlength=batch.num_graphs).clamp_min(1)
        return self.out(sums / counts[:, None])


class MeanElementRegressor(RegressorMixin, _RegressionTask, _GraphEstimator):
    """The base with another network: the estimator is an ``__init__`` and two hooks."""

    def __init__(
        self,
        embedding="cgcnn",
        *,
        dim=None,
        radius=8.0,
        max_neighbors=12,
        allow_isolated=False,
        finetune=None,
        freeze_encoder_epochs=0,
        encoder_lr=None,
        distill=None,
        distill_delta=0.5,
        distill_layer=-1,
        epochs=20,
        batch_size=16,
        lr=1e-2,
        weight_decay=0.0,
        lr_schedule="constant",
        lr_milestones=None,
        validation_fraction=0.1,
        patience=None,
        standardize_target=True,
        device="cpu",
        random_state=None,
        num_workers=0,
        n_threads=1,
        verbose=0,
    ) -> None:
        self._store_params(locals())

    def _check_model_params(self) -> None:
        if self.finetune is not None or self.distill is not None:
            raise ValueError("this network has no graph layers to transfer")

    def _build_model(self, embedding, n_outputs, transfer):
        return _MeanElementNet(embedding, n_outputs)


@pytest.fixture(scope="module")
def data():
    return prototype_dataset()


def test_another_network_on_the_base_is_a_scikit_learn_regressor(data):
    X, y = data
    est = MeanElementRegressor(random_state=0)
    fitted = est.fit(X, y)
    assert isinstance(fitted.model_, _MeanElementNet)
    assert fitted.predict(X).shape == (len(X),)
    assert fitted.n_iter_ == 20 and list(fitted.history_.columns[:3]) == [
        "epoch",
        "train_loss",
        "train_mae",
    ]
    again = clone(est).fit(X, y)
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))  # random_state
    search = GridSearchCV(MeanElementRegressor(random_state=0), {"lr": [1e-2, 1e-1]}, cv=2)
    assert search.fit(X, y).best_params_["lr"] in (1e-2, 1e-1)
    # the base's checks and the model's own both apply
    with pytest.raises(ValueError, match="epochs must be an integer"):
        MeanElementRegressor(epochs=0).fit(X, y)
    with pytest.raises(ValueError, match="no graph layers to transfer"):
        MeanElementRegressor(finetune="crysatom").fit(X, y)


def test_concrete_estimators_are_a_task_and_a_model():
    assert issubclass(CGCNNRegressor, _RegressionTask) and issubclass(
        CGCNNClassifier, _ClassificationTask
    )
    for cls in (CGCNNRegressor, CGCNNClassifier):
        assert issubclass(cls, _GraphEstimator)
        assert "_build_model" not in vars(cls) and "_check_y" not in vars(cls)
    assert CGCNNRegressor(radius=6.0).graph_settings() == CGCNN_GRAPH.replace(radius=6.0)


def test_models_take_graph_settings_and_refuse_the_old_keywords():
    graph = CGCNN_GRAPH.replace(radius=6.0)
    model = CGCNN("cgcnn", atom_fea_len=4, n_conv=1, graph=graph)
    assert model.graph == graph
    assert model.distance_expansion.num_gaussians == graph.num_gaussians == 31
    with pytest.raises(TypeError, match="gaussian_stop"):
        CGCNN("cgcnn", atom_fea_len=4, n_conv=1, gaussian_stop=6.0)  # removed before 1.0
    with pytest.raises(TypeError, match="must be a GraphSettings"):
        CGCNN("cgcnn", graph={"radius": 6.0})
    assert (model.node_dim, model.num_node_layers) == (4, 2)
    with pytest.raises(ValueError, match="layer must be in"):
        DistilledModel(model, teacher_dim=3, layer=2)
    assert GraphSettings.from_dict(graph.as_dict()) == graph


# --------------------------------------------------------------------------------------------
# Bad input on the shared base
# --------------------------------------------------------------------------------------------

SMALL = dict(
    embedding="cgcnn", atom_fea_len=4, n_conv=1, h_fea_len=8, epochs=2, batch_size=8,
    random_state=0, validation_fraction=None,
)  # fmt: skip


def _unknown_element():
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(4.0), ["Og", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_a_failed_refit_keeps_the_previous_fit(data):
    X, y = data
    reg = MeanElementRegressor(random_state=0, epochs=3).fit(X, y)
    before, mean = reg.predict(X), reg.target_mean_.copy()
    with pytest.raises(ValueError, match="Og"):
        reg.fit([*X[:5], _unknown_element()], np.arange(6.0) * 1e6)
    np.testing.assert_array_equal(reg.predict(X), before)
    np.testing.assert_array_equal(reg.target_mean_, mean)
    with pytest.raises(ValueError, match="different lengths"):
        reg.fit(X, np.stack([y, y], axis=1)[:5])  # a 2-D refit that fails keeps 1-D output
    assert reg.predict(X).shape == (len(X),)

    labels = ["a", "b"] * 6
    clf = CGCNNClassifier(**SMALL).fit(X[:12], labels)
    predicted = clf.predict(X[:12])
    with pytest.raises(ValueError, match="Og"):
        clf.fit([*X[:3], _unknown_element()], ["x", "y", "z", "x"])
    assert list(clf.classes_) == ["a", "b"]
    np.testing.assert_array_equal(clf.predict(X[:12]), predicted)
    fresh = MeanElementRegressor(random_state=0)
    with pytest.raises(ValueError, match="Og"):
        fresh.fit([*X[:5], _unknown_element()], np.arange(6.0))
    assert not hasattr(fresh, "target_mean_") and not hasattr(fresh, "model_")


@pytest.mark.parametrize("name", ["allow_isolated", "standardize_target"])
def test_boolean_parameters_refuse_strings(data, name):
    X, y = data
    with pytest.raises(ValueError, match=f"{name} must be True or False, got 'False'"):
        MeanElementRegressor(**{name: "False"}).fit(X, y)


@pytest.mark.parametrize(
    ("milestones", "schedule", "match"),
    [
        (["a"], "step", "lr_milestones must be a list of epochs"),
        ([2.5], "step", "lr_milestones must be a list of epochs"),
        ([-1], "step", "lr_milestones must be a list of epochs"),
        (3, "step", "lr_milestones must be a list of epochs"),
        ([], "step", "lr_milestones must be a list of epochs"),
        ([0], "constant", "lr_milestones must be a list of epochs"),
    ],
)
def test_bad_lr_milestones_are_refused(data, milestones, schedule, match):
    X, y = data
    with pytest.raises(ValueError, match=match):
        MeanElementRegressor(lr_schedule=schedule, lr_milestones=milestones).fit(X, y)


def test_step_milestones_apply(data):
    X, y = data
    reg = MeanElementRegressor(epochs=4, lr_schedule="step", lr_milestones=(2,)).fit(X, y)
    assert reg.history_["lr"].tolist() == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])


@pytest.mark.parametrize(
    ("name", "value"), [("n_threads", 0), ("n_threads", -2), ("num_workers", 1.5)]
)
def test_thread_and_worker_counts_are_checked(data, name, value):
    X, y = data
    with pytest.raises(ValueError, match=f"{name} must be an integer"):
        MeanElementRegressor(**{name: value}).fit(X, y)


@pytest.mark.parametrize("radius", [float("inf"), "8", True])
def test_radius_must_be_a_finite_number(data, radius):
    X, y = data
    with pytest.raises(ValueError, match="radius must be a positive finite number"):
        MeanElementRegressor(radius=radius).fit(X, y)


def test_predict_before_fit_is_not_fitted_error(data):
    from sklearn.exceptions import NotFittedError

    X, _ = data
    with pytest.raises(NotFittedError):
        CGCNNClassifier().predict(X[:2])


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"a": -2.0}, r"class_weight\['a'\] must be a finite number >= 0"),
        ({"a": float("nan")}, r"class_weight\['a'\] must be a finite number >= 0"),
        ({"a": "2"}, r"class_weight\['a'\] must be a finite number >= 0"),
        ([1.0, 2.0], "class_weight must be a dict"),
    ],
)
def test_bad_class_weights_are_refused(data, weights, match):
    X, _ = data
    with pytest.raises(ValueError, match=match):
        CGCNNClassifier(**SMALL, class_weight=weights).fit(X[:8], ["a", "b"] * 4)


def test_labels_of_mixed_types_are_refused(data):
    X, _ = data
    with pytest.raises(ValueError, match="y mixes string and number labels"):
        CGCNNClassifier(**SMALL).fit(X[:4], [1, "a", 1, "a"])
    with pytest.raises(ValueError, match="y has number labels and y_val has string labels"):
        CGCNNClassifier(**SMALL).fit(X[:4], [0, 1, 0, 1], X_val=X[4:6], y_val=["0", "1"])
    # composite labels (tuples) of strings and numbers are one label each
    clf = CGCNNClassifier(**SMALL).fit(X[:4], [("a", 1), ("b", 2)] * 2)
    assert len(clf.classes_) == 2


def test_bad_targets_of_y_val_are_reported_as_y_val(data):
    X, y = data
    with pytest.raises(ValueError, match=r"in y_val at 1 row\(s\) \(first positions: \[1\]\)"):
        MeanElementRegressor().fit(X[:6], y[:6], X_val=X[6:8], y_val=[1.0, np.nan])
    with pytest.raises(ValueError, match=r"labels in y_val at 1 row\(s\) \(first positions: \[0\]"):
        CGCNNClassifier(**SMALL).fit(X[:4], ["a", "b"] * 2, X_val=X[4:6], y_val=[None, "a"])


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"max_neighbors": 4}, "max_neighbors=4"),
        ({"radius": 6.0}, "radius=6.0"),
        ({"symmetric": True}, "symmetric=True"),
    ],
)
def test_graphs_built_with_other_settings_are_refused(data, change, match):
    from crysatom_featurizers.graphs import CrystalGraphTransformer

    X, y = data
    reg = MeanElementRegressor(random_state=0, epochs=1).fit(X, y)
    graphs = CrystalGraphTransformer(**change).fit_transform(X[:3])
    with pytest.raises(ValueError, match=f"it was built with {match}"):
        reg.predict(graphs)
    with pytest.raises(ValueError, match=f"it was built with {match}"):
        MeanElementRegressor(epochs=1).fit(graphs, y[:3])
    same = CrystalGraphTransformer().fit_transform(X[:3])
    np.testing.assert_allclose(reg.predict(same), reg.predict(X[:3]), rtol=1e-6)
