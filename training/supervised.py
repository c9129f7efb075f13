"""Element vectors and encoders learned from property labels (CrystalTransformer's "universal
atomic embeddings", Jin et al. 2024), leak-free.

``python -m training.supervised --config training/configs/supervised_cpu.yaml --frontend NAME``
trains one front-end of the config on the leak-free labels of :mod:`training.labels`
(JARVIS formation energy and MBJ band gap, MP formation energy; every crystal whose reduced
formula is held out by a benchmark split removed), single- or multi-task: the loss is the sum
over tasks of the mean squared error of the standardised targets, over the crystals that have
the label. Front-ends:

* ``kind: transformer``: :class:`~crysatom_featurizers.nn.CrystalTransformer` (as published:
  Cartesian coordinates, first-token read-out; or with minimum-image distance attention bias
  and a mean read-out);
* ``kind: cgcnn``: a CGCNN on one-hot element inputs (the learned input map is the element
  table), or the shipped CrysAtom encoder trained further (``finetune: crysatom``).

Training early-stops on the front-end's own validation crystals (held-out formulas), writes a
checkpoint after every epoch and resumes from it when run again. The run writes, under
``training/results/supervised/<frontend>/``: ``summary.json`` (history, validation MAE per
task in the label's unit, wall time, s/epoch, the leak guard's counts) and
``uae_<frontend>.json`` (the learned element vectors: each element's node vector after the
input map, for the elements of the training crystals). The checkpoint and a CGCNN front-end's
encoder go to ``<runs-dir>/<frontend>/`` (``checkpoint.pt``, ``encoder.pt``; by default
``training/runs/supervised``, which git ignores; a run that spans machines uses
``--runs-dir training/results/supervised/checkpoints``, which is committed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor

from crysatom_featurizers.graphs import CGCNN_GRAPH
from crysatom_featurizers.io import atomic_write_text
from crysatom_featurizers.nn import element_embedding_from_model, save_encoder
from crysatom_featurizers.nn.train import (
    TrainSettings,
    predict_packed,
    size_bucketed_batches,
    torch_runtime,
    train_model,
)
from training.corpus import REPO_ROOT
from training.labels import (
    FRONTEND_VAL_MODULUS,
    LABEL_TASKS,
    LabelSet,
    build_label_set,
    split_datasets,
)
from training.provenance import cpu_model, git_commit, package_version

CONFIG_DIR = REPO_ROOT / "training" / "configs"
RESULTS_DIR = REPO_ROOT / "training" / "results" / "supervised"
RUNS_DIR = REPO_ROOT / "training" / "runs" / "supervised"
TRANSFORMER_KEYS = (
    "d_model", "n_layers", "n_heads", "dim_feedforward", "readout", "coordinates",
    "distance_bias",
)  # fmt: skip
CGCNN_KEYS = ("atom_fea_len", "n_conv", "h_fea_len", "n_h")
TRAIN_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "lr_schedule", "patience")


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML config (a name such as ``supervised_cpu`` looks in ``training/configs``)."""
    p = Path(path)
    if not p.exists() and (CONFIG_DIR / f"{p.name}.yaml").exists():
        p = CONFIG_DIR / f"{p.name}.yaml"
    cfg = yaml.safe_load(p.read_text())
    if not isinstance(cfg, dict) or "frontends" not in cfg:
        raise ValueError(f"{p}: a supervised config needs a 'frontends' mapping")
    return cfg


