"""Scikit-learn estimators around the CGCNN model: CGCNNRegressor and CGCNNClassifier.

Both take pymatgen Structures (a list, a pandas Series, a DataFrame with a ``structure``
column) or the crystal graphs made by
:class:`~crysatom_featurizers.graphs.CrystalGraphTransformer`, and any element embedding of
the registry as input node features (CrysAtom by default, frozen, as in the CrysAtom paper,
Section 3.3).

How training runs
-----------------
``fit`` builds every crystal graph once and packs all graphs into a few flat tensors with
per-crystal offsets; the Gaussian expansion of the edge lengths is computed once too (per batch
instead when the table would exceed 512 MiB). A mini-batch is then gathered with a handful of
vectorised index operations instead of collating ``Data`` objects one by one, so an epoch
costs little more than the forward and backward passes. The optimiser is Adam (CrysAtom paper,
Table 2, middle block); see the ``lr`` parameter for how this relates to the original CGCNN
defaults.
"""

from __future__ import annotations

import io
import math
import numbers
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted, check_random_state

from crysatom_featurizers.chemistry import element_symbol
from crysatom_featurizers.embeddings import resolve
from crysatom_featurizers.graphs import CGCNN_GRAPH, gaussian_centers

__all__ = ["CGCNNClassifier", "CGCNNRegressor"]

_LR_SCHEDULES = ("constant", "cosine", "step")
_POOLINGS = ("mean", "sum", "max")
# Learning-rate factor at each milestone of the "step" schedule (CGCNN's MultiStepLR gamma).
_STEP_GAMMA = 0.1
# Largest Gaussian edge-feature table (bytes) computed once per fit; above it, per batch.
_MAX_EXPANDED_EDGE_BYTES = 512 * 2**20


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


def _type_name(obj: Any) -> str:
    kind = type(obj)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _graph_settings_error(label: Any, detail: str, radius: float, max_neighbors: int) -> ValueError:
    return ValueError(
        f"the graph at row {label!r} does not match the estimator's graph settings "
        f"(radius={radius} Å, max_neighbors={max_neighbors}): {detail}. Build the graphs with "
        "CrystalGraphTransformer(radius=..., max_neighbors=...) set to the estimator's values"
    )


def _check_graph(g: Any, label: Any, radius: float, max_neighbors: int | None) -> None:
    """Reject graphs built with other neighbour settings than the estimator's."""
    import torch

    if getattr(g, "edge_index", None) is None or getattr(g, "edge_dist", None) is None:
        raise ValueError(
            f"the graph at row {label!r} lacks edge_index or edge_dist; build graphs with "
            "crysatom_featurizers.graphs.structures_to_graph or CrystalGraphTransformer"
        )
    edge_attr = getattr(g, "edge_attr", None)
    n_centres = len(gaussian_centers(0.0, radius, CGCNN_GRAPH.gaussian_step))
    if edge_attr is not None and edge_attr.shape[-1] != n_centres:
        raise _graph_settings_error(
            label,
            f"its edges carry {edge_attr.shape[-1]} Gaussian features, the estimator expects "
            f"{n_centres}",
            radius,
            max_neighbors,
        )
    dist = g.edge_dist
    if dist.numel() and float(dist.max()) > radius + 1e-4:
        raise _graph_settings_error(
            label, f"it has an edge of length {float(dist.max()):.3f} Å", radius, max_neighbors
        )
    if max_neighbors is not None and dist.numel():
        degree = torch.bincount(g.edge_index[1], minlength=int(g.num_nodes))
        if int(degree.max()) > max_neighbors:
            raise _graph_settings_error(
                label, f"a site has {int(degree.max())} neighbours", radius, max_neighbors
            )


def _resolve_device(device: Any) -> Any:
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available in this torch installation; "
            "use device='cpu' or 'auto'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return dev


@contextmanager
def _torch_runtime(device: Any, n_threads: int | None, seed: int | None = None) -> Iterator[None]:
    """Thread count, deterministic CPU kernels and a private RNG, all restored on exit."""
    import torch

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        if n_threads is not None:
            torch.set_num_threads(max(1, int(n_threads)))
        elif hasattr(os, "sched_getaffinity") and old_threads > len(os.sched_getaffinity(0)):
            # never more threads than the cores this process may run on
            torch.set_num_threads(len(os.sched_getaffinity(0)))
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True, warn_only=True)
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)


