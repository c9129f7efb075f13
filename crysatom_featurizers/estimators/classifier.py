"""CGCNN crystal classifier as a scikit-learn estimator."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets

from crysatom_featurizers.estimators._base import _CGCNNBase
from crysatom_featurizers.graphs import CGCNN_GRAPH

__all__ = ["CGCNNClassifier"]


class CGCNNClassifier(ClassifierMixin, _CGCNNBase):
    """CGCNN crystal classifier on element-embedding node features, as a scikit-learn estimator.

    The same network as :class:`CGCNNRegressor` with one logit per class and a cross-entropy
    loss. Class labels may be of any hashable type (strings, integers, booleans, ...).

    Parameters
    ----------
    embedding, dim, trainable_embeddings, atom_fea_len, n_conv, h_fea_len, n_h, pooling, \
finetune, freeze_encoder_epochs, encoder_lr, distill, distill_delta, distill_layer, radius, \
max_neighbors, allow_isolated, epochs, batch_size, lr, weight_decay, lr_schedule, lr_milestones, \
validation_fraction, patience, device, random_state, num_workers, n_threads, verbose, \
atom_features
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

    _task = "classification"
    _metric_name = "accuracy"

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
        self.atom_features = atom_features

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        arr = y.to_numpy() if isinstance(y, (pd.Series, pd.Index)) else np.asarray(y)
        if arr.ndim != 1 and not isinstance(y, np.ndarray) and len(y) == n:
            # a list of hashable composite labels, e.g. tuples, that numpy made into a 2-D array
            arr = np.empty(len(y), dtype=object)
            for i, label in enumerate(y):
                arr[i] = label
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(
                f"y must be 1-D class labels for CGCNNClassifier, got shape {arr.shape}"
            )
        if arr.shape[0] != n:
            raise ValueError(
                f"X and y have different lengths: X has {n} structures, y has {arr.shape[0]} rows"
            )
        missing = (
            pd.isna(arr) if arr.dtype == object or arr.dtype.kind == "f" else np.zeros(n, bool)
        )
        if arr.dtype.kind == "f":
            missing |= ~np.isfinite(arr)
        if np.any(missing):
            rows = np.flatnonzero(missing)
            raise ValueError(
                f"y contains missing (NaN/None) or infinite labels at {rows.size} row(s) (first "
                f"positions: {rows[:5].tolist()})"
            )
        if arr.dtype.kind in "biufc":
            # numeric labels must be classes: continuous values raise, as in scikit-learn
            check_classification_targets(arr)
        encoder = LabelEncoder()
        try:
            codes = encoder.fit_transform(arr)
        except TypeError:  # labels of mixed, unorderable types: order of first appearance
            uniques = list(dict.fromkeys(arr.tolist()))
            lookup = {label: i for i, label in enumerate(uniques)}
            codes = np.array([lookup[label] for label in arr.tolist()])
            classes = np.empty(len(uniques), dtype=object)
            classes[:] = uniques
            encoder.classes_ = classes
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"CGCNNClassifier needs at least 2 classes in y, got {len(encoder.classes_)}: "
                f"{list(encoder.classes_)}"
            )
        self.classes_ = encoder.classes_
        self._label_lookup = {label: i for i, label in enumerate(self.classes_.tolist())}
        return codes.astype(np.int64)

    def _fit_target_transform(self, y_train: np.ndarray) -> np.ndarray:
        return y_train

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        return y.astype(np.int64)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _criterion(self, y_train: np.ndarray, device: Any) -> Any:
        import torch

        weight = None
        if self.class_weight is not None:
            k = len(self.classes_)
            if isinstance(self.class_weight, str):
                if self.class_weight != "balanced":
                    raise ValueError(
                        "class_weight must be a dict, 'balanced' or None, got "
                        f"{self.class_weight!r}"
                    )
                counts = np.bincount(y_train, minlength=k).astype(np.float64)
                w = np.where(counts > 0, len(y_train) / (k * np.maximum(counts, 1)), 0.0)
            else:
                w = np.ones(k)
                for label, value in dict(self.class_weight).items():
                    if label not in self._label_lookup:
                        raise ValueError(
                            f"class_weight names label {label!r}, which is not in y (classes: "
                            f"{list(self.classes_)})"
                        )
                    w[self._label_lookup[label]] = float(value)
            weight = torch.as_tensor(w, dtype=torch.float32, device=device)
        return torch.nn.CrossEntropyLoss(weight=weight)

    def _metric_sum(self, out: Any, target: Any) -> Any:
        """Number of correctly classified crystals."""
        return (out.argmax(dim=1) == target).sum().to(out.dtype)

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> CGCNNClassifier:
        """Build the crystal graphs and train the network.

        Parameters
        ----------
        X : sequence of Structure, pandas.Series, pandas.DataFrame or list of graphs
            As in :meth:`CGCNNRegressor.fit`.
        y : array-like of shape (n,)
            Class labels of any hashable type.
        X_val, y_val : optional
            A given validation set, as in :meth:`CGCNNRegressor.fit`; its labels must all
            occur in ``y``.

        Returns
        -------
        self
        """
        return self._fit(X, y, X_val, y_val)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``, columns ordered as ``classes_``."""
        logits = self._predict_outputs(X)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label of each structure of ``X``."""
        return self.classes_[np.argmax(self._predict_outputs(X), axis=1)]
