"""Regression and classification as mixins of the graph estimators: target checks and
encodings, loss, metric, ``fit`` and ``predict`` (not public API). A concrete estimator
combines one of them with a model base, e.g. ``class CGCNNRegressor(RegressorMixin,
_RegressionTask, _CGCNNBase)``."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from crysatom_featurizers._checks import check_real


def _rows_text(rows: np.ndarray, n: int, n_val: int) -> str:
    """Where the bad ``rows`` of ``y + y_val`` (``n`` rows, the last ``n_val`` from ``y_val``)
    are, by argument and position."""
    n_fit = n - n_val
    parts = []
    for name, found in (("y", rows[rows < n_fit]), ("y_val", rows[rows >= n_fit] - n_fit)):
        if found.size:
            parts.append(f"{name} at {found.size} row(s) (first positions: {found[:5].tolist()})")
    return " and ".join(parts)


def _label_kinds(y: Any) -> set[str]:
    """``{"string"}``, ``{"number"}``, both, or empty (other labels, e.g. tuples) for the
    labels of ``y``, read before numpy turns a mixed list into strings."""
    values = y.to_numpy() if isinstance(y, (pd.Series, pd.Index, pd.DataFrame)) else y
    if isinstance(values, np.ndarray) and values.dtype != object:
        kind = values.dtype.kind
        return {"string"} if kind in "US" else {"number"} if kind in "biuf" else set()
    if values is None or isinstance(values, (str, bytes)):
        return set()
    items = values.ravel() if isinstance(values, np.ndarray) else values
    try:
        iterator = iter(items)
    except TypeError:  # not a sequence: _check_y says so
        return set()
    kinds = set()
    for value in iterator:  # a tuple is one (composite) label, not several
        if isinstance(value, (str, bytes)):
            kinds.add("string")
        elif isinstance(value, numbers.Number) and not (
            isinstance(value, numbers.Real) and math.isnan(value)
        ):
            kinds.add("number")
    return kinds


class _RegressionTask:
    """Float targets (one or several columns), standardised for training; MSE loss, MAE
    metric."""

    _task = "regression"
    _metric_name = "mae"

    def _check_fitted_state(self) -> None:
        """Raise ``ValueError`` if the fitted target scaling is not one of a fit (a model file's
        content is checked with this before it is used)."""
        n = self.n_targets_
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n_targets_ must be a positive integer, got {n!r}")
        for name in ("target_mean_", "target_scale_"):
            value = np.asarray(getattr(self, name))
            if value.shape != (n,) or not np.isfinite(value).all():
                raise ValueError(f"{name} must be {n} finite numbers, got shape {value.shape}")
        if not (np.asarray(self.target_scale_) > 0).all():
            raise ValueError("target_scale_ must be positive")

    def _check_y(self, y: Any, n: int, n_val: int = 0) -> np.ndarray:
        try:
            arr = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                "y must be numeric (a 1-D array of targets or a 2-D array of several targets)"
            ) from None
        if arr.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got an array of shape {arr.shape}")
        if arr.shape[0] != n:
            raise ValueError(
                f"X and y have different lengths: X has {n} structures, y has {arr.shape[0]} rows"
            )
        if arr.ndim == 2 and arr.shape[1] == 0:
            raise ValueError("y has no target columns")
        bad = ~np.isfinite(arr)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(n, -1).any(axis=1))
            raise ValueError(
                f"NaN or infinite values in {_rows_text(rows, n, n_val)}; drop or impute them "
                "before fitting"
            )
        self._y_ndim = arr.ndim
        self.n_targets_ = 1 if arr.ndim == 1 else int(arr.shape[1])
        return arr.reshape(n, -1)

    def _fit_target_transform(self, y_train: np.ndarray) -> np.ndarray:
        if self.standardize_target:
            with np.errstate(over="ignore", invalid="ignore"):
                mean = y_train.mean(axis=0)
                scale = y_train.std(axis=0)
            if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
                raise ValueError(
                    f"the targets are too large to standardise (up to {np.abs(y_train).max():.3g}"
                    ": their mean or standard deviation overflows); rescale them, e.g. to other "
                    "units"
                )
            # a column is constant when its spread is nothing next to its size: a relative
            # test, so that targets of any magnitude (a volume in m^3, ~1e-29) keep their scale
            size = np.maximum(np.abs(mean), np.finfo(np.float64).tiny)
            scale[~(scale > 1e-12 * size)] = 1.0
        else:
            mean = np.zeros(y_train.shape[1])
            scale = np.ones(y_train.shape[1])
        self.target_mean_ = mean
        self.target_scale_ = scale
        return (y_train - mean) / scale

    def _encode_targets(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.target_mean_) / self.target_scale_).astype(np.float32)

    def _n_outputs(self) -> int:
        return self.n_targets_

    def _criterion(self, y_train: np.ndarray, device: Any) -> Any:
        import torch

        return torch.nn.MSELoss()

    def _metric_sum(self, out: Any, target: Any) -> Any:
        """Sum over crystals of the target-averaged absolute error, in target units."""
        import torch

        scale = torch.as_tensor(self.target_scale_, dtype=out.dtype, device=out.device)
        return ((out - target).abs() * scale).mean(dim=1).sum()

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
        """Build the crystal graphs and train the network.

        Parameters
        ----------
        X : sequence of Structure, pandas.Series, pandas.DataFrame or list of graphs
            Structures (a DataFrame must have a ``structure`` column) or crystal graphs from
            :class:`~crysatom_featurizers.graphs.CrystalGraphTransformer` built with this
            estimator's ``radius`` and ``max_neighbors``.
        y : array-like of shape (n,) or (n, n_targets)
            Targets (finite numbers).
        X_val, y_val : optional
            A given validation set (same kinds as ``X`` and ``y``) for model selection and
            early stopping, used instead of holding out ``validation_fraction`` of ``X``; all
            of ``X`` is then trained on. As ``X_val``/``y_val`` of scikit-learn's
            ``HistGradientBoostingRegressor.fit``.

        Returns
        -------
        self
        """
        return self._fit(X, y, X_val, y_val)

    def predict(self, X: Any) -> np.ndarray:
        """Predict the targets of ``X``.

        Parameters
        ----------
        X : sequence of Structure, pandas.Series, pandas.DataFrame or list of graphs
            As in :meth:`fit`.

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)`` if ``y`` was 1-D in ``fit``, else ``(n, n_targets)``; in target units.
        """
        out = self._predict_outputs(X) * self.target_scale_ + self.target_mean_
        return out[:, 0] if self._y_ndim == 1 else out


class _ClassificationTask:
    """Class labels of any hashable type; cross-entropy loss, accuracy metric."""

    _task = "classification"
    _metric_name = "accuracy"

    def _check_fitted_state(self) -> None:
        """Raise ``ValueError`` if the fitted classes are not those of a fit (a model file's
        content is checked with this before it is used)."""
        classes = np.asarray(self.classes_)
        if classes.ndim != 1 or classes.size < 2 or len(set(classes.tolist())) != classes.size:
            raise ValueError(f"classes_ must be at least 2 distinct labels, got {classes!r}")

    def _check_label_types(self, y: Any, y_val: Any) -> None:
        kinds = {}
        for name, labels in (("y", y), ("y_val", y_val)):
            if labels is None:
                continue
            kinds[name] = _label_kinds(labels)
            if len(kinds[name]) > 1:
                raise ValueError(
                    f"{name} mixes string and number labels; use one type for all classes "
                    "(as scikit-learn requires)"
                )
        if len(kinds) == 2 and all(kinds.values()) and kinds["y"] != kinds["y_val"]:
            raise ValueError(
                f"y has {''.join(kinds['y'])} labels and y_val has {''.join(kinds['y_val'])} "
                "labels; give both the same type"
            )

    def _check_y(self, y: Any, n: int, n_val: int = 0) -> np.ndarray:
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
                f"y must be 1-D class labels for {type(self).__name__}, got shape {arr.shape}"
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
                f"missing (NaN/None) or infinite labels in {_rows_text(rows, n, n_val)}"
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
                f"{type(self).__name__} needs at least 2 classes in y, got {len(encoder.classes_)}: "
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
                if not isinstance(self.class_weight, Mapping):
                    raise ValueError(
                        "class_weight must be a dict {label: weight}, 'balanced' or None, got "
                        f"{type(self.class_weight).__name__} {self.class_weight!r}"
                    )
                w = np.ones(k)
                for label, value in self.class_weight.items():
                    if label not in self._label_lookup:
                        raise ValueError(
                            f"class_weight names label {label!r}, which is not in y (classes: "
                            f"{list(self.classes_)})"
                        )
                    check_real(f"class_weight[{label!r}]", value)
                    w[self._label_lookup[label]] = float(value)
            weight = torch.as_tensor(w, dtype=torch.float32, device=device)
        return torch.nn.CrossEntropyLoss(weight=weight)

    def _metric_sum(self, out: Any, target: Any) -> Any:
        """Number of correctly classified crystals."""
        return (out.argmax(dim=1) == target).sum().to(out.dtype)

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
        """Build the crystal graphs and train the network.

        Parameters
        ----------
        X : sequence of Structure, pandas.Series, pandas.DataFrame or list of graphs
            Structures or crystal graphs, as in the regressor.
        y : array-like of shape (n,)
            Class labels of any hashable type.
        X_val, y_val : optional
            A given validation set for model selection and early stopping, used instead of
            holding out ``validation_fraction`` of ``X``; its labels must all occur in ``y``.

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
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self._predict_outputs(X), axis=1)]
