"""CrysAtom pretraining: ``python -m training.pretrain --config training/configs/cpu.yaml --dim 200``.

Pipeline (CrysAtom, Mukherjee et al., LoG 2024, Section 3.2 and Algorithm 1):

1. corpus -> graph cache (built once, in parallel; reused when corpus and graph settings match);
2. per step: encode the batch, L_FR + L_CR on its node embeddings; encode two augmented views
   (atom masking, edge masking), mean-pool, project, SSL loss;
   ``L = alpha L_FR + beta L_CR + gamma L_SSL`` (0.25 / 0.25 / 0.5); Adam;
3. checkpoint every epoch (atomic); ``--resume`` continues from it;
4. element vectors: corpus-wide eval-mode average of the final node embeddings per element,
   L2-normalised (:mod:`training.extract`), written atomically with full metadata.

Distributed data parallel: launched by ``torchrun`` (``WORLD_SIZE > 1``) each rank takes a
contiguous slice of every global batch; the loss is normalised by global counts and the SSL
loss sees the whole global batch, so the trajectory matches a single process with the same
global batch up to BatchNorm statistics, which stay per rank.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor

from crysatom_featurizers.io import atomic_write_text
from crysatom_featurizers.nn.encoder import frozen_running_stats
from training.augment import augment_salt
from training.config import PretrainConfig
from training.extract import EXTRACTION_METHOD, extract_element_vectors
from training.graph_cache import GraphCache, atomic_torch_save, cache_key
from training.model import CrysAtomPretrainer
from training.provenance import cpu_model, git_commit, package_version

REPO_ROOT = Path(__file__).resolve().parents[1]
CITATION = (
    "Mukherjee, Ghosh, Basuchowdhuri. CrysAtom: Distributed Representation of "
    "Atoms for Crystal Property Prediction. Learning on Graphs Conference (LoG) 2024. "
    "arXiv:2409.04737"
)


# ----------------------------------------------------------------------------------------
# corpus


def smoke_structures() -> list[Any]:
    """A tiny built-in corpus of prototype crystals (used by the ``smoke`` config and tests).

    Coordinates are written out (no symmetry expansion) so that building it takes milliseconds.
    """
    from pymatgen.core import Lattice, Structure

    def fcc(a: float) -> Lattice:  # primitive face-centred cubic cell, Å
        h = a / 2
        return Lattice([[0, h, h], [h, 0, h], [h, h, 0]])

    out = []
    for a, b, lat in [
        ("Na", "Cl", 5.69),
        ("Mg", "O", 4.21),
        ("K", "Br", 6.6),
        ("Li", "F", 4.03),
        ("Ca", "S", 5.69),
        ("Ni", "O", 4.18),
    ]:  # rock salt
        out.append(Structure(fcc(lat), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    for a, b, lat in [
        ("Sr", "Ti", 3.905),
        ("Ba", "Zr", 4.19),
        ("Ca", "Ti", 3.84),
        ("K", "Nb", 4.0),
    ]:  # cubic perovskite ABO3
        out.append(
            Structure(
                Lattice.cubic(lat),
                [a, b, "O", "O", "O"],
                [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
            )
        )
    for el, lat in [("Fe", 2.87), ("W", 3.16), ("Cr", 2.88), ("Na", 4.23)]:  # bcc (cubic cell)
        out.append(Structure(Lattice.cubic(lat), [el, el], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    for el, lat in [("Cu", 3.61), ("Al", 4.05), ("Ag", 4.09), ("Pt", 3.92)]:  # fcc
        out.append(Structure(fcc(lat), [el], [[0, 0, 0]]))
    for a, b, lat in [("Ca", "F", 5.46), ("Zr", "O", 5.07), ("Ce", "O", 5.41)]:  # fluorite
        out.append(Structure(fcc(lat), [a, b, b], [[0, 0, 0], [0.25] * 3, [0.75] * 3]))
    for a, b, lat, c in [("Ti", "O", 4.59, 2.96), ("Sn", "O", 4.74, 3.19)]:  # rutile, u = 0.305
        u = 0.305
        out.append(
            Structure(
                Lattice.tetragonal(lat, c),
                [a, a, b, b, b, b],
                [
                    [0, 0, 0],
                    [0.5, 0.5, 0.5],
                    [u, u, 0],
                    [1 - u, 1 - u, 0],
                    [0.5 + u, 0.5 - u, 0.5],
                    [0.5 - u, 0.5 + u, 0.5],
                ],
            )
        )
    out.append(
        Structure(
            Lattice.hexagonal(3.25, 5.21),
            ["Zn", "Zn", "O", "O"],  # wurtzite
            [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.382], [2 / 3, 1 / 3, 0.882]],
        )
    )
    out.append(Structure(fcc(5.43), ["Si", "Si"], [[0, 0, 0], [0.25] * 3]))  # diamond
    out.append(Structure(Lattice.cubic(4.11), ["Cs", "Cl"], [[0, 0, 0], [0.5] * 3]))  # CsCl
    out.append(
        Structure(
            fcc(4.2),
            [{"Fe": 0.5, "Ni": 0.5}, "O"],  # disordered rock salt
            [[0, 0, 0], [0.5, 0.5, 0.5]],
        )
    )
    return out


def resolve_corpus(
    cfg: PretrainConfig, corpus: pd.DataFrame | None = None, *, subset: bool = True
) -> tuple[pd.DataFrame | None, dict[str, Any], str]:
    """Return ``(frame_or_None, corpus record, checksum)`` for the configured corpus.

    With ``subset=False`` the config's ``subset_size`` and ``max_sites`` are ignored (the
    whole corpus, used for vector extraction).

    For the shared sources the structure-free corpus index is used to select the subset and to
    compute its checksum; structures are decoded only when the graph cache must be built, in
    which case ``frame`` is None here and :func:`prepare_cache` loads them.
    """
    from training import corpus as corpus_mod

    if corpus is None and list(cfg.corpus_sources) == ["smoke"]:
        corpus = corpus_mod.load_structures(smoke_structures(), name="smoke")
        corpus.attrs["corpus"] = corpus_mod.corpus_info(corpus)
    if corpus is None and all(s in corpus_mod.SHARED_SOURCES for s in cfg.corpus_sources):
        index = corpus_mod.load_corpus_index(cfg.corpus_sources)
        frame = index
    else:
        if corpus is None:
            corpus = corpus_mod.load_corpus(list(cfg.corpus_sources))
        frame = corpus
    if subset and (cfg.subset_size is not None or cfg.max_sites is not None):
        n = cfg.subset_size if cfg.subset_size is not None else len(frame)
        frame = corpus_mod.select_subset(frame, n, seed=cfg.subset_seed, max_sites=cfg.max_sites)
    info = corpus_mod.corpus_info(frame)
    checksum = info.get("subset", {}).get("checksum") or info["checksum"]
    return frame, info, checksum


def _load_structures_for(index: pd.DataFrame, cfg: PretrainConfig) -> list[Any]:
    """Structures of the rows of a structure-free index (shared sources), in index order.

    Only the shared json files are decoded and rows are picked by their source id, so the
    de-duplication keys of the whole corpus are not recomputed.
    """
    from matminer.utils.io import load_dataframe_from_json

    from training import corpus as corpus_mod

    picked: dict[tuple[str, str], Any] = {}
    for source in dict.fromkeys(index["source"]):
        spec = corpus_mod.SHARED_SOURCES[source]
        wanted = set(index.loc[index["source"] == source, "source_id"].astype(str))
        frame = load_dataframe_from_json(str(corpus_mod.shared_source_path(source)), pbar=False)
        ids = frame[spec.id_column].astype(str)
        rows = frame.loc[ids.isin(wanted)]
        for sid, structure in zip(ids[rows.index], rows["structure"]):
            picked.setdefault((source, sid), structure)
        del frame
    missing = [k for k in zip(index["source"], index["source_id"].astype(str)) if k not in picked]
    if missing:
        raise RuntimeError(
            f"{len(missing)} corpus rows not found in the shared files, e.g. "
            f"{missing[:3]}; delete the corpus index in training/cache"
        )
    return [picked[k] for k in zip(index["source"], index["source_id"].astype(str))]


def prepare_cache(
    cfg: PretrainConfig, frame: pd.DataFrame, info: dict[str, Any], checksum: str, rank: int = 0
) -> GraphCache:
    """Open the graph cache of this corpus and graph settings, building it on rank 0 if needed."""
    path = Path(cfg.cache_dir)
    if not path.is_absolute():
        path = REPO_ROOT / path
    path = path / cache_key(checksum, cfg.graph_params())
    if rank == 0 and not GraphCache.exists(path):
        if "structure" in frame.columns:
            structures = list(frame["structure"])
        else:
            structures = _load_structures_for(frame, cfg)
        record = {"corpus": info, "checksum": checksum}
        GraphCache.build(
            path,
            structures,
            cfg.graph_params(),
            info=record,
            shard_size=cfg.shard_size,
            n_jobs=cfg.graph_jobs,
            progress=cfg.progress,
        )
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    return GraphCache(path)


def extraction_cache(
    cfg: PretrainConfig,
    train_cache: GraphCache,
    corpus: pd.DataFrame | None = None,
    rank: int = 0,
) -> GraphCache:
    """The graph cache the element vectors are averaged over (``cfg.extract_corpus``).

    ``"train"``, or a config without a subset, reuses the training cache; ``"full"`` opens (or
    builds) the cache of the whole corpus.
    """
    if cfg.extract_corpus == "train" or (cfg.subset_size is None and cfg.max_sites is None):
        return train_cache
    frame, info, checksum = resolve_corpus(cfg, corpus, subset=False)
    return prepare_cache(cfg, frame, info, checksum, rank)


# ----------------------------------------------------------------------------------------
# batching


def epoch_batches(
    shard_sizes: list[int], batch_size: int, seed: int, epoch: int, min_batch: int
) -> list[tuple[int, np.ndarray]]:
    """Global batches of one epoch: ``(shard, positions)``, shuffled, grouped by shard.

    Depends only on ``(seed, epoch)``, so a resumed run and every DDP rank see the same plan.
    """
    rng = np.random.default_rng([seed, epoch])
    plan = []
    for s in rng.permutation(len(shard_sizes)):
        perm = rng.permutation(shard_sizes[s])
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            if len(idx) >= min_batch:
                plan.append((int(s), idx))
    return plan


# ----------------------------------------------------------------------------------------
# distributed helpers


def _dist_setup() -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    return rank, world, device


def _gather_with_local_grad(z: Tensor, sizes: list[int], rank: int, world: int) -> Tensor:
    """All ranks' rows of ``z`` concatenated in rank order; only the local rows carry grad."""
    if world == 1:
        return z
    width = max(sizes)
    padded = z.new_zeros((width, z.shape[1]))
    padded[: z.shape[0]] = z.detach()
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    rows = [z if r == rank else parts[r][: sizes[r]] for r in range(world)]
    return torch.cat(rows)


