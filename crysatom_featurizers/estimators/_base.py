"""The graph-estimator base: the scikit-learn surface shared by every GNN estimator (parameter
checks, input handling, validation split and early stopping, transfer options, fit and predict
around :func:`crysatom_featurizers.nn.train.train_model`, pickling). Not public API.

A concrete estimator is a short class: a task mixin from
:mod:`~crysatom_featurizers.estimators._tasks` (regression or classification), a model base
such as :class:`~crysatom_featurizers.estimators._cgcnn._CGCNNBase` that implements
:meth:`_GraphEstimator._build_model` and :meth:`_GraphEstimator._check_model_params`, and an
``__init__`` that lists its parameters (scikit-learn reads them from its signature).
"""

from __future__ import annotations

import io
import numbers
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, check_random_state

from crysatom_featurizers._checks import check_real
from crysatom_featurizers.deps import require_gnn
from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING, resolve
from crysatom_featurizers.estimators._transfer import (
    FREEZE_ALL,
    TRANSFER_DEFAULTS,
    Transfer,
    attach_teacher,
    check_input_embedding,
    load_transfer,
)
from crysatom_featurizers.graphs import CGCNN_GRAPH, GraphSettings
from crysatom_featurizers.graphs.inputs import type_name

# --------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------


def _items_and_labels(X: Any) -> tuple[list[Any], list[Any]]:
    """Items of ``X`` with their row labels (index labels for pandas, positions otherwise)."""
    from crysatom_featurizers.graphs import iter_structures

    return iter_structures(X, "X", " or of crystal graphs from CrystalGraphTransformer")


def _with_validation_rows(X: Any, y: Any, X_val: Any, y_val: Any) -> tuple[Any, Any, int]:
    """``X + X_val`` as one Series (validation labels ``X_val[label]``), ``y + y_val``, and the
    number of validation rows."""
    items, labels = _items_and_labels(X)
    v_items, v_labels = _items_and_labels(X_val)
    if not v_items:
        raise ValueError("X_val is empty; leave X_val and y_val out to use validation_fraction")
    column = np.empty(len(items) + len(v_items), dtype=object)
    for i, item in enumerate(items + v_items):
        column[i] = item  # item by item: numpy would unpack a Structure into a row
    index = list(labels) + [f"X_val[{label!r}]" for label in v_labels]
    y_arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    yv_arr = y_val.to_numpy() if isinstance(y_val, (pd.Series, pd.DataFrame)) else np.asarray(y_val)
    if len(yv_arr) != len(v_items):
        raise ValueError(
            f"X_val and y_val have different lengths: {len(v_items)} structures, "
            f"{len(yv_arr)} targets"
        )
    if len(y_arr) != len(items):
        raise ValueError(
            f"X and y have different lengths: X has {len(items)} structures, y has "
            f"{len(y_arr)} rows"
        )
    if y_arr.ndim != yv_arr.ndim or y_arr.shape[1:] != yv_arr.shape[1:]:
        raise ValueError(
            f"y_val must have the shape of y past the first axis: y {y_arr.shape}, "
            f"y_val {yv_arr.shape}"
        )
    merged = pd.Series(column, index=pd.Index(index, dtype=object), dtype=object)
    return merged, np.concatenate([y_arr, yv_arr]), len(v_items)


def _same_spec(a: Any, b: Any) -> bool:
    """Whether two embedding specs are equal strings or paths (objects compare by identity)."""
    return isinstance(a, (str, os.PathLike)) and isinstance(b, (str, os.PathLike)) and a == b


def _graph_settings_error(label: Any, detail: str, settings: GraphSettings) -> ValueError:
    return ValueError(
        f"the graph at row {label!r} does not match the estimator's graph settings "
        f"(radius={settings.radius} Å, max_neighbors={settings.max_neighbors}): {detail}. Build "
        "the graphs with CrystalGraphTransformer(radius=..., max_neighbors=...) set to the "
        "estimator's values"
    )


