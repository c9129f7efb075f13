"""CGCNN crystal classifier as a scikit-learn estimator."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.base import ClassifierMixin

from crysatom_featurizers.estimators._cgcnn import _CGCNNBase
from crysatom_featurizers.estimators._tasks import _ClassificationTask
from crysatom_featurizers.graphs import CGCNN_GRAPH

__all__ = ["CGCNNClassifier"]


class CGCNNClassifier(ClassifierMixin, _ClassificationTask, _CGCNNBase):
    """CGCNN crystal classifier on element-embedding node features, as a scikit-learn estimator.

    The same network as :class:`CGCNNRegressor` with one logit per class and a cross-entropy
    loss. Class labels may be of any hashable type (strings, integers, booleans, ...).

    Parameters
    ----------
    embedding, dim, trainable_embeddings, atom_fea_len, n_conv, h_fea_len, n_h, pooling, \
finetune, freeze_encoder_epochs, encoder_lr, distill, distill_delta, distill_layer, radius, \
max_neighbors, allow_isolated, epochs, batch_size, lr, weight_decay, lr_schedule, lr_milestones, \
validation_fraction, patience, device, random_state, num_workers, n_threads, verbose, \
checkpoint, atom_features
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
        lr_schedule: str = "constant",
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
        atom_features: Any = None,
    ) -> None:
        self.embedding = embedding
        self.dim = dim
        self.trainable_embeddings = trainable_embeddings
        self.atom_fea_len = atom_fea_len
        self.n_conv = n_conv
        self.h_fea_len = h_fea_len
        self.n_h = n_h
        self.pooling = pooling
        self.finetune = finetune
        self.freeze_encoder_epochs = freeze_encoder_epochs
        self.encoder_lr = encoder_lr
        self.distill = distill
        self.distill_delta = distill_delta
        self.distill_layer = distill_layer
        self.radius = radius
        self.max_neighbors = max_neighbors
        self.allow_isolated = allow_isolated
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.lr_milestones = lr_milestones
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.num_workers = num_workers
        self.n_threads = n_threads
        self.verbose = verbose
        self.checkpoint = checkpoint
        self.atom_features = atom_features
