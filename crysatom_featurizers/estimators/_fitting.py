"""The fit of a graph estimator: the split, the transfer options, the training run around
:func:`crysatom_featurizers.nn.train.train_model`, the fingerprint of a resumable fit, and
prediction (not public API)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, check_random_state

from crysatom_featurizers.deps import require_gnn
from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING, resolve
from crysatom_featurizers.estimators._fingerprint import run_fingerprint
from crysatom_featurizers.estimators._inputs import items_and_labels, with_validation_rows
from crysatom_featurizers.estimators._sites import coverage_table
from crysatom_featurizers.estimators._transfer import (
    FREEZE_ALL,
    Transfer,
    attach_teacher,
    check_input_embedding,
    load_transfer,
)


class _FitLoop:
    """``fit`` and ``predict`` of a graph estimator (a mixin of the estimator base)."""

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

    def _fit(self, X: Any, y: Any, X_val: Any = None, y_val: Any = None) -> Any:
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

    def _fit_state(self, X: Any, y: Any, X_val: Any, y_val: Any) -> Any:
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
        transfer = load_transfer(self, self.graph_settings())
        spec = self.embedding
        finetuning = transfer is not None and transfer.mode == "finetune"
        if spec is None and self.site_features is not None:
            # the site vectors replace the element vectors; the table only says which
            # elements the potential evaluates
            embedding = coverage_table(str(self.site_features).strip().lower())
        else:
            if spec is None:
                spec = transfer.input_embedding if finetuning else DEFAULT_EMBEDDING
            embedding = resolve(spec, self.dim, param="embedding")
        if finetuning:
            check_input_embedding(transfer, embedding)
        _, covered = embedding.lookup_table()
        emb_name = str(getattr(embedding, "name", "custom"))

        n_rows = len(items_and_labels(X)[0])
        if n_rows == 0:
            raise ValueError("X is empty: fit needs at least 2 structures")
        n_given_val = 0
        if X_val is not None:
            X, y, n_given_val = with_validation_rows(X, y, X_val, y_val)
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
            optimizer=getattr(self, "optimizer", "adam"),
            warmup_epochs=int(getattr(self, "warmup_epochs", 0)),
            patience=self.patience,
            metric_name=self._metric_name,
            progress=type(self).__name__ if self.verbose else None,
        )
        with torch_runtime(device, self.n_threads, seed):
            packed.to(device)
            y_all = torch.as_tensor(self._encode_targets(targets), device=device)
            model = self._build_model(embedding, self._n_outputs(), transfer).to(device)
            expand_edges(packed, model)
            trained = model
            if transfer is not None and transfer.mode == "distill":
                from crysatom_featurizers.nn.transfer import DistilledModel

                t_teacher = time.perf_counter()
                attach_teacher(transfer, packed, train_idx, self.graph_settings(), self.batch_size)
                graph_time += time.perf_counter() - t_teacher
                trained = DistilledModel(
                    model,
                    transfer.teacher_dim,
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
                fingerprint=run_fingerprint(
                    self, embedding, transfer, packed, targets, train_idx, val_idx, seed
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
                expand_edges(packed, model)
                index = torch.arange(len(packed), device=device)
                out = predict_packed(model, packed, index, int(self.batch_size))
            finally:
                model.cpu()
        return out.double().cpu().numpy()


def expand_edges(packed: Any, model: Any) -> None:
    """Expand every edge once with the model's distance expansion, where it has one and the
    table fits in memory (see :meth:`PackedGraphs.expand_edges`)."""
    from crysatom_featurizers.nn import train as train_mod

    expansion = getattr(model, "distance_expansion", None)
    if expansion is not None:
        packed.expand_edges(expansion, train_mod.MAX_EXPANDED_EDGE_BYTES)