def _check_graph(g: Any, label: Any, settings: GraphSettings, *, expansion: bool = True) -> None:
    """Reject graphs built with other neighbour settings than the estimator's (those recorded
    on the graph, else what its edges show) and, with ``expansion``, another number of
    Gaussian edge features."""
    import torch

    if getattr(g, "edge_index", None) is None or getattr(g, "edge_dist", None) is None:
        raise ValueError(
            f"the graph at row {label!r} lacks edge_index or edge_dist; build graphs with "
            "crysatom_featurizers.graphs.structures_to_graph or CrystalGraphTransformer"
        )
    built = getattr(g, "graph_settings", None)
    if isinstance(built, GraphSettings):
        differs = [
            f"{name}={getattr(built, name)!r}"
            for name in ("radius", "max_neighbors", "symmetric")
            if getattr(built, name) != getattr(settings, name)
        ]
        if differs:
            raise _graph_settings_error(label, f"it was built with {', '.join(differs)}", settings)
    else:  # no record: judge the graph by its edges
        dist = g.edge_dist
        if dist.numel() and float(dist.max()) > settings.radius + 1e-4:
            raise _graph_settings_error(
                label, f"it has an edge of length {float(dist.max()):.3f} Å", settings
            )
        max_neighbors = settings.max_neighbors
        if max_neighbors is not None and dist.numel() and not settings.symmetric:
            degree = torch.bincount(g.edge_index[1], minlength=int(g.num_nodes))
            if int(degree.max()) > max_neighbors:
                raise _graph_settings_error(
                    label, f"a site has {int(degree.max())} neighbours", settings
                )
    edge_attr = getattr(g, "edge_attr", None)
    n_centres = settings.num_gaussians
    if expansion and edge_attr is not None and edge_attr.shape[-1] != n_centres:
        raise _graph_settings_error(
            label,
            f"its edges carry {edge_attr.shape[-1]} Gaussian features, the estimator expects "
            f"{n_centres}",
            settings,
        )


# --------------------------------------------------------------------------------------------
# The base
# --------------------------------------------------------------------------------------------

#: Parameters that must be a bool (``bool("False")`` is True, so strings are refused).
_BOOL_PARAMS = ("allow_isolated", "standardize_target", "trainable_embeddings")


