"""CGCNN and ALIGNN crystal classifiers as scikit-learn estimators."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.base import ClassifierMixin

from crysatom_featurizers.estimators._alignn import _ALIGNNBase
from crysatom_featurizers.estimators._cgcnn import _CGCNNBase
from crysatom_featurizers.estimators._registry import register_estimator
from crysatom_featurizers.estimators._tasks import _ClassificationTask
from crysatom_featurizers.graphs import ALIGNN_GRAPH, CGCNN_GRAPH

__all__ = ["ALIGNNClassifier", "CGCNNClassifier"]


@register_estimator("cgcnn")
class CGCNNClassifier(ClassifierMixin, _ClassificationTask, _CGCNNBase):
    """CGCNN crystal classifier on element-embedding node features, as a scikit-learn estimator.

    The same network as :class:`CGCNNRegressor` with one logit per class and a cross-entropy
    loss. Class labels may be of any hashable type (strings, integers, booleans, ...).

    Parameters
    ----------
    embedding, dim, trainable_embeddings, site_features, atom_fea_len, n_conv, h_fea_len, n_h, \
pooling, \
finetune, freeze_encoder_epochs, encoder_lr, distill, distill_delta, distill_layer, radius, \
max_neighbors, allow_isolated, epochs, batch_size, lr, weight_decay, optimizer, lr_schedule, \
warmup_epochs, lr_milestones, \
validation_fraction, patience, device, random_state, num_workers, n_threads, verbose, \
checkpoint
        As in :class:`CGCNNRegressor`. The validation split is stratified when every class has
        at least two members.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss: a mapping from label to weight, ``"balanced"``
        (inversely proportional to the class frequencies of the training part), or None.

    Attributes
    ----------
    classes_ : numpy.ndarray
        Class labels, in the order of the columns of :meth:`predict_proba`.
    model_ : crysatom_featurizers.nn.CGCNN
        The trained torch module (on the CPU, in eval mode).
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss`` (cross-entropy), ``train_accuracy``,
        ``val_loss``, ``val_accuracy``, ``lr`` and ``time_s``.
    best_epoch_, n_iter_, validation_indices_, embedding_name_, embedding_dim_, transfer_, \
timings_
        As in :class:`CGCNNRegressor`.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from crysatom_featurizers.estimators import CGCNNClassifier
    >>> X = [Structure(Lattice.cubic(a), [m, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a, m in [(2.6, "Mg"), (2.9, "Ca"), (2.6, "Ni"), (3.1, "Sr")]]
    >>> clf = CGCNNClassifier(embedding="cgcnn", epochs=2, validation_fraction=0,
    ...                       random_state=0).fit(X, ["small", "large", "small", "large"])
    >>> clf.predict_proba(X).shape
    (4, 2)
    """

    def __init__(
        self,
        embedding: Any = None,
        *,
        dim: int | None = None,
        trainable_embeddings: bool = False,
        site_features: str | None = None,
        atom_fea_len: int | None = None,
        n_conv: int | None = None,
        h_fea_len: int = 128,
        n_h: int = 1,
        pooling: str = "mean",
        finetune: str | os.PathLike | None = None,
        freeze_encoder_epochs: int | str = 0,
        encoder_lr: float | None = None,
        distill: str | os.PathLike | None = None,
        distill_delta: float = 0.5,
        distill_layer: int = -1,
        radius: float = CGCNN_GRAPH.radius,
        max_neighbors: int = CGCNN_GRAPH.max_neighbors,
        allow_isolated: bool = False,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "constant",
        warmup_epochs: int = 0,
        lr_milestones: Sequence[int] | None = None,
        validation_fraction: float | None = 0.1,
        patience: int | None = None,
        class_weight: Mapping[Any, float] | str | None = None,
        device: str = "auto",
        random_state: Any = None,
        num_workers: int = 0,
        n_threads: int | None = None,
        verbose: int = 0,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self._store_params(locals())


@register_estimator("alignn")
class ALIGNNClassifier(ClassifierMixin, _ClassificationTask, _ALIGNNBase):
    """ALIGNN crystal classifier on element-embedding node features, as a scikit-learn
    estimator.

    The same network as :class:`ALIGNNRegressor` with one logit per class and a cross-entropy
    loss. Class labels may be of any hashable type.

    Parameters
    ----------
    embedding, dim, trainable_embeddings, site_features, preset, hidden_features, alignn_layers, \
gcn_layers, \
embedding_features, distill, distill_delta, distill_layer, radius, max_neighbors, \
allow_isolated, epochs, batch_size, lr, weight_decay, optimizer, lr_schedule, warmup_epochs, \
lr_milestones, \
validation_fraction, patience, device, random_state, num_workers, n_threads, verbose, checkpoint
        As in :class:`ALIGNNRegressor`. The validation split is stratified when every class
        has at least two members.
    class_weight : dict, "balanced" or None, default=None
        As in :class:`CGCNNClassifier`.

    Attributes
    ----------
    classes_, history_, best_epoch_, n_iter_, validation_indices_, embedding_name_, \
embedding_dim_, transfer_, timings_
        As in :class:`CGCNNClassifier`.
    model_ : crysatom_featurizers.nn.ALIGNN
        The trained torch module (on the CPU, in eval mode).

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from crysatom_featurizers.estimators import ALIGNNClassifier
    >>> X = [Structure(Lattice.cubic(a), [m, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a, m in [(2.6, "Mg"), (2.9, "Ca"), (2.6, "Ni"), (3.1, "Sr")]]
    >>> clf = ALIGNNClassifier(embedding="cgcnn", epochs=2, validation_fraction=0,
    ...                        random_state=0).fit(X, ["small", "large", "small", "large"])
    >>> clf.predict_proba(X).shape
    (4, 2)
    """

    def __init__(
        self,
        embedding: Any = None,
        *,
        dim: int | None = None,
        trainable_embeddings: bool = False,
        site_features: str | None = None,
        preset: str = "cpu",
        hidden_features: int | None = None,
        alignn_layers: int | None = None,
        gcn_layers: int | None = None,
        embedding_features: int = 64,
        distill: str | os.PathLike | None = None,
        distill_delta: float = 0.5,
        distill_layer: int = -1,
        radius: float = ALIGNN_GRAPH.radius,
        max_neighbors: int = ALIGNN_GRAPH.max_neighbors,
        allow_isolated: bool = False,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "constant",
        warmup_epochs: int = 0,
        lr_milestones: Sequence[int] | None = None,
        validation_fraction: float | None = 0.1,
        patience: int | None = None,
        class_weight: Mapping[Any, float] | str | None = None,
        device: str = "auto",
        random_state: Any = None,
        num_workers: int = 0,
        n_threads: int | None = None,
        verbose: int = 0,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self._store_params(locals())
