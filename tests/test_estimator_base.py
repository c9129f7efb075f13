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
from crysatom_featurizers.nn.transfer import DistilledCGCNN, DistilledModel
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
    assert CGCNNRegressor(radius=6.0)._graph_settings() == CGCNN_GRAPH.replace(radius=6.0)


def test_models_take_graph_settings_and_warn_on_the_old_keywords():
    graph = CGCNN_GRAPH.replace(radius=6.0)
    model = CGCNN("cgcnn", atom_fea_len=4, n_conv=1, graph=graph)
    assert model.graph == graph
    assert model.distance_expansion.num_gaussians == graph.num_gaussians == 31
    with pytest.warns(FutureWarning, match="gaussian_stop"):
        old = CGCNN("cgcnn", atom_fea_len=4, n_conv=1, gaussian_stop=6.0)
    torch.testing.assert_close(old.distance_expansion.centers, model.distance_expansion.centers)
    with pytest.raises(TypeError, match="must be a GraphSettings"):
        CGCNN("cgcnn", graph={"radius": 6.0})
    assert (model.node_dim, model.num_node_layers) == (4, 2)
    assert DistilledCGCNN is DistilledModel
    with pytest.raises(ValueError, match="layer must be in"):
        DistilledModel(model, teacher_dim=3, layer=2)
    assert GraphSettings.from_dict(graph.as_dict()) == graph
