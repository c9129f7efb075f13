"""The graph-estimator base: the scikit-learn surface shared by every GNN estimator (the hooks
a network implements, parameter checks, graph settings, model files, pickling). Not public API.

The rest of an estimator lives by concern: input handling in
:mod:`~crysatom_featurizers.estimators._inputs`, graph checks in ``_graph_checks``, the fit and
prediction in ``_fitting``, the fingerprint of a resumable fit in ``_fingerprint``, the tasks
(regression, classification) in ``_tasks``.

A concrete estimator is a short class: a task mixin from
:mod:`~crysatom_featurizers.estimators._tasks`, a model base such as
:class:`~crysatom_featurizers.estimators._cgcnn._CGCNNBase` that implements
:meth:`_GraphEstimator._build_model`, :meth:`_GraphEstimator._check_model_params`,
:meth:`_GraphEstimator._network_type` and :meth:`_GraphEstimator._check_network_config`, and an
``__init__`` that lists its parameters (scikit-learn reads them from its signature). It joins
the network registry with :func:`~crysatom_featurizers.estimators.register_estimator`.
"""

from __future__ import annotations

import io
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from crysatom_featurizers._checks import check_real
from crysatom_featurizers.estimators._fitting import _FitLoop
from crysatom_featurizers.estimators._graph_checks import check_graph
from crysatom_featurizers.estimators._inputs import _Inputs
from crysatom_featurizers.estimators._sites import check_site_params, site_dim, sites_needed
from crysatom_featurizers.estimators._transfer import Transfer
from crysatom_featurizers.graphs import CGCNN_GRAPH, GraphSettings

#: Parameters that must be a bool (``bool("False")`` is True, so strings are refused).
_BOOL_PARAMS = ("allow_isolated", "standardize_target", "trainable_embeddings")