def _batches(order: Any, batch_size: int) -> list[Any]:
    """Consecutive chunks of ``order``; a trailing chunk of one crystal joins the previous one.

    Batch normalisation cannot train on a single crystal of a single site, so a lone crystal at
    the end is never left on its own.
    """
    n = int(order.numel())
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------


class _CGCNNBase(BaseEstimator):
    """Shared implementation of the CGCNN estimators (not part of the public API)."""

    _task = "regression"

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

    def _check_params(self, given_validation: bool = False) -> None:
        def positive_int(name: str, minimum: int = 1) -> None:
            value = getattr(self, name)
            if (
                not isinstance(value, numbers.Integral)
                or isinstance(value, bool)
                or value < minimum
            ):
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")

        for name in ("atom_fea_len", "h_fea_len", "n_h", "epochs", "batch_size"):
            positive_int(name)
        positive_int("n_conv", 0)
        positive_int("max_neighbors")
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        if not self.radius > 0:
            raise ValueError(f"radius must be positive (Å), got {self.radius!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay!r}")
        if self.lr_schedule not in _LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {_LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        vf = self.validation_fraction
        if vf is not None and not 0.0 <= vf < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1) or None, got {vf!r}")
        if self.patience is not None:
            positive_int("patience")
            if not vf and not given_validation:
                raise ValueError(
                    "early stopping (patience) needs a validation set: set validation_fraction "
                    "> 0, pass X_val and y_val to fit, or set patience=None"
                )
        if self.num_workers is not None and self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")

    def _graphs_of(self, X: Any, *, for_fit: bool) -> tuple[list[Any], list[Any]]:
        """Graphs of ``X`` (built here from Structures, or taken as given) and row labels."""
        from pymatgen.core import IStructure
        from torch_geometric.data.data import BaseData

        from crysatom_featurizers.graphs import structures_to_graphs

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
                _check_graph(item, labels[i], float(self.radius), self.max_neighbors)
            else:
                raise TypeError(
                    f"X[{labels[i]!r}] is a {_type_name(item)}; expected a pymatgen Structure "
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
                radius=float(self.radius),
                max_neighbors=int(self.max_neighbors),
                gaussian_step=CGCNN_GRAPH.gaussian_step,
                gaussian_width=CGCNN_GRAPH.gaussian_width,
                expand_edges=False,
                allow_isolated=bool(self.allow_isolated),
                n_jobs=workers,
                progress=self.verbose >= 2,
            )
            for i, graph in zip(to_build, built):
                items[i] = graph
        return items, labels

    def _pack(self, X: Any, covered: np.ndarray, embedding_name: str, *, for_fit: bool):
        """Packed graphs of ``X``; raises if an element is not covered by the embedding."""
        import torch

        from crysatom_featurizers.graphs import PackedGraphs

        graphs, labels = self._graphs_of(X, for_fit=for_fit)
        packed = PackedGraphs.from_graphs(graphs)
        z = packed.tensors["species_z"].long()
        covered_t = torch.from_numpy(np.array(covered, dtype=bool))
        z_in = z.clamp(0, covered_t.numel() - 1)
        bad = (z != z_in) | ~covered_t[z_in]
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0, 0])
            row = int(torch.searchsorted(packed.species_start, first, right=True)) - 1
            missing = sorted({int(v) for v in z[bad].tolist()})
            raise ValueError(
                f"the structure at row {labels[row]!r} contains {element_symbol(int(z[first]), strict=False)}, "
                f"which the {embedding_name!r} embedding does not cover (elements missing "
                f"from it in X: {', '.join(element_symbol(v, strict=False) for v in missing)}); choose "
                "atom_features that cover them or drop these structures"
            )
        return packed, labels

    def _check_y(self, y: Any, n: int) -> np.ndarray:
        raise NotImplementedError

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

    def _build_model(self, embedding: Any, n_outputs: int) -> Any:
        from crysatom_featurizers.nn import CGCNN

        return CGCNN(
            embedding,
            atom_fea_len=int(self.atom_fea_len),
            n_conv=int(self.n_conv),
            h_fea_len=int(self.h_fea_len),
            n_h=int(self.n_h),
            n_targets=int(n_outputs),
            pooling=self.pooling,
            trainable_embeddings=bool(self.trainable_embeddings),
            gaussian_stop=float(self.radius),
            gaussian_step=CGCNN_GRAPH.gaussian_step,
            gaussian_width=CGCNN_GRAPH.gaussian_width,
        )

    def _scheduler(self, optimizer: Any) -> Any:
        import torch

        if self.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(self.epochs))
        if self.lr_schedule == "step":
            milestones = self.lr_milestones
            if milestones is None:
                milestones = sorted({max(1, self.epochs // 2), max(1, (3 * self.epochs) // 4)})
            return torch.optim.lr_scheduler.MultiStepLR(
                optimizer, milestones=list(milestones), gamma=_STEP_GAMMA
            )
        return None

    def _fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> _CGCNNBase:
        import torch

        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together")
        self._check_params(given_validation=X_val is not None)
        embedding = resolve(self.atom_features, param="atom_features")
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
        targets = self._check_y(y, n_rows + n_given_val)  # float targets or class codes

        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        device = _resolve_device(self.device)

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

        with _torch_runtime(device, self.n_threads, seed):
            packed.to(device)
            y_all = torch.as_tensor(self._encode_targets(targets), device=device)
            model = self._build_model(embedding, self._n_outputs()).to(device)
            packed.expand_edges(model.distance_expansion, _MAX_EXPANDED_EDGE_BYTES)
            criterion = self._criterion(targets[train_idx], device)
            optimizer = torch.optim.Adam(
                model.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay)
            )
            scheduler = self._scheduler(optimizer)
            generator = torch.Generator().manual_seed(seed)
            train_t = torch.as_tensor(train_idx, dtype=torch.long)
            val_t = torch.as_tensor(val_idx, dtype=torch.long, device=device)

            history: dict[str, list[float]] = {k: [] for k in self._history_keys()}
            best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
            bar = None
            if self.verbose:
                from tqdm.auto import tqdm

                bar = tqdm(total=int(self.epochs), desc=type(self).__name__, unit="epoch")
            t_train = time.perf_counter()
            try:
                for epoch in range(1, int(self.epochs) + 1):
                    t_epoch = time.perf_counter()
                    lr_now = optimizer.param_groups[0]["lr"]
                    order = train_t[torch.randperm(train_t.numel(), generator=generator)]
                    train_stats = self._train_epoch(
                        model, packed, y_all, order.to(device), criterion, optimizer
                    )
                    if scheduler is not None:
                        scheduler.step()
                    val_stats = (
                        self._evaluate(model, packed, y_all, val_t, criterion)
                        if val_t.numel()
                        else (math.nan, math.nan)
                    )
                    row = [epoch, *train_stats, *val_stats, lr_now, time.perf_counter() - t_epoch]
                    for key, value in zip(history, row):
                        history[key].append(value)
                    monitored = val_stats[0] if val_t.numel() else train_stats[0]
                    if monitored < best_loss:
                        best_loss, best_epoch, stale = monitored, epoch, 0
                        if val_t.numel():
                            best_state = {
                                k: v.detach().clone() for k, v in model.state_dict().items()
                            }
                    else:
                        stale += 1
                    if bar is not None:
                        bar.set_postfix(self._postfix(history), refresh=False)
                        bar.update(1)
                    if not math.isfinite(train_stats[0]):
                        raise FloatingPointError(
                            f"the training loss became {train_stats[0]} at epoch {epoch}; "
                            "lower lr or check the targets"
                        )
                    if self.patience is not None and stale >= self.patience:
                        break
            finally:
                if bar is not None:
                    bar.close()
            if best_state is not None:
                model.load_state_dict(best_state)
            else:
                best_epoch = epoch
            model.eval()
            model.cpu()

        self.model_ = model
        self.embedding_name_ = emb_name
        self.embedding_dim_ = int(embedding.dim)
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = int(best_epoch)
        # positions in X; a separate X_val holds none of them
        self.validation_indices_ = np.asarray(
            np.arange(0) if n_given_val else val_idx, dtype=np.int64
        )
        self.n_iter_ = int(epoch)
        self.timings_ = {
            "graphs_s": graph_time,
            "training_s": time.perf_counter() - t_train,
        }
        return self

    def _train_epoch(
        self, model, packed, y_all, order, criterion, optimizer
    ) -> tuple[float, float]:
        import torch

        model.train()
        total_loss = torch.zeros((), device=order.device)
        total_metric = torch.zeros((), device=order.device)
        for index in _batches(order, int(self.batch_size)):
            batch = packed.batch(index)
            target = y_all[index]
            out = model(batch)
            loss = criterion(out, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                total_loss += loss.detach() * index.numel()
                total_metric += self._metric_sum(out.detach(), target)
        n = int(order.numel())
        return float(total_loss) / n, float(total_metric) / n

    def _forward_all(self, model, packed, index) -> Any:
        import torch

        model.eval()
        outs = []
        with torch.inference_mode():
            for chunk in _batches(index, max(int(self.batch_size), 256)):
                outs.append(model(packed.batch(chunk)))
        return torch.cat(outs)

    def _evaluate(self, model, packed, y_all, index, criterion) -> tuple[float, float]:
        out = self._forward_all(model, packed, index)
        target = y_all[index]
        n = int(index.numel())
        return float(criterion(out, target)), float(self._metric_sum(out, target)) / n

    def _predict_outputs(self, X: Any) -> np.ndarray:
        """Raw model outputs (standardised targets or logits) for ``X``, as float64."""
        import torch

        check_is_fitted(self, "model_")
        model = self.model_
        covered = model.embedding.covered.detach().cpu().numpy()
        packed, _ = self._pack(X, covered, self.embedding_name_, for_fit=False)
        device = _resolve_device(self.device)
        with _torch_runtime(device, self.n_threads):
            packed.to(device)
            model.to(device)
            try:
                packed.expand_edges(model.distance_expansion, _MAX_EXPANDED_EDGE_BYTES)
                index = torch.arange(len(packed), device=device)
                out = self._forward_all(model, packed, index)
            finally:
                model.cpu()
        return out.double().cpu().numpy()

    @staticmethod
    def _postfix(history: dict[str, list[float]]) -> dict[str, str]:
        keys = [k for k in history if k not in ("epoch", "lr", "time_s")]
        return {k: f"{history[k][-1]:.4g}" for k in keys if not math.isnan(history[k][-1])}


class CGCNNRegressor(RegressorMixin, _CGCNNBase):
    """CGCNN property regressor on element-embedding node features, as a scikit-learn estimator.

    The crystal graph convolutional network of Xie & Grossman (PRL 120, 145301, 2018), with the
    input node vectors taken from an element embedding of the registry (CrysAtom by default,
    frozen), as in the CrysAtom paper (Section 3.3). Targets are standardised internally and
    predictions are returned in the original units. Single and multiple targets are supported.

    Parameters
    ----------
    atom_features : str or ElementEmbedding, default="crysatom"
        Input node vectors: a registry name (``"crysatom"``, ``"cgcnn"``, ``"skipatom"``,
        ``"atom2vec"``, ``"random"``, ``"onehot"``, ...), ``"name:dim"`` (e.g.
        ``"crysatom:100"``), or an :class:`~crysatom_featurizers.embeddings.ElementEmbedding`.
        The default is the 200-dimensional CrysAtom embedding.
    trainable_embeddings : bool, default=False
        Fine-tune the element vectors. They are frozen by default, as in the CrysAtom paper.
    atom_fea_len : int, default=64
        Node feature size in the convolutions (CGCNN default).
    n_conv : int, default=3
        Number of gated graph convolutions (CGCNN default).
    h_fea_len : int, default=128
        Hidden size after pooling (CGCNN default).
    n_h : int, default=1
        Number of hidden layers after pooling (CGCNN default).
    pooling : {"mean", "sum", "max"}, default="mean"
        Readout over the sites of a crystal.
    radius : float, default=8.0
        Neighbour cutoff, Å; also the last Gaussian centre of the distance expansion. The
        Gaussian step and width are those of CGCNN
        (:data:`~crysatom_featurizers.graphs.CGCNN_GRAPH`).
    max_neighbors : int, default=12
        Nearest neighbours kept per site.
    allow_isolated : bool, default=False
        A site without any neighbour within ``radius`` (e.g. an atom of a molecule in a large
        vacuum box) raises a ``ValueError`` naming the row. With True, such a site is kept
        without incoming edges; its features are then only updated through the residual path
        of the convolutions.
    epochs : int, default=100
        Maximum number of passes over the training set.
    batch_size : int, default=64
        Crystals per mini-batch (64 in the CrysAtom paper's downstream setup, Table 2).
    lr : float, default=1e-3
        Adam learning rate. The original CGCNN uses SGD (momentum 0.9) with ``lr=0.01``; the
        CrysAtom paper trains its downstream models with Adam (Table 2). With Adam, 1e-3 is the
        usual stable choice for these small models.
    weight_decay : float, default=0.0
        L2 penalty of Adam.
    lr_schedule : {"constant", "cosine", "step"}, default="constant"
        ``"cosine"``: cosine annealing to zero over ``epochs``. ``"step"``: multiply the
        learning rate by 0.1 at each of ``lr_milestones`` (CGCNN's ``MultiStepLR``).
    lr_milestones : sequence of int, optional
        Epochs of the ``"step"`` schedule; default ``[epochs // 2, 3 * epochs // 4]``.
    validation_fraction : float, default=0.1
        Share of the training structures held out (deterministically, from ``random_state``)
        to monitor the validation loss. The model of the epoch with the lowest validation loss
        is restored at the end. ``0`` or None: no validation; the last epoch is kept.
        The number held out is ``round(validation_fraction * n)`` (at least 1). Not used when
        ``fit`` gets ``X_val``/``y_val``.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs.
    standardize_target : bool, default=True
        Train on ``(y - mean) / std`` of the training targets (per target column) and invert
        the transform on prediction, as CGCNN's ``Normalizer`` does.
    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train and predict; ``"auto"`` picks CUDA when available. The fitted model is
        kept on the CPU, so a fitted estimator pickles and loads anywhere.
    random_state : int, RandomState instance or None, default=None
        Seeds the validation split, the weight initialisation and the shuffling. With an int,
        fitting twice on the CPU gives identical predictions.
    num_workers : int, default=0
        Worker processes used to build the crystal graphs from structures (0 or 1: in this
        process, the fastest choice for a few thousand structures). Batching needs no workers:
        it is a few tensor gathers on packed graphs.
    n_threads : int, optional
        Torch CPU threads during ``fit`` and ``predict`` (restored afterwards). None keeps
        torch's setting, capped at the number of cores this process may use. On a machine
        shared with other busy processes, ``n_threads=1`` avoids the large slowdowns that
        oversubscribed thread pools suffer (an order of magnitude and more).
    verbose : int, default=0
        ``1``: a tqdm bar over epochs with the live loss and MAE; ``2``: also a progress bar
        for the graph construction. ``0``: silent.

    Attributes
    ----------
    model_ : crysatom_featurizers.nn.CGCNN
        The trained torch module (on the CPU, in eval mode).
    history_ : pandas.DataFrame
        One row per epoch: ``epoch``, ``train_loss`` (mean squared error in standardised units,
        accumulated over the epoch's mini-batches in training mode), ``train_mae`` (in target
        units), ``val_loss``, ``val_mae`` (eval mode; NaN without validation), ``lr`` and
        ``time_s`` (wall time of the epoch, s).
    best_epoch_ : int
        Epoch (1-based) whose weights were kept.
    n_iter_ : int
        Number of epochs run.
    validation_indices_ : numpy.ndarray
        Positions in ``X`` of the structures held out for validation (empty without one, and
        when ``fit`` was given ``X_val``).
    n_targets_ : int
        Number of target columns.
    target_mean_, target_scale_ : numpy.ndarray
        Per-target mean and standard deviation used to standardise ``y`` (0 and 1 when
        ``standardize_target=False``).
    embedding_name_ : str
        Name of the element embedding used as input.
    embedding_dim_ : int
        Its dimension.
    timings_ : dict
        ``graphs_s`` (graph construction and packing) and ``training_s`` wall times, s.

    Notes
    -----
    The loss is the mean squared error, as in CGCNN. The model is
    :class:`crysatom_featurizers.nn.CGCNN`.

    Graphs passed as ``X`` must come from the same ``radius`` and ``max_neighbors``; a graph
    with a longer edge, more neighbours per site or another number of Gaussian features raises
    a ``ValueError``. Their edge features are recomputed from ``edge_dist``, so the Gaussian
    expansion is always the estimator's (step and width of
    :data:`~crysatom_featurizers.graphs.CGCNN_GRAPH`, last centre ``radius``).

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from crysatom_featurizers.estimators import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2)]  # CsCl-type cells, edge a in Å
    >>> model = CGCNNRegressor(atom_features="cgcnn", epochs=2, validation_fraction=0,
    ...                        random_state=0).fit(X, [4.0, 4.1, 4.2])
    >>> model.predict(X).shape
    (3,)
    """

    _task = "regression"

    def __init__(
        self,
        atom_features: Any = "crysatom",
        trainable_embeddings: bool = False,
        atom_fea_len: int = 64,
        n_conv: int = 3,
        h_fea_len: int = 128,
        n_h: int = 1,
        pooling: str = "mean",
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
        standardize_target: bool = True,
        device: str = "auto",
        random_state: Any = None,
        num_workers: int = 0,
        n_threads: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.atom_features = atom_features
        self.trainable_embeddings = trainable_embeddings
        self.atom_fea_len = atom_fea_len
        self.n_conv = n_conv
        self.h_fea_len = h_fea_len
        self.n_h = n_h
        self.pooling = pooling
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
        self.standardize_target = standardize_target
        self.device = device
        self.random_state = random_state
        self.num_workers = num_workers
        self.n_threads = n_threads
        self.verbose = verbose

    def _check_y(self, y: Any, n: int) -> np.ndarray:
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
                f"y contains NaN or infinite values at {rows.size} row(s) (first positions: "
                f"{rows[:5].tolist()}); drop or impute them before fitting"
            )
        self._y_ndim = arr.ndim
        self.n_targets_ = 1 if arr.ndim == 1 else int(arr.shape[1])
        return arr.reshape(n, -1)

    def _fit_target_transform(self, y_train: np.ndarray) -> np.ndarray:
        if self.standardize_target:
            mean = y_train.mean(axis=0)
            scale = y_train.std(axis=0)
            scale[~(scale > 1e-12)] = 1.0
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

    @staticmethod
    def _history_keys() -> tuple[str, ...]:
        return ("epoch", "train_loss", "train_mae", "val_loss", "val_mae", "lr", "time_s")

    def fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> CGCNNRegressor:
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


class CGCNNClassifier(ClassifierMixin, _CGCNNBase):
    """CGCNN crystal classifier on element-embedding node features, as a scikit-learn estimator.

    The same network as :class:`CGCNNRegressor` with one logit per class and a cross-entropy
    loss. Class labels may be of any hashable type (strings, integers, booleans, ...).

    Parameters
    ----------
    atom_features, trainable_embeddings, atom_fea_len, n_conv, h_fea_len, n_h, pooling, radius, \
max_neighbors, allow_isolated, epochs, batch_size, lr, weight_decay, lr_schedule, lr_milestones, \
validation_fraction, patience, device, random_state, num_workers, n_threads, verbose
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
    best_epoch_, n_iter_, validation_indices_, embedding_name_, embedding_dim_, timings_
        As in :class:`CGCNNRegressor`.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from crysatom_featurizers.estimators import CGCNNClassifier
    >>> X = [Structure(Lattice.cubic(a), [m, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a, m in [(2.6, "Mg"), (2.9, "Ca"), (2.6, "Ni"), (3.1, "Sr")]]
    >>> clf = CGCNNClassifier(atom_features="cgcnn", epochs=2, validation_fraction=0,
    ...                       random_state=0).fit(X, ["small", "large", "small", "large"])
    >>> clf.predict_proba(X).shape
    (4, 2)
    """

    _task = "classification"

    def __init__(
        self,
        atom_features: Any = "crysatom",
        trainable_embeddings: bool = False,
        atom_fea_len: int = 64,
        n_conv: int = 3,
        h_fea_len: int = 128,
        n_h: int = 1,
        pooling: str = "mean",
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
    ) -> None:
        self.atom_features = atom_features
        self.trainable_embeddings = trainable_embeddings
        self.atom_fea_len = atom_fea_len
        self.n_conv = n_conv
        self.h_fea_len = h_fea_len
        self.n_h = n_h
        self.pooling = pooling
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

    @staticmethod
    def _history_keys() -> tuple[str, ...]:
        return (
            "epoch",
            "train_loss",
            "train_accuracy",
            "val_loss",
            "val_accuracy",
            "lr",
            "time_s",
        )

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