# ----------------------------------------------------------------------------------------
# checkpoints and files


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 (global state other libraries may use)
    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_version": random.getstate()[0],
        "python_gauss": random.getstate()[2],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    name, key, *rest = state["numpy"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def hardware_info(device: torch.device, world: int) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "world_size": world,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def write_vectors(result: dict[str, Any], metadata: dict[str, Any], path: Path) -> Any:
    """Write element vectors as an :class:`ElementEmbedding` json file, atomically."""
    from crysatom_featurizers.embeddings import ElementEmbedding

    emb = ElementEmbedding.from_dict(result["vectors"], name="crysatom", metadata=metadata)
    emb.to_json(path)  # written to a temporary name, then renamed
    return emb


# ----------------------------------------------------------------------------------------
# training


def run_pretraining(
    cfg: PretrainConfig,
    *,
    out_dir: str | os.PathLike | None = None,
    vectors_path: str | os.PathLike | None = None,
    corpus: pd.DataFrame | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    device: torch.device | str | None = None,
    cache: GraphCache | None = None,
    extract_only: bool = False,
) -> dict[str, Any]:
    """Pretrain CrysAtom and extract element vectors.

    Parameters
    ----------
    cfg : PretrainConfig
    out_dir : path-like, optional
        Run folder for ``metrics.jsonl``, ``checkpoint.pt`` and ``summary.json``; defaults to
        ``<runs_dir>/<name>_d<dim>_<ssl>``.
    vectors_path : path-like, optional
        Where to write the element vectors; defaults to ``<out_dir>/crysatom_<dim>.json``.
    corpus : DataFrame, optional
        A corpus frame (``training.corpus.load_corpus``) overriding ``cfg.corpus_sources``.
    resume : bool
        Continue from ``<out_dir>/checkpoint.pt`` if it exists.
    stop_after_epoch : int, optional
        Stop after this many epochs without extracting (simulates an interruption).
    device : optional
        Overrides the automatic choice (CUDA if available).
    cache : GraphCache, optional
        An already built graph cache to train on (skips corpus loading; the corpus record is
        taken from the cache manifest).
    extract_only : bool
        Skip training: load ``<out_dir>/checkpoint.pt`` (which must exist) and extract the
        vectors from it, e.g. over another extraction corpus. The metadata keeps the
        checkpoint's training history and wall time.

    Returns
    -------
    dict
        ``history`` (per-epoch records), ``epochs_run``, ``vectors_path`` (None if stopped
        early), ``extraction`` (counts and absent elements), ``wall_time_s``.
    """
    t_start = time.time()
    rank, world, auto_device = _dist_setup()
    device = torch.device(device) if device is not None else auto_device
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out = (
        Path(out_dir)
        if out_dir is not None
        else (REPO_ROOT / cfg.runs_dir / f"{cfg.name}_d{cfg.dim}_{cfg.ssl}")
    )
    if extract_only:
        # the checkpoint's own settings describe the vectors; only the extraction ones vary
        ckpt_path = out / "checkpoint.pt"
        if not ckpt_path.exists():
            raise FileNotFoundError(f"extract_only needs a checkpoint; none at {ckpt_path}")
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)["config"]
        keep = (
            "extract_corpus",
            "progress",
            "threads",
            "cache_dir",
            "graph_jobs",
            "compile_convs",
        )
        cfg = PretrainConfig.from_dict({**saved, **{k: getattr(cfg, k) for k in keep}})
    vec_path = Path(vectors_path) if vectors_path is not None else out / f"crysatom_{cfg.dim}.json"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    if cache is None:
        frame, info, checksum = resolve_corpus(cfg, corpus)
        cache = prepare_cache(cfg, frame, info, checksum, rank)
        del frame
    else:
        info = cache.manifest.get("info", {}).get("corpus", {})
        checksum = cache.manifest.get("info", {}).get("checksum", "")

    torch.manual_seed(cfg.seed)
    model = CrysAtomPretrainer(cfg).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    ckpt_path = out / "checkpoint.pt"
    if (resume or extract_only) and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _set_rng_state(ckpt["rng"])
        history = list(ckpt["history"])
        start_epoch = int(ckpt["epoch"])
        prior_wall = float(ckpt.get("train_wall_s", 0.0))
        trained_at = ckpt.get("git_commit")
    else:
        prior_wall = 0.0
        trained_at = None
    train_model: torch.nn.Module = model
    if world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    log_path = out / "metrics.jsonl"
    if rank == 0 and not resume and log_path.exists():
        log_path.unlink()
    min_batch = max(cfg.min_batch, 2 * world)
    train_wall = prior_wall
    budget_stop = False
    for epoch in range(start_epoch, start_epoch if extract_only else cfg.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
        if cfg.time_budget_s is not None and history:
            # every rank decides on rank 0's clock, so all ranks stop together
            last = max(h["wall_s"] for h in history[-3:])
            over = torch.tensor(float(train_wall - prior_wall + last > cfg.time_budget_s))
            if world > 1:
                dist.broadcast(over, 0)
            if bool(over):
                budget_stop = True
                break
        record = _train_epoch(
            cfg, train_model, model, optimizer, cache, epoch, rank, world, device, min_batch
        )
        train_wall += record["wall_s"]
        history.append(record)
        if rank == 0:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": _rng_state(),
                    "epoch": epoch + 1,
                    "history": history,
                    "train_wall_s": train_wall,
                    "config": cfg.to_dict(),
                    "git_commit": git_commit(),
                },
                ckpt_path,
            )
        if not math.isfinite(record["loss"]):
            raise FloatingPointError(
                f"loss became {record['loss']} at epoch {epoch + 1}; lower the learning rate"
            )
    epochs_run = len(history)
    result: dict[str, Any] = {
        "history": history,
        "epochs_run": epochs_run,
        "vectors_path": None,
        "out_dir": str(out),
        "stopped_by_time_budget": budget_stop,
    }
    stopped = stop_after_epoch is not None and epochs_run < cfg.epochs and not budget_stop
    if rank == 0 and not stopped:
        t_extract = time.time()
        ext_cache = extraction_cache(cfg, cache, corpus)
        ext_manifest = ext_cache.manifest.get("info", {})
        ext = extract_element_vectors(
            model,
            ext_cache,
            device=device,
            batch_size=max(cfg.batch_size, 128),
            progress=cfg.progress,
        )
        wall = time.time() - t_start
        final = history[-1] if history else {}
        metadata = {
            "source": "CrysAtom pretraining (training/pretrain.py)",
            "citation": CITATION,
            "license": "MIT (vectors derived from JARVIS-DFT (NIST) and Materials Project "
            "(CC-BY 4.0) structures)"
            if checksum
            else "MIT",
            "description": f"CrysAtom element vectors, {cfg.dim}-dim, config {cfg.name!r}, "
            f"SSL {cfg.ssl}",
            "dim": cfg.dim,
            "corpus": info,
            "corpus_names": info.get("names"),
            "corpus_size": cache.num_crystals,
            "corpus_checksum": checksum,
            "extraction_corpus": {
                "which": "training crystals" if ext_cache is cache else "whole corpus",
                "size": ext["num_crystals"],
                "checksum": ext_manifest.get("checksum", checksum),
            },
            "config": cfg.to_dict(),
            "seed": cfg.seed,
            "epochs_run": epochs_run,
            "stopped_by_time_budget": budget_stop,
            "final_losses": {k: final.get(k) for k in ("loss", "fr", "cr", "ssl")},
            "loss_history": [
                {k: h.get(k) for k in ("epoch", "loss", "fr", "cr", "ssl")} for h in history
            ],
            "hardware": hardware_info(device, world),
            "train_wall_time_s": round(train_wall, 1),
            # an extract-only invocation adds its time to the checkpoint's training time
            "wall_time_s": round(train_wall + time.time() - t_extract if extract_only else wall, 1),
            "extraction_wall_time_s": round(time.time() - t_extract, 1),
            "git_commit": git_commit(),
            "training_git_commit": (
                _training_commit(trained_at, history, vec_path) if extract_only else git_commit()
            ),
            "package_version": package_version(),
            "extraction_method": EXTRACTION_METHOD,
            "element_counts": ext["counts"],
            "element_weights": ext["weights"],
            "absent_elements": ext["absent"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_vectors(ext, metadata, vec_path)
        result.update(
            {
                "vectors_path": str(vec_path),
                "extraction": {"counts": ext["counts"], "absent": ext["absent"]},
            }
        )
        summary = {k: v for k, v in metadata.items() if k not in ("element_weights",)}
        summary["vectors_path"] = str(vec_path)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    result["wall_time_s"] = time.time() - t_start
    return result


def _training_commit(saved: str | None, history: list[dict[str, Any]], path: Path) -> str | None:
    """Commit the checkpoint was trained at: stored in it, or, for checkpoints written before
    it was stored, that of the vector file being replaced if it comes from the same training
    run (identical loss history)."""
    if saved is not None or not path.exists():
        return saved
    try:
        old = json.loads(path.read_text())["metadata"]
    except (OSError, ValueError, KeyError):
        return None
    keys = ("epoch", "loss", "fr", "cr", "ssl")
    ours = [{k: h.get(k) for k in keys} for h in history]
    if old.get("loss_history") == ours:
        return old.get("training_git_commit") or old.get("git_commit")
    return None


def _sequential_ssl_backward(
    model: CrysAtomPretrainer, batch: Any, salt: int, gamma: float
) -> float:
    """Backpropagate ``gamma * L_SSL`` holding one view's encoder graph at a time.

    View 1 is encoded with autograd; view 2 is first encoded without it (BatchNorm running
    statistics frozen) to get the loss, whose backward frees view 1's graph and yields the
    gradient w.r.t. view 2's projection; view 2 is then re-encoded with autograd and
    backpropagated with it. Three encoder forward passes instead of the joint mode's two, the
    same gradient, and running statistics updated once per view in the same order.
    """
    z1 = model.view_projection(batch, salt, 1)
    with frozen_running_stats(model), torch.no_grad():
        z2 = model.view_projection(batch, salt, 2)
    z2.requires_grad_()
    ssl = model.ssl_loss(z1, z2)
    (gamma * ssl).backward()
    model.view_projection(batch, salt, 2).backward(z2.grad)
    return float(ssl.detach())


def _train_epoch(
    cfg: PretrainConfig,
    train_model: torch.nn.Module,
    model: CrysAtomPretrainer,
    optimizer: torch.optim.Optimizer,
    cache: GraphCache,
    epoch: int,
    rank: int,
    world: int,
    device: torch.device,
    min_batch: int,
) -> dict[str, Any]:
    train_model.train()
    plan = epoch_batches(cache.shard_sizes, cfg.batch_size, cfg.seed, epoch, min_batch)
    sums = {"loss": 0.0, "fr": 0.0, "cr": 0.0, "ssl": 0.0}
    n_crystals = 0
    bar = None
    if cfg.progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=len(plan),
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            mininterval=1 if sys.stderr.isatty() else 30,
            file=sys.stderr,
        )
    t0 = time.time()
    shard_id, shard = -1, None
    for s, global_idx in plan:
        if s != shard_id:
            shard_id, shard = s, cache.load_shard(s)
        parts = np.array_split(global_idx, world)
        sizes = [len(p) for p in parts]
        batch = shard.batch(parts[rank]).to(device)
        salt = augment_salt(cfg.seed, epoch)
        # One process: backward the reconstruction terms before encoding the two SSL views, so
        # that at most two encoder passes are held in memory (same gradient, summed). Under DDP
        # a single forward/backward per step keeps gradient synchronisation simple.
        split = world == 1 and model.projector is not None
        optimizer.zero_grad(set_to_none=True)
        out = train_model(batch, salt, part="ul" if split else "all")
        counts = torch.stack(
            [out["fr_count"].to(device).float(), out["cr_weight"].to(device).float()]
        ).detach()
        loss_sums = torch.stack([out["fr_sum"].detach(), out["cr_sum"].detach()])
        if world > 1:
            dist.all_reduce(counts)
            dist.all_reduce(loss_sums)
        loss = cfg.alpha * out["fr_sum"] / counts[0] + cfg.beta * out["cr_sum"] / counts[1]
        ssl_value = 0.0
        if split:
            loss.backward()
            if cfg.ssl_views == "sequential":
                ssl_value = _sequential_ssl_backward(model, batch, salt, cfg.gamma)
                out, loss = {}, None
            else:
                out = train_model(batch, salt, part="ssl")
                loss = 0.0
        if "z1" in out:
            z1 = _gather_with_local_grad(out["z1"], sizes, rank, world)
            z2 = _gather_with_local_grad(out["z2"], sizes, rank, world)
            ssl = model.ssl_loss(z1, z2)
            loss = loss + cfg.gamma * ssl
            ssl_value = float(ssl.detach())
        # each rank's gradient covers its own rows; DDP averages over ranks, hence * world
        if loss is not None:
            (loss * world).backward()
        del out, loss
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        fr = float(loss_sums[0] / counts[0])
        cr = float(loss_sums[1] / counts[1])
        total = cfg.alpha * fr + cfg.beta * cr + cfg.gamma * ssl_value
        sums["loss"] += total
        sums["fr"] += fr
        sums["cr"] += cr
        sums["ssl"] += ssl_value
        n_crystals += len(global_idx)
        if bar is not None:
            bar.set_postfix(
                loss=f"{total:.4f}",
                fr=f"{fr:.4f}",
                cr=f"{cr:.4f}",
                ssl=f"{ssl_value:.3f}",
                refresh=False,
            )
            bar.update(1)
    if bar is not None:
        bar.close()
    wall = time.time() - t0
    steps = max(len(plan), 1)
    record = {
        "epoch": epoch + 1,
        **{k: v / steps for k, v in sums.items()},
        "steps": len(plan),
        "crystals": n_crystals,
        "wall_s": round(wall, 3),
        "crystals_per_s": round(n_crystals / wall, 2) if wall > 0 else None,
        "lr": optimizer.param_groups[0]["lr"],
        "world_size": world,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return record


# ----------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.pretrain", description=__doc__.split("\n")[0]
    )
    p.add_argument("--config", default="cpu", help="YAML config path or name (paper, cpu, smoke)")
    p.add_argument("--dim", type=int, default=None, help="vector dimension (encoder width)")
    p.add_argument("--ssl", choices=["bt", "vicreg", "ntxent", "none"], default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="run folder (logs, checkpoint, summary)")
    p.add_argument("--vectors", default=None, help="output vector file (json)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--stop-after-epoch", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--compile-convs",
        action="store_true",
        help="compile the convolutions with torch.compile (less memory; needs a C++ compiler "
        "on CPU)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        help="training wall-clock budget in seconds (stops at an epoch boundary)",
    )
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="build (or check) the graph caches for training and extraction, then exit",
    )
    p.add_argument(
        "--extract-only",
        action="store_true",
        help="no training: extract the vectors from the run's checkpoint (--out)",
    )
    p.add_argument(
        "--extract-corpus",
        choices=["full", "train"],
        default=None,
        help="crystals the vectors are averaged over (default: the config's extract_corpus)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        "dim": args.dim,
        "ssl": args.ssl,
        "epochs": args.epochs,
        "lr": args.lr,
        "threads": args.threads,
        "time_budget_s": args.time_budget,
        "extract_corpus": args.extract_corpus,
    }
    if args.no_progress:
        overrides["progress"] = False
    if args.compile_convs:
        overrides["compile_convs"] = True
    cfg = PretrainConfig.from_yaml(args.config, **overrides)
    if args.prepare_only:
        if cfg.threads:
            torch.set_num_threads(int(cfg.threads))
        frame, info, checksum = resolve_corpus(cfg)
        cache = prepare_cache(cfg, frame, info, checksum)
        del frame
        ext = extraction_cache(cfg, cache)  # built here too, so parallel runs share it
        print(
            json.dumps(
                {
                    "cache": str(cache.path),
                    "crystals": cache.num_crystals,
                    "shards": cache.num_shards,
                    "corpus_checksum": checksum,
                    "extraction_cache": str(ext.path),
                    "extraction_crystals": ext.num_crystals,
                }
            )
        )
        return 0
    result = run_pretraining(
        cfg,
        out_dir=args.out,
        vectors_path=args.vectors,
        resume=args.resume,
        stop_after_epoch=args.stop_after_epoch,
        extract_only=args.extract_only,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        last = result["history"][-1] if result["history"] else {}
        print(
            json.dumps(
                {
                    "epochs_run": result["epochs_run"],
                    "final": last,
                    "vectors": result["vectors_path"],
                    "wall_time_s": round(result["wall_time_s"], 1),
                }
            )
        )
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