class _GraphEstimator(_FitLoop, _Inputs, BaseEstimator):
    """Shared implementation of the graph-network estimators (not part of the public API).

    The network that a subclass builds in :meth:`_build_model` reads a
    :class:`~crysatom_featurizers.graphs.GraphBatch` and has an ``embedding``
    (:class:`~crysatom_featurizers.nn.ElementEmbeddingLayer`); an optional
    ``distance_expansion`` is applied once to every edge before training. Fine-tuning needs
    ``embedding`` and ``encoder`` modules (see :meth:`_pretrained_modules`); distillation
    needs the student interface of :class:`~crysatom_featurizers.nn.transfer.DistilledModel`.
    Every subclass has the parameters ``radius``, ``max_neighbors``, ``allow_isolated``,
    ``embedding``, ``dim``, the transfer parameters, and those of training (``epochs``,
    ``batch_size``, ``lr``, ..., ``verbose``).
    """

    _task = "regression"
    _metric_name = "mae"  # history columns train_<name>, val_<name>
    _network = ""  # the registry name, set by register_estimator

    # ---- hooks of a model --------------------------------------------------------------------

    def _build_model(self, embedding: Any, n_outputs: int, transfer: Transfer | None) -> Any:
        """The network to train, on ``embedding`` with ``n_outputs`` outputs."""
        raise NotImplementedError

    def _check_model_params(self) -> None:
        """Raise ``ValueError`` on the model's own parameters (architecture, transfer)."""

    def graph_settings(self) -> GraphSettings:
        """The settings of the crystal graphs this estimator builds and accepts.

        Returns
        -------
        GraphSettings
            Cutoff ``radius`` (Å), ``max_neighbors``, the Gaussian expansion and whether the
            graph is undirected, from the estimator's parameters.
        """
        return CGCNN_GRAPH.replace(radius=float(self.radius), max_neighbors=int(self.max_neighbors))

    def graph_transformer(self, n_jobs: int | None = 1, verbose: bool = False) -> Any:
        """A transformer that builds the graphs this estimator reads, once, for many fits.

        Graphs given to ``fit`` and ``predict`` are used as they are, so a grid search or a
        learning curve can build them once with this transformer.

        Parameters
        ----------
        n_jobs : int or None, default=1
            Number of joblib workers of the graph building.
        verbose : bool, default=False
            Show a progress bar.

        Returns
        -------
        CrystalGraphTransformer
            With the estimator's graph settings, ``allow_isolated`` and bond vectors where the
            network needs them; edges are left unexpanded (the network expands them).
        """
        from crysatom_featurizers.graphs import CrystalGraphTransformer

        settings = self.graph_settings()
        return CrystalGraphTransformer(
            radius=settings.radius,
            max_neighbors=settings.max_neighbors,
            gaussian_step=settings.gaussian_step,
            gaussian_width=settings.gaussian_width,
            symmetric=settings.symmetric,
            expand_edges=False,
            allow_isolated=bool(self.allow_isolated),
            n_jobs=n_jobs,
            verbose=verbose,
            **self._graph_build_options(for_fit=True),
        )

    def _network_type(self) -> type:
        """The torch module class of the network (it has ``config`` and ``from_config``)."""
        raise NotImplementedError

    def _check_network_config(self, config: dict[str, Any], state: dict[str, Any]) -> None:
        """Raise ``ValueError`` if a model file's architecture disagrees with its weights
        (before any layer is built, so that no size in the file is trusted on its own)."""
        raise NotImplementedError

    def _network_from_config(self, network: dict[str, Any], state: dict[str, Any]) -> Any:
        """The fitted network of a safe model file: its architecture and its ``state_dict``."""
        from crysatom_featurizers.nn.element_vectors import embedding_from_table

        cls = self._network_type()
        if network.get("class") != cls.__name__:
            raise ValueError(f"a {network.get('class')!r} network in a {cls.__name__} estimator")
        self._check_network_config(dict(network["config"]), state)
        embedding = embedding_from_table(
            state["embedding.weight"], state["embedding.covered"], str(self.embedding_name_)
        )
        model = cls.from_config(embedding, network["config"])
        model.load_state_dict(state, strict=True)
        return model.eval()

    def _store_params(self, params: dict[str, Any]) -> None:
        """Keep every ``__init__`` argument as given (scikit-learn's contract); ``params`` is
        the ``locals()`` of ``__init__``."""
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _graph_build_options(self, for_fit: bool = True) -> dict[str, Any]:
        """Extra keywords of :func:`~crysatom_featurizers.graphs.structures_to_graphs` (e.g.
        ``edge_vectors=True``): here the potential whose site vectors the graphs carry, for the
        network's node inputs or, at ``fit``, a distillation's teacher."""
        potential = sites_needed(self, for_fit)
        return {} if potential is None else {"site_features": potential}

    def _input_options(self) -> dict[str, Any]:
        """Keywords of the network's node inputs: with ``site_features``, the width of the
        site vectors and whether element vectors come first (only if ``embedding`` is given)."""
        width = site_dim(self)
        if not width:
            return {}
        return {"site_dim": width, "use_elements": self.embedding is not None}

    def _check_input_graph(self, graph: Any, label: Any) -> None:
        """Raise ``ValueError`` on a graph given as input that the network cannot read."""
        check_graph(graph, label, self.graph_settings())

    def _finish_packing(self, packed: Any) -> Any:
        """The packed graphs as the network reads them (e.g. with a line graph added)."""
        return packed

    def _pretrained_modules(self, model: Any) -> list[Any]:
        """The parts of a fine-tuned model that come from the encoder (the element table, when
        trainable, belongs with the encoder it feeds)."""
        return [model.embedding, model.encoder]

    # ---- model files -----------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the fitted estimator to a ``.safetensors`` model file, atomically.

        The file holds the parameters and fitted attributes as plain data, the network's
        weights as tensors, the package version and a checksum over all of it. Load it with
        :func:`crysatom_featurizers.estimators.load_model`, which never unpickles: unlike a
        joblib or pickle file, it is safe to load a model file from someone else.

        Parameters
        ----------
        path : str or os.PathLike
            Output file, ending in ``.safetensors``. An existing model file there is replaced
            only once the new one is completely written; any other existing file is refused.

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator is not fitted.
        TypeError
            If a parameter holds an object the format cannot represent (e.g. a
            ``RandomState`` as ``random_state``); the message names it.
        FileExistsError
            If ``path`` exists and is not a model file of this package.
        """
        from crysatom_featurizers.estimators._persist import save_estimator

        check_is_fitted(self, "model_")
        return save_estimator(self, path)

    # ---- sklearn plumbing ------------------------------------------------------------------

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        model = state.pop("model_", None)
        if model is not None:
            import torch

            # torch.save keeps the module; loading maps every tensor to the CPU, so an estimator
            # fitted on a GPU unpickles where there is none (and ``device`` moves it back).
            buffer = io.BytesIO()
            torch.save(model, buffer)
            state["_model_bytes"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        model_bytes = state.pop("_model_bytes", None)
        if model_bytes is not None:
            import torch

            state["model_"] = torch.load(
                io.BytesIO(model_bytes), map_location="cpu", weights_only=False
            )
        super().__setstate__(state)

    # ---- validation ------------------------------------------------------------------------

    def _positive_int(self, name: str, minimum: int = 1) -> None:
        value = getattr(self, name)
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

    def _check_params(self, given_validation: bool = False) -> None:
        for name in ("epochs", "batch_size"):
            self._positive_int(name)
        self._check_model_params()
        check_site_params(self)
        self._positive_int("max_neighbors")
        check_real("radius", self.radius, positive=True, unit="Å")
        for name in _BOOL_PARAMS:
            value = getattr(self, name, False)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        check_real("lr", self.lr, positive=True)
        check_real("weight_decay", self.weight_decay)
        from crysatom_featurizers.nn.train import BATCH_SCHEDULES, LR_SCHEDULES, OPTIMIZERS

        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        optimizer = getattr(self, "optimizer", "adam")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        if getattr(self, "warmup_epochs", 0) != 0:
            self._positive_int("warmup_epochs", 0)
            if self.lr_schedule in BATCH_SCHEDULES:
                raise ValueError(
                    f"lr_schedule={self.lr_schedule!r} has its own warm-up; set warmup_epochs=0"
                )
        self._check_milestones()
        vf = self.validation_fraction
        if vf is not None and not 0.0 <= vf < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1) or None, got {vf!r}")
        if self.patience is not None:
            self._positive_int("patience")
            if not vf and not given_validation:
                raise ValueError(
                    "early stopping (patience) needs a validation set: set validation_fraction "
                    "> 0, pass X_val and y_val to fit, or set patience=None"
                )
        if self.num_workers is not None:
            self._positive_int("num_workers", minimum=0)
        if getattr(self, "n_threads", None) is not None:
            self._positive_int("n_threads")
        rs = self.random_state
        if getattr(self, "checkpoint", None) is not None and (
            isinstance(rs, bool) or not isinstance(rs, numbers.Integral)
        ):
            raise ValueError(
                "checkpoint needs an integer random_state: a resumed fit must draw the same "
                f"split and initial weights as the interrupted one (got random_state={rs!r})"
            )

    def _check_milestones(self) -> None:
        milestones = self.lr_milestones
        if milestones is None:
            return  # checked even when another schedule ignores them, as in a grid search
        kinds = (list, tuple, range, np.ndarray)
        values = list(milestones) if isinstance(milestones, kinds) else None
        if not values or any(
            isinstance(m, bool) or not isinstance(m, numbers.Integral) or m < 1 for m in values
        ):
            raise ValueError(
                f"lr_milestones must be a list of epochs (integers >= 1), got {milestones!r}"
            )

    def _check_y(self, y: Any, n: int, n_val: int = 0) -> np.ndarray:
        """Targets of ``n`` rows as the network reads them; the last ``n_val`` are ``y_val``'s
        (for error messages)."""
        raise NotImplementedError

    def _check_label_types(self, y: Any, y_val: Any) -> None:
        """Raise ``ValueError`` on labels of mixed types (classification)."""

    # ---- training --------------------------------------------------------------------------