def frontend_settings(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """The config's defaults overlaid with the front-end ``name``'s own entries."""
    if name not in cfg["frontends"]:
        raise KeyError(f"unknown front-end {name!r}; the config has {sorted(cfg['frontends'])}")
    merged = {**cfg.get("defaults", {}), **cfg["frontends"][name]}
    merged.setdefault("tasks", [t.name for t in LABEL_TASKS])
    unknown = sorted(set(merged["tasks"]) - {t.name for t in LABEL_TASKS})
    if unknown:
        raise ValueError(f"front-end {name!r}: unknown tasks {unknown}")
    return merged


# --------------------------------------------------------------------------------------------
# Losses on partly labelled targets
# --------------------------------------------------------------------------------------------


def masked_mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Sum over tasks of the mean squared error over the crystals that have the label.

    Parameters
    ----------
    outputs, targets : Tensor
        ``Float[B, T]`` predictions and standardised targets; a target is NaN where the
        crystal lacks that label. Tasks absent from the batch add nothing.

    Returns
    -------
    Tensor
        0-d loss, in squared standardised units.
    """
    mask = torch.isfinite(targets)
    diff = torch.where(mask, outputs - torch.nan_to_num(targets), torch.zeros_like(outputs))
    per_task = (diff * diff).sum(0) / mask.sum(0).clamp(min=1)
    return per_task.sum()


def masked_abs_sum(outputs: Tensor, targets: Tensor) -> Tensor:
    """Sum over the crystals of a batch of their mean absolute error over their labels.

    In standardised units, averaged over each crystal's labels: the history's ``train_mae`` and
    ``val_mae`` of a multi-task run, not a per-task MAE (the summary has those, in units).
    """
    mask = torch.isfinite(targets)
    diff = torch.where(mask, (outputs - torch.nan_to_num(targets)).abs(), torch.zeros_like(outputs))
    return (diff.sum(1) / mask.sum(1).clamp(min=1)).sum()


# --------------------------------------------------------------------------------------------
# Front-ends
# --------------------------------------------------------------------------------------------


def graph_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The front-end's crystal-graph settings: CGCNN's, overlaid with its ``graph`` entries."""
    return {
        "radius": CGCNN_GRAPH.radius,
        "max_neighbors": CGCNN_GRAPH.max_neighbors,
        "gaussian_step": CGCNN_GRAPH.gaussian_step,
        "gaussian_width": CGCNN_GRAPH.gaussian_width,
        **settings.get("graph", {}),
    }


def build_inputs(settings: dict[str, Any], labels: LabelSet) -> Any:
    """Packed graphs (CGCNN front-ends) or atom sets (transformers) of the label crystals."""
    structures = list(labels.frame["structure"])
    if settings["kind"] == "transformer":
        from crysatom_featurizers.graphs import AtomSets

        return AtomSets(structures)
    from crysatom_featurizers.graphs import PackedGraphs, structures_to_graphs

    graphs = structures_to_graphs(
        structures, **graph_settings(settings), expand_edges=False, allow_isolated=True,
        progress=True,
    )  # fmt: skip
    return PackedGraphs.from_graphs(graphs)


def build_model(settings: dict[str, Any], n_targets: int) -> tuple[torch.nn.Module, dict]:
    """The front-end network and what describes it (for the metadata)."""
    kind = settings["kind"]
    if kind == "transformer":
        from crysatom_featurizers.nn import CrystalTransformer

        arch = {k: settings[k] for k in TRANSFORMER_KEYS if k in settings}
        embedding = settings.get("embedding", "onehot")
        model = CrystalTransformer(embedding, n_targets=n_targets, **arch)
        return model, {"model": "CrystalTransformer", "embedding": embedding, **arch}
    if kind != "cgcnn":
        raise ValueError(f"front-end kind must be 'transformer' or 'cgcnn', got {kind!r}")
    from crysatom_featurizers.nn import CGCNN, load_encoder

    if settings.get("finetune"):
        encoder, enc_meta = load_encoder(settings["finetune"])
        if enc_meta.get("graph") and enc_meta["graph"] != settings.get("graph", enc_meta["graph"]):
            raise ValueError(
                f"the encoder {settings['finetune']!r} was trained on graphs {enc_meta['graph']}; "
                "set the front-end's graph to the same"
            )
        model = CGCNN.from_encoder(
            encoder, enc_meta["input_embedding"], n_targets=n_targets, h_fea_len=128
        )
        arch = {
            "model": "CGCNN",
            "start": f"encoder {settings['finetune']!r}",
            "embedding": enc_meta["input_embedding"],
            "atom_fea_len": encoder.hidden_dim,
            "n_conv": encoder.num_layers,
        }
        return model, arch
    arch = {k: settings[k] for k in CGCNN_KEYS if k in settings}
    embedding = settings.get("embedding", "onehot")
    model = CGCNN(embedding, n_targets=n_targets, **arch)
    return model, {"model": "CGCNN", "embedding": embedding, **arch}


def _fingerprint(settings: dict[str, Any], labels: LabelSet, seed: int) -> str:
    """What a checkpoint must match to be resumed: the settings (the epoch cap and patience
    only where they cannot change the trajectory), the seed, and every crystal's id, fold and
    labels."""
    kept = dict(settings)
    kept.pop("patience", None)
    if settings.get("lr_schedule", "constant") == "constant":
        kept.pop("epochs", None)  # other schedules depend on the epoch count
    digest = hashlib.sha256()
    frame = labels.frame
    for row in zip(frame["dataset"], frame["source_id"], frame["fold"]):
        digest.update("|".join(map(str, row)).encode())
    digest.update(np.ascontiguousarray(labels.targets()).tobytes())
    payload = json.dumps(
        {"settings": kept, "seed": seed, "crystals": digest.hexdigest()},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()


def depth_readout(
    model: torch.nn.Module, packed: Any, positions: np.ndarray, symbols: Sequence[str]
) -> np.ndarray:
    """Element vectors from every depth of a CGCNN front-end: the element averages of the node
    embeddings after the input map and after each convolution over the crystals
    ``positions`` (eval mode), each depth scaled to unit length, side by side, scaled to unit
    length (the read-out chosen for the CrysAtom vectors). Rows follow ``symbols``."""
    from pymatgen.core import Element

    sums: list[Tensor] | None = None
    counts = torch.zeros(119)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(positions), 256):
            batch = packed.batch(torch.as_tensor(positions[start : start + 256]))
            layers = model.encode_layers(batch)
            z = batch.z.long()
            if sums is None:
                sums = [torch.zeros(119, h.shape[1]) for h in layers]
            for total, h in zip(sums, layers):
                total.index_add_(0, z, h)
            counts.index_add_(0, z, torch.ones_like(z, dtype=counts.dtype))
    rows = [Element(s).Z for s in symbols]
    blocks = []
    for total in sums or []:
        mean = (total[rows] / counts[rows].clamp(min=1).unsqueeze(1)).double().numpy()
        blocks.append(mean / np.linalg.norm(mean, axis=1, keepdims=True))
    joined = np.concatenate(blocks, axis=1)
    return joined / np.linalg.norm(joined, axis=1, keepdims=True)


def _element_counts(labels: LabelSet) -> Counter:
    counts: Counter = Counter()
    for structure in labels.frame.loc[labels.frame["fold"] == "train", "structure"]:
        counts.update({el.symbol for el in structure.composition.elements})
    return counts


def train_frontend(
    cfg: dict[str, Any],
    name: str,
    *,
    frames: dict[str, Any] | None = None,
    data_dir: str | os.PathLike | None = None,
    results_dir: str | os.PathLike = RESULTS_DIR,
    runs_dir: str | os.PathLike = RUNS_DIR,
    splits_dir: str | os.PathLike | None = None,
    max_epochs: int | None = None,
) -> dict[str, Any]:
    """Train the front-end ``name`` of ``cfg`` (resuming its checkpoint) and write its results.

    ``max_epochs`` lowers the config's epoch cap (a resumed run past it ends at once with the
    best epoch so far; the summary says the cap stopped it). Returns the summary written to
    ``results_dir/name/summary.json``.
    """
    settings = frontend_settings(cfg, name)
    if max_epochs is not None:
        settings["epochs"] = min(int(settings["epochs"]), int(max_epochs))
    tasks = tuple(t for t in LABEL_TASKS if t.name in settings["tasks"])
    t0 = time.perf_counter()
    splits_dir = splits_dir or REPO_ROOT / cfg.get("splits_dir", "training/results/splits")
    if frames is None:
        from training.benchmark.data import load_dataset

        # every dataset the splits hold out rows of: their formulas leave all labels
        names = sorted({t.dataset for t in tasks} | set(split_datasets(splits_dir)))
        frames = {d: load_dataset(d, data_dir) for d in names}
    labels = build_label_set(
        frames,
        tasks,
        splits_dir=splits_dir,
        max_sites=settings.get("max_sites"),
        val_modulus=int(cfg.get("frontend_val_modulus", FRONTEND_VAL_MODULUS)),
    )
    folds = labels.frame["fold"].to_numpy()
    for task in labels.task_names:
        for fold in ("train", "val"):
            if not np.isfinite(labels.frame.loc[folds == fold, task]).any():
                raise ValueError(
                    f"front-end {name!r}: no {fold} crystal has the label {task!r} after the "
                    "leak guard; use more data or another frontend_val_modulus"
                )
    inputs = build_inputs(settings, labels)
    setup_s = time.perf_counter() - t0

    y = labels.targets()
    train_pos = np.flatnonzero(labels.frame["fold"].to_numpy() == "train")
    val_pos = np.flatnonzero(labels.frame["fold"].to_numpy() == "val")
    mean = np.nanmean(y[train_pos], axis=0)
    std = np.nanstd(y[train_pos], axis=0)
    flat = [t for t, sd in zip(labels.task_names, std) if not sd > 0]
    if flat:
        raise ValueError(f"front-end {name!r}: the training labels of {flat} do not vary")
    y_std = torch.as_tensor((y - mean) / std, dtype=torch.float32)

    batcher = None
    if settings["kind"] == "transformer":
        # padded batches: crystals of similar size together, and validation sorted by size
        batcher = size_bucketed_batches(inputs.sizes)
        val_pos = val_pos[np.argsort(inputs.sizes[val_pos].numpy(), kind="stable")]
    train = TrainSettings(
        **{k: settings[k] for k in TRAIN_KEYS if k in settings},
        progress=f"{name}",
    )
    seed = int(cfg.get("seed", 0))
    run_dir = Path(runs_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device("cpu")
    with torch_runtime(device, settings.get("threads", 1), seed=seed):
        model, arch = build_model(settings, len(tasks))
        result = train_model(
            model,
            inputs,
            y_std,
            torch.as_tensor(train_pos),
            torch.as_tensor(val_pos),
            criterion=masked_mse,
            metric=masked_abs_sum,
            settings=train,
            seed=seed,
            checkpoint=run_dir / "checkpoint.pt",
            fingerprint=_fingerprint(settings, labels, seed),
            batcher=batcher,
        )
        pred = predict_packed(result.model, inputs, torch.as_tensor(val_pos)).numpy()
    pred = pred * std + mean
    val_mae = {}
    for k, task in enumerate(tasks):
        have = np.isfinite(y[val_pos, k])
        val_mae[task.name] = {
            "mae": float(np.abs(pred[have, k] - y[val_pos][have, k]).mean()),
            "unit": task.unit,
            "n": int(have.sum()),
        }
    history = result.history
    epoch_times = history["time_s"]
    counts = _element_counts(labels)
    summary = {
        "frontend": name,
        "settings": settings,
        "architecture": arch,
        "labels": labels.info,
        "target_standardisation": {
            t.name: {"mean": float(m), "std": float(s)} for t, m, s in zip(tasks, mean, std)
        },
        "validation_loss": float(np.nanmin(history["val_loss"])),
        "validation_mae": val_mae,
        "best_epoch": result.best_epoch,
        "epochs_run": result.n_epochs,
        "stopped_by": "early stopping"
        if result.n_epochs - result.best_epoch >= int(settings.get("patience") or 0) > 0
        else f"epoch cap ({settings['epochs']})",
        "s_per_epoch_median": float(np.median(epoch_times)),
        "setup_s": round(setup_s, 1),
        "train_wall_time_s": round(result.training_s, 1),
        "history": history,
        "element_training_counts": dict(sorted(counts.items())),
        "hardware": {"cpu": cpu_model(), "torch_threads": settings.get("threads", 1),
                     "platform": platform.platform()},
        "git_commit": git_commit(),
        "package_version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    out_dir = Path(results_dir) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    metadata = {
        "method": "element vectors learned from property labels: each element's node vector "
        "after the trained front-end's element input map (training/supervised.py)",
        "citation": "L. Jin et al., Crystal Transformer based universal atomic embedding, "
        "arXiv:2401.09755 (2024)",
        "frontend": name,
        "architecture": arch,
        "tasks": labels.info["tasks"],
        "seen_properties": labels.info["seen_properties"],
        "unseen_properties": labels.info["unseen_properties"],
        "leak_guard": labels.info["leak_guard"],
        "label_counts": labels.info["label_counts"],
        "frontend_split": labels.info["frontend_split"],
        "validation_mae": val_mae,
        "best_epoch": result.best_epoch,
        "epochs_run": result.n_epochs,
        "stopped_by": summary["stopped_by"],
        "train_wall_time_s": summary["train_wall_time_s"],
        "hardware": summary["hardware"],
        "git_commit": summary["git_commit"],
        "license": "MIT (trained on JARVIS-DFT (NIST) and Materials Project (CC-BY 4.0) labels)",
    }
    vectors = element_embedding_from_model(
        result.model, f"uae_{name}", elements=sorted(counts), metadata=metadata
    )
    vectors.to_json(out_dir / f"uae_{name}.json")
    if settings["kind"] == "cgcnn":
        from crysatom_featurizers.embeddings import ElementEmbedding

        symbols = sorted(counts)
        readout = ElementEmbedding(
            f"uae_{name}_concat",
            symbols,
            depth_readout(result.model, inputs, train_pos, symbols),
            {
                **metadata,
                "method": "element averages of the front-end's node embeddings after the input "
                "map and after each convolution, over its training crystals (eval mode), each "
                "depth scaled to unit length, side by side, scaled to unit length "
                "(training/supervised.py: depth_readout)",
            },
        )
        readout.to_json(out_dir / f"uae_{name}_concat.json")
        graph = graph_settings(settings)
        save_encoder(
            result.model.encoder,
            run_dir / "encoder.pt",
            {**metadata, "input_embedding": arch["embedding"], "graph": graph,
             "description": f"CGCNN encoder trained on property labels ({name})"},
        )  # fmt: skip
    atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1, default=str))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.supervised", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", default="supervised_cpu", help="YAML config or its name")
    parser.add_argument("--frontend", required=True, action="append", help="front-end name(s)")
    parser.add_argument("--data-dir", default=None, help="shared data folder")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="lower epoch cap (ends a resumed run)"
    )
    parser.add_argument(
        "--runs-dir",
        default=str(RUNS_DIR),
        help="folder of the per-epoch checkpoints and CGCNN encoders (default: %(default)s); "
        "a long run kept in training/results/supervised/checkpoints resumes on any clone",
    )
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    for name in args.frontend:
        frontend_settings(cfg, name)  # unknown names fail before any work
    for name in args.frontend:
        summary = train_frontend(
            cfg, name, data_dir=args.data_dir, max_epochs=args.max_epochs, runs_dir=args.runs_dir
        )
        print(
            f"{name}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
            f"validation MAE "
            + ", ".join(
                f"{k} {v['mae']:.4g} {v['unit']}" for k, v in summary["validation_mae"].items()
            )
            + f", {summary['train_wall_time_s']:.0f} s"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