class _GraphEstimator(BaseEstimator):
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

    # ---- hooks of a model --------------------------------------------------------------------

    def _build_model(self, embedding: Any, n_outputs: int, transfer: Transfer | None) -> Any:
        """The network to train, on ``embedding`` with ``n_outputs`` outputs."""
        raise NotImplementedError

    def _check_model_params(self) -> None:
        """Raise ``ValueError`` on the model's own parameters (architecture, transfer)."""

    def _graph_settings(self) -> GraphSettings:
        """The crystal graphs this estimator builds and accepts."""
        return CGCNN_GRAPH.replace(radius=float(self.radius), max_neighbors=int(self.max_neighbors))

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

    def _graph_build_options(self) -> dict[str, Any]:
        """Extra keywords of :func:`~crysatom_featurizers.graphs.structures_to_graphs` (e.g.
        ``edge_vectors=True``)."""
        return {}

    def _check_input_graph(self, graph: Any, label: Any) -> None:
        """Raise ``ValueError`` on a graph given as input that the network cannot read."""
        _check_graph(graph, label, self._graph_settings())

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
        if "embedding" not in state and "atom_features" in state:
            # saved before embedding + dim replaced atom_features: same model, new spelling
            state["embedding"] = state.pop("atom_features")
            state.setdefault("atom_features", None)
            state.setdefault("dim", None)
        if "finetune" not in state:  # saved before the transfer options existed
            if state.get("atom_features") is not None and state.get("embedding") == "crysatom":
                state["embedding"] = None  # then the default, now None
            if "model_" in state or "_model_bytes" in state:
                state.setdefault("transfer_", None)
        for name, default in TRANSFER_DEFAULTS.items():
            state.setdefault(name, default)  # saved before these parameters existed
        state.setdefault("checkpoint", None)
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
        self._positive_int("max_neighbors")
        check_real("radius", self.radius, positive=True, unit="Å")
        for name in _BOOL_PARAMS:
            value = getattr(self, name, False)
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {value!r}")
        check_real("lr", self.lr, positive=True)
        check_real("weight_decay", self.weight_decay)
        from crysatom_featurizers.nn.train import LR_SCHEDULES

        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
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

    def _embedding_spec(self) -> tuple[Any, str]:
        """``embedding``, or the deprecated ``atom_features`` (with a FutureWarning), and the
        name of the parameter it came from."""
        old = getattr(self, "atom_features", None)
        if old is None:
            return self.embedding, "embedding"
        warnings.warn(
            "atom_features is deprecated and will be removed in the next release; use "
            "embedding= (a name, 'name:dim', a vector file or an ElementEmbedding) and dim=",
            FutureWarning,
            stacklevel=4,
        )
        if not (self.embedding is None or self.embedding is old or _same_spec(self.embedding, old)):
            raise ValueError(
                f"both embedding={self.embedding!r} and its deprecated alias "
                f"atom_features={old!r} are given; pass only embedding"
            )
        return old, "atom_features"

    def _graphs_of(self, X: Any, *, for_fit: bool) -> tuple[list[Any], list[Any]]:
        """Graphs of ``X`` (built here from Structures, or taken as given) and row labels."""
        from pymatgen.core import IStructure
        from torch_geometric.data.data import BaseData

        from crysatom_featurizers.graphs import structures_to_graphs

        settings = self._graph_settings()
        items, labels = _items_and_labels(X)
        if not items:
            raise ValueError(
                f"X is empty: {'fit' if for_fit else 'predict'} needs at least one structure"
            )
        to_build: list[int] = []
        for i, item in enumerate(items):
            if isinstance(item, IStructure):
                to_build.append(i)
            elif isinstance(item, BaseData):
                self._check_input_graph(item, labels[i])
            else:
                raise TypeError(
                    f"X[{labels[i]!r}] is a {type_name(item)}; expected a pymatgen Structure "
                    "or a crystal graph (torch_geometric Data) from CrystalGraphTransformer"
                )
        if to_build:
            workers = self.num_workers or 1
            # An object array filled item by item: numpy would otherwise unpack each Structure
            # (a sequence of sites) into a row.
            column = np.empty(len(to_build), dtype=object)
            for j, i in enumerate(to_build):
                column[j] = items[i]
            built = structures_to_graphs(
                pd.Series(column, index=[labels[i] for i in to_build], dtype=object),
                settings,
                expand_edges=False,
                allow_isolated=bool(self.allow_isolated),
                n_jobs=workers,
                progress=self.verbose >= 2,
                **self._graph_build_options(),
            )
            for i, graph in zip(to_build, built):
                items[i] = graph
        return items, labels

    def _pack(self, X: Any, covered: np.ndarray, embedding_name: str, *, for_fit: bool):
        """Packed graphs of ``X``; raises if an element is not covered by the embedding."""
        import torch

        from crysatom_featurizers.graphs import PackedGraphs
        from crysatom_featurizers.nn import check_covered

        graphs, labels = self._graphs_of(X, for_fit=for_fit)
        packed = self._finish_packing(PackedGraphs.from_graphs(graphs))

        def where(entry: int) -> str:
            row = int(torch.searchsorted(packed.species_start, entry, right=True)) - 1
            return f"the structure at row {labels[row]!r}"

        check_covered(
            packed.tensors["species_z"].long(),
            torch.from_numpy(np.array(covered, dtype=bool)),
            embedding_name,
            where,
        )
        return packed, labels

    def _check_y(self, y: Any, n: int, n_val: int = 0) -> np.ndarray:
        """Targets of ``n`` rows as the network reads them; the last ``n_val`` are ``y_val``'s
        (for error messages)."""
        raise NotImplementedError

    def _check_label_types(self, y: Any, y_val: Any) -> None:
        """Raise ``ValueError`` on labels of mixed types (classification)."""

    # ---- training --------------------------------------------------------------------------

    def _split(self, n: int, rng: np.random.RandomState, y_enc: np.ndarray) -> tuple[Any, Any]:
        """Training and validation positions, deterministic for a given ``random_state``."""
        vf = self.validation_fraction or 0.0
        n_val = 0 if vf == 0 else max(1, int(round(vf * n)))
        if n - n_val < 2:
            raise ValueError(
                f"fit needs at least 2 training structures; got {n} structures of which {n_val} "
                f"go to validation (validation_fraction={vf})"
            )
        if n_val == 0:
            return np.arange(n), np.arange(0)
        perm = rng.permutation(n)
        if self._task == "classification":
            from sklearn.model_selection import StratifiedShuffleSplit

            counts = np.bincount(y_enc)
            if counts.min() >= 2 and n_val >= counts.size and n - n_val >= counts.size:
                splitter = StratifiedShuffleSplit(
                    n_splits=1, test_size=n_val, random_state=rng.randint(2**31 - 1)
                )
                train, val = next(splitter.split(np.zeros(n), y_enc))
                return np.sort(train), np.sort(val)
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    def _transfer_options(self, model: Any, transfer: Transfer | None) -> dict[str, Any]:
        """``train_model`` keyword arguments of fine-tuning: the encoder's learning rate and
        its frozen epochs."""
        if transfer is None or transfer.mode != "finetune":
            return {}
        import torch

        pretrained = torch.nn.ModuleList(self._pretrained_modules(model))
        pretrained_ids = {id(p) for p in pretrained.parameters()}
        head = [p for p in model.parameters() if id(p) not in pretrained_ids]
        encoder_lr = float(self.lr if self.encoder_lr is None else self.encoder_lr)
        freeze = self.freeze_encoder_epochs
        return {
            "param_groups": [
                {"params": head, "lr": float(self.lr)},
                {"params": list(pretrained.parameters()), "lr": encoder_lr},
            ],
            "frozen": pretrained,
            "frozen_epochs": int(self.epochs) if freeze == FREEZE_ALL else int(freeze),
        }

    def _fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> _GraphEstimator:
        """Fit, or leave the estimator as it was: a fit that raises (bad input, a diverging
        loss, an interrupt) restores the previous fitted state, so that a model and the
        target scaling or classes of another fit are never paired."""
        params = set(self.get_params(deep=False))
        before = {k: v for k, v in vars(self).items() if k not in params}
        try:
            return self._fit_state(X, y, X_val, y_val)
        except BaseException:
            for name in [k for k in vars(self) if k not in params]:
                delattr(self, name)
            for name, value in before.items():
                setattr(self, name, value)
            raise

    def _fit_state(self, X: Any, y: Any, X_val: Any, y_val: Any) -> _GraphEstimator:
        require_gnn(type(self).__name__)
        import torch

        from crysatom_featurizers.nn.train import (
            TrainSettings,
            resolve_device,
            torch_runtime,
            train_model,
        )

        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together")
        self._check_params(given_validation=X_val is not None)
        self._check_label_types(y, y_val)
        transfer = load_transfer(self, self._graph_settings())
        spec, param = self._embedding_spec()
        finetuning = transfer is not None and transfer.mode == "finetune"
        if spec is None:
            spec = transfer.input_embedding if finetuning else DEFAULT_EMBEDDING
        embedding = resolve(spec, self.dim, param=param)
        if finetuning:
            check_input_embedding(transfer, embedding)
        _, covered = embedding.lookup_table()
        emb_name = str(getattr(embedding, "name", "custom"))

        n_rows = len(_items_and_labels(X)[0])
        if n_rows == 0:
            raise ValueError("X is empty: fit needs at least 2 structures")
        n_given_val = 0
        if X_val is not None:
            X, y, n_given_val = _with_validation_rows(X, y, X_val, y_val)
            if n_rows < 2:
                raise ValueError(f"fit needs at least 2 training structures; got {n_rows}")
        # float targets or class codes; the last n_given_val rows are y_val's
        targets = self._check_y(y, n_rows + n_given_val, n_given_val)

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)

        t0 = time.perf_counter()
        packed, _ = self._pack(X, covered, emb_name, for_fit=True)
        graph_time = time.perf_counter() - t0

        if n_given_val:
            train_idx, val_idx = np.arange(n_rows), np.arange(n_rows, n_rows + n_given_val)
            unseen = np.setdiff1d(targets[val_idx], targets[train_idx])
            if self._task == "classification" and unseen.size:
                raise ValueError(
                    f"y_val has classes absent from y: {list(self.classes_[unseen])[:5]}"
                )
        else:
            train_idx, val_idx = self._split(
                len(packed), rng, targets if self._task == "classification" else None
            )
        self._fit_target_transform(targets[train_idx])

        settings = TrainSettings(
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            lr_schedule=self.lr_schedule,
            lr_milestones=self.lr_milestones,
            patience=self.patience,
            metric_name=self._metric_name,
            progress=type(self).__name__ if self.verbose else None,
        )
        with torch_runtime(device, self.n_threads, seed):
            packed.to(device)
            y_all = torch.as_tensor(self._encode_targets(targets), device=device)
            model = self._build_model(embedding, self._n_outputs(), transfer).to(device)
            _expand_edges(packed, model)
            trained = model
            if transfer is not None and transfer.mode == "distill":
                from crysatom_featurizers.nn.transfer import DistilledModel

                t_teacher = time.perf_counter()
                attach_teacher(transfer, packed, train_idx, self._graph_settings(), self.batch_size)
                graph_time += time.perf_counter() - t_teacher
                trained = DistilledModel(
                    model,
                    transfer.encoder.hidden_dim,
                    delta=float(self.distill_delta),
                    layer=int(self.distill_layer),
                ).to(device)
            result = train_model(
                trained,
                packed,
                y_all,
                torch.as_tensor(train_idx, dtype=torch.long),
                torch.as_tensor(val_idx, dtype=torch.long, device=device),
                criterion=self._criterion(targets[train_idx], device),
                metric=self._metric_sum,
                settings=settings,
                seed=seed,
                checkpoint=getattr(self, "checkpoint", None),
                fingerprint=self._run_fingerprint(
                    embedding, transfer, packed, targets, train_idx, val_idx, seed
                ),
                **self._transfer_options(model, transfer),
            )
            model = model.cpu()  # the student of a distillation; the projection is dropped
            packed.node_targets = None

        self.model_ = model
        self.embedding_name_ = emb_name
        self.embedding_dim_ = int(embedding.dim)
        self.transfer_ = None if transfer is None else transfer.describe()
        self.history_ = pd.DataFrame(result.history)
        self.best_epoch_ = result.best_epoch
        # positions in X; a separate X_val holds none of them
        self.validation_indices_ = np.asarray(
            np.arange(0) if n_given_val else val_idx, dtype=np.int64
        )
        self.n_iter_ = result.n_epochs
        self.timings_ = {"graphs_s": graph_time, "training_s": result.training_s}
        return self

    def _run_fingerprint(
        self,
        embedding: Any,
        transfer: Transfer | None,
        packed: Any,
        targets: Any,
        train_idx: Any,
        val_idx: Any,
        seed: int,
    ) -> str:
        """SHA-256 of what a fit depends on: the estimator, the package version, its parameters
        (without those that only say where or how verbosely it runs), the element vectors, the
        encoder's weights, the graphs, the targets, the split and the seed. A checkpoint of
        another fingerprint is not resumed."""
        import hashlib
        import json

        from crysatom_featurizers.estimators._persist import _Encoder

        if getattr(self, "checkpoint", None) is None:
            return ""
        ignored = {"checkpoint", "verbose", "n_threads", "num_workers", "device", "embedding"}
        encode = _Encoder()
        try:
            params = {
                k: encode(v, k)
                for k, v in sorted(self.get_params(deep=False).items())
                if k not in ignored
            }
        except TypeError as exc:
            raise ValueError(
                f"checkpoint: cannot record the parameters of the fit ({exc})"
            ) from None
        encoder = None if transfer is None else transfer.metadata.get("checksum")
        digest = hashlib.sha256()
        from crysatom_featurizers import __version__

        header = [type(self).__name__, __version__, params, encoder, seed]
        digest.update(json.dumps(header).encode())
        table, _ = embedding.lookup_table()
        arrays = [np.asarray(table, dtype=np.float64), np.asarray(train_idx), np.asarray(val_idx)]
        arrays += [encode.arrays[k] for k in sorted(encode.arrays)]
        arrays += [packed.tensors[k].cpu().numpy() for k in sorted(packed.tensors)]
        arrays.append(np.asarray(targets))  # as given: targets in their units, or class codes
        for array in arrays:
            digest.update(str((array.dtype.str, array.shape)).encode())
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def _predict_outputs(self, X: Any) -> np.ndarray:
        """Raw model outputs (standardised targets or logits) for ``X``, as float64."""
        require_gnn(type(self).__name__)
        import torch

        from crysatom_featurizers.nn.train import predict_packed, resolve_device, torch_runtime

        check_is_fitted(self, "model_")
        model = self.model_
        covered = model.embedding.covered.detach().cpu().numpy()
        packed, _ = self._pack(X, covered, self.embedding_name_, for_fit=False)
        device = resolve_device(self.device)
        with torch_runtime(device, self.n_threads):
            packed.to(device)
            model.to(device)
            try:
                _expand_edges(packed, model)
                index = torch.arange(len(packed), device=device)
                out = predict_packed(model, packed, index, int(self.batch_size))
            finally:
                model.cpu()
        return out.double().cpu().numpy()


def _expand_edges(packed: Any, model: Any) -> None:
    """Expand every edge once with the model's distance expansion, where it has one and the
    table fits in memory (see :meth:`PackedGraphs.expand_edges`)."""
    from crysatom_featurizers.nn import train as train_mod

    expansion = getattr(model, "distance_expansion", None)
    if expansion is not None:
        packed.expand_edges(expansion, train_mod.MAX_EXPANDED_EDGE_BYTES)
