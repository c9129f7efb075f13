"""Supervised training of a graph model on packed crystal graphs.

:func:`train_model` runs the epochs of every graph estimator (CGCNN, ALIGNN and any registered
network; regression and classification, plain, fine-tuned or distilled): Adam, an optional learning-rate
schedule, shuffled mini-batches gathered from :class:`~crysatom_featurizers.graphs.PackedGraphs`,
evaluation on a validation subset after every epoch, early stopping and restoring the weights of
the best epoch. :func:`predict_packed` runs a model over packed graphs in evaluation mode, and
:func:`torch_runtime` / :func:`resolve_device` set up where and how torch computes.

Everything here is torch-level: targets are tensors, the criterion and metric are callables, and
nothing depends on scikit-learn.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from crysatom_featurizers.graphs import PackedGraphs
from crysatom_featurizers.persistence import (
    load_checkpoint,
    make_checkpoint_folder,
    save_checkpoint,
)

__all__ = [
    "BATCH_SCHEDULES",
    "LR_SCHEDULES",
    "MAX_EXPANDED_EDGE_BYTES",
    "OPTIMIZERS",
    "TrainResult",
    "TrainSettings",
    "history_keys",
    "index_batches",
    "make_scheduler",
    "predict_packed",
    "resolve_device",
    "size_bucketed_batches",
    "torch_runtime",
    "train_model",
]

LR_SCHEDULES = ("constant", "cosine", "step", "onecycle")
#: Schedules stepped after every mini-batch rather than every epoch.
BATCH_SCHEDULES = ("onecycle",)
#: Optimisers of :func:`train_model`: Adam with an L2 penalty, or AdamW's decoupled decay.
OPTIMIZERS = ("adam", "adamw")
#: Share of the steps of the "onecycle" schedule spent rising to the peak rate (torch's, and
#: the ALIGNN authors' default).
ONECYCLE_PCT_START = 0.3
# Learning-rate factor at each milestone of the "step" schedule (CGCNN's MultiStepLR gamma).
STEP_GAMMA = 0.1
# Largest Gaussian edge-feature table (bytes) computed once per fit; above it, per batch.
MAX_EXPANDED_EDGE_BYTES = 512 * 2**20
# Smallest mini-batch of evaluation and prediction passes (no gradients, so larger is cheaper).
_EVAL_BATCH = 256


# --------------------------------------------------------------------------------------------
# Runtime
# --------------------------------------------------------------------------------------------


def resolve_device(device: Any) -> torch.device:
    """``"auto"`` (or None) -> CUDA when available, else CPU; ``"cpu"``/``"cuda[:i]"`` checked.

    Raises
    ------
    ValueError
        For another device type, or CUDA without a CUDA-enabled torch.
    """
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
def torch_runtime(
    device: torch.device, n_threads: int | None, seed: int | None = None
) -> Iterator[None]:
    """Thread count, deterministic CPU kernels and a private RNG, all restored on exit.

    Parameters
    ----------
    device : torch.device
        Where the work runs; on the CPU, deterministic algorithms are switched on.
    n_threads : int or None
        Torch intra-op threads; None keeps torch's setting, capped at the usable cores.
    seed : int, optional
        Seed of torch's global RNG inside the block (forked, so the caller's stream is
        untouched). None leaves the RNG alone.
    """
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


# --------------------------------------------------------------------------------------------
# Batches, schedules, settings
# --------------------------------------------------------------------------------------------


def index_batches(order: Tensor, batch_size: int) -> list[Tensor]:
    """Consecutive chunks of ``order``; a trailing chunk of one crystal joins the previous one.

    Batch normalisation cannot train on a single crystal of a single site, so a lone crystal at
    the end is never left on its own.
    """
    n = int(order.numel())
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        del bounds[-2]
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


#: ``batcher(order, batch_size, generator)``: the mini-batches of one epoch from the shuffled
#: training positions ``order``.
Batcher = Callable[[Tensor, int, torch.Generator], list[Tensor]]


def size_bucketed_batches(sizes: Tensor, pool: int = 50) -> Batcher:
    """A :data:`Batcher` that groups crystals of similar size (for padded batches).

    The shuffled order is cut into pools of ``pool * batch_size`` crystals; each pool is sorted
    by ``sizes`` and cut into mini-batches, and the batches of the epoch are shuffled. Padding
    to the largest crystal of a batch then costs little, and each epoch still sees new batches.

    Parameters
    ----------
    sizes : Tensor
        ``Long[C]`` size of every crystal (e.g. its number of sites).
    pool : int
        Batches per sorting pool.
    """
    sizes = torch.as_tensor(sizes).cpu()

    def batches(order: Tensor, batch_size: int, generator: torch.Generator) -> list[Tensor]:
        order = order.cpu()
        span = int(batch_size) * int(pool)
        out: list[Tensor] = []
        for start in range(0, int(order.numel()), span):
            chunk = order[start : start + span]
            chunk = chunk[torch.argsort(sizes[chunk], stable=True)]
            out.extend(index_batches(chunk, batch_size))
        return [out[i] for i in torch.randperm(len(out), generator=generator).tolist()]

    return batches


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: str,
    epochs: int,
    milestones: Sequence[int] | None = None,
    steps_per_epoch: int = 1,
) -> Any:
    """The learning-rate scheduler of ``schedule`` (one of :data:`LR_SCHEDULES`), or None.

    ``"cosine"`` anneals to zero over ``epochs``; ``"step"`` multiplies the rate by 0.1 at each
    milestone (default ``epochs // 2`` and ``3 * epochs // 4``); ``"onecycle"`` (stepped after
    every mini-batch, ``steps_per_epoch`` of them) rises from ``lr / 25`` to ``lr`` over the
    first 30 % of the steps and anneals to ``lr / 10^4`` (torch's ``OneCycleLR``, the schedule of
    the ALIGNN paper); ``"constant"`` has none.
    """
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[float(g["lr"]) for g in optimizer.param_groups],
            total_steps=max(2, int(epochs) * int(steps_per_epoch)),
            pct_start=ONECYCLE_PCT_START,
        )
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(epochs))
    if schedule == "step":
        if milestones is None:
            milestones = sorted({max(1, epochs // 2), max(1, (3 * epochs) // 4)})
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, milestones=list(milestones), gamma=STEP_GAMMA
        )
    if schedule != "constant":
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    return None


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings of :func:`train_model`.

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training crystals.
    batch_size : int
        Crystals per mini-batch.
    lr : float
        Learning rate (the peak rate of ``"onecycle"``).
    weight_decay : float
        L2 penalty of Adam, or AdamW's decoupled weight decay.
    lr_schedule : {"constant", "cosine", "step", "onecycle"}
        See :func:`make_scheduler`.
    optimizer : {"adam", "adamw"}
        Adam (the CGCNN and CrysAtom papers) or AdamW (the ALIGNN paper).
    warmup_epochs : int
        Raise the rate linearly from ``lr / steps`` to its scheduled value over the mini-batches
        of the first ``warmup_epochs`` epochs (0: none; ``"onecycle"`` has its own).
    lr_milestones : sequence of int, optional
        Epochs of the ``"step"`` schedule.
    patience : int, optional
        Stop after this many epochs without a lower monitored loss.
    metric_name : str
        Name of the metric in the history columns (``train_<name>``, ``val_<name>``).
    progress : str, optional
        Label of a tqdm progress bar over epochs; None: silent.
    """

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_milestones: Sequence[int] | None = None
    patience: int | None = None
    metric_name: str = "mae"
    progress: str | None = None
    optimizer: str = "adam"
    warmup_epochs: int = 0


@dataclass
class TrainResult:
    """What :func:`train_model` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained model (on its training device, in eval mode), with the weights of
        ``best_epoch``.
    history : dict of str to list of float
        One value per epoch for each of :func:`history_keys`.
    best_epoch : int
        Epoch (1-based) whose weights were kept: the lowest validation loss, or the last epoch
        without validation.
    n_epochs : int
        Number of epochs run.
    training_s : float
        Wall time of the epochs, s.
    """

    model: nn.Module
    history: dict[str, list[float]]
    best_epoch: int
    n_epochs: int
    training_s: float


def history_keys(metric_name: str = "mae") -> tuple[str, ...]:
    """Columns of the training history for a metric called ``metric_name``."""
    return (
        "epoch",
        "train_loss",
        f"train_{metric_name}",
        "val_loss",
        f"val_{metric_name}",
        "lr",
        "time_s",
    )


# --------------------------------------------------------------------------------------------
# Training and prediction
# --------------------------------------------------------------------------------------------

#: ``metric(outputs, targets)``: the metric summed over the crystals of a batch (a 0-d tensor).
Metric = Callable[[Tensor, Tensor], Tensor]


def train_model(
    model: nn.Module,
    packed: PackedGraphs,
    targets: Tensor,
    train_index: Tensor,
    val_index: Tensor,
    criterion: Callable[[Tensor, Tensor], Tensor],
    metric: Metric,
    settings: TrainSettings,
    seed: int,
    *,
    param_groups: Sequence[dict[str, Any]] | None = None,
    frozen: nn.Module | None = None,
    frozen_epochs: int = 0,
    checkpoint: str | os.PathLike | None = None,
    fingerprint: str = "",
    batcher: Batcher | None = None,
) -> TrainResult:
    """Train ``model`` on the crystals ``train_index`` of ``packed``.

    Every epoch shuffles the training crystals (a generator seeded with ``seed``), takes one
    optimiser step per mini-batch and, with a validation subset, evaluates the loss on it. The
    weights of the epoch with the lowest validation loss are restored at the end; without
    validation the last epoch is kept and the training loss is monitored for ``patience``.

    A model with a ``training_loss(batch, target, criterion) -> (loss, outputs)`` method (such
    as :class:`~crysatom_featurizers.nn.transfer.DistilledModel`) trains on that loss; the
    training and validation losses of the history are always ``criterion`` on the model's
    outputs, so they compare with those of plain training.

    Parameters
    ----------
    model : torch.nn.Module
        Maps a :class:`~crysatom_featurizers.graphs.GraphBatch` to outputs ``Float[B, K]``.
    packed : PackedGraphs
        All crystals, on the training device.
    targets : Tensor
        Targets of all crystals of ``packed`` (first axis), on the training device.
    train_index : Tensor
        Positions of the training crystals (``Long``, any device).
    val_index : Tensor
        Positions of the validation crystals, on the training device (may be empty).
    criterion : callable
        Mean loss of a batch, ``criterion(outputs, targets)``.
    metric : callable
        See :data:`Metric`; reported per crystal in the history.
    settings : TrainSettings
    seed : int
        Seed of the shuffling.
    param_groups : sequence of dict, optional
        Adam parameter groups (``{"params": [...], "lr": ...}``), e.g. a smaller learning rate
        for a pretrained encoder; default: all of ``model.parameters()`` at ``settings.lr``.
        The history's ``lr`` column is the rate of the first group.
    frozen : torch.nn.Module, optional
        A submodule of ``model`` kept frozen (no gradients, batch norms in eval mode) during
        the first ``frozen_epochs`` epochs. The epochs after it get a fresh ``patience``
        window.
    frozen_epochs : int
        See ``frozen``; ``settings.epochs`` or more freezes it throughout.
    checkpoint : path-like, optional
        After every epoch, everything needed to continue (weights, optimiser, schedule,
        shuffling generator, early-stopping state, history) is written here atomically, as
        plain tensors and numbers (read back with ``torch.load(weights_only=True)``). When the
        file exists, training resumes after its last epoch and ends as an uninterrupted run
        would (bitwise on the CPU). An epoch whose loss is not finite is never saved.
    fingerprint : str
        Identifies the data and settings of the run; a checkpoint written under another
        fingerprint is refused instead of resumed.
    batcher : callable, optional
        How an epoch's shuffled order becomes mini-batches (:data:`Batcher`, e.g.
        :func:`size_bucketed_batches`); default: consecutive chunks (:func:`index_batches`).

    Returns
    -------
    TrainResult

    Raises
    ------
    FloatingPointError
        If the training loss becomes NaN or infinite.
    ValueError
        If ``checkpoint`` holds another run (another fingerprint) or is not a checkpoint.
    """
    if settings.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {settings.optimizer!r}")
    if settings.warmup_epochs and settings.lr_schedule in BATCH_SCHEDULES:
        raise ValueError(f"the {settings.lr_schedule!r} schedule has its own warm-up")
    optimizer_class = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(
        model.parameters() if param_groups is None else [dict(g) for g in param_groups],
        lr=float(settings.lr),
        weight_decay=float(settings.weight_decay),
    )
    steps_per_epoch = max(1, math.ceil(int(train_index.numel()) / int(settings.batch_size)))
    scheduler = make_scheduler(
        optimizer,
        settings.lr_schedule,
        int(settings.epochs),
        settings.lr_milestones,
        steps_per_epoch=steps_per_epoch,
    )
    per_batch = scheduler is not None and settings.lr_schedule in BATCH_SCHEDULES
    warmup_steps = int(settings.warmup_epochs) * steps_per_epoch
    generator = torch.Generator().manual_seed(seed)
    train_t = train_index.to(device="cpu", dtype=torch.long)
    device = targets.device
    has_val = bool(val_index.numel())

    history: dict[str, list[float]] = {k: [] for k in history_keys(settings.metric_name)}
    best_loss, best_epoch, best_state, stale = math.inf, 0, None, 0
    start, spent = 1, 0.0
    if checkpoint is not None and os.path.exists(checkpoint):
        state = load_checkpoint(checkpoint, fingerprint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        history = {k: list(v) for k, v in state["history"].items()}
        best_loss, best_epoch, stale = state["best_loss"], state["best_epoch"], state["stale"]
        best_state = state["best_state"]
        start, spent = int(state["epoch"]) + 1, float(state["training_s"])
    elif checkpoint is not None:
        make_checkpoint_folder(checkpoint)  # fail now rather than after the first epoch
    bar = None
    if settings.progress is not None:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=int(settings.epochs), initial=start - 1, desc=settings.progress, unit="epoch"
        )
    t_train = time.perf_counter() - spent
    epoch = start - 1
    stopped = start > 1 and settings.patience is not None and stale >= settings.patience
    try:
        for epoch in range(start, 0 if stopped else int(settings.epochs) + 1):
            t_epoch = time.perf_counter()
            lr_now = optimizer.param_groups[0]["lr"]
            order = train_t[torch.randperm(train_t.numel(), generator=generator)]
            freeze = frozen if frozen is not None and epoch <= frozen_epochs else None
            if frozen is not None:
                frozen.requires_grad_(freeze is None)
                if epoch == frozen_epochs + 1 and epoch > 1:
                    stale = 0  # the thawed model gets its own patience window
            if batcher is None:
                batches = index_batches(order.to(device), int(settings.batch_size))
            else:
                batches = [
                    b.to(device) for b in batcher(order, int(settings.batch_size), generator)
                ]
            done = (epoch - 1) * steps_per_epoch  # mini-batch steps before this epoch

            def warmup(position: int, done: int = done) -> float:
                return min(1.0, (done + position + 1) / warmup_steps)

            train_stats = _train_epoch(
                model,
                packed,
                targets,
                batches,
                criterion,
                metric,
                optimizer,
                freeze,
                after_step=_bounded_step(scheduler) if per_batch else None,
                lr_factor=warmup if done < warmup_steps else None,
            )
            if scheduler is not None and not per_batch:
                scheduler.step()
            val_stats = (
                _evaluate(model, packed, targets, val_index, criterion, metric, settings.batch_size)
                if has_val
                else (math.nan, math.nan)
            )
            row = [epoch, *train_stats, *val_stats, lr_now, time.perf_counter() - t_epoch]
            for key, value in zip(history, row):
                history[key].append(value)
            monitored = val_stats[0] if has_val else train_stats[0]
            if monitored < best_loss:
                best_loss, best_epoch, stale = monitored, epoch, 0
                if has_val:
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
            if bar is not None:
                bar.set_postfix(_postfix(history), refresh=False)
                bar.update(1)
            if not math.isfinite(train_stats[0]):
                raise FloatingPointError(
                    f"the training loss became {train_stats[0]} at epoch {epoch}; "
                    "lower lr or check the targets"
                )
            if checkpoint is not None:
                save_checkpoint(
                    checkpoint,
                    dict(
                        fingerprint=fingerprint,
                        epoch=epoch,
                        model=model.state_dict(),
                        optimizer=optimizer.state_dict(),
                        scheduler=None if scheduler is None else scheduler.state_dict(),
                        generator=generator.get_state(),
                        torch_rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state_all()
                        if torch.cuda.is_available()
                        else [],
                        history=history,
                        best_loss=best_loss,
                        best_epoch=best_epoch,
                        best_state=best_state,
                        stale=stale,
                        training_s=time.perf_counter() - t_train,
                    ),
                )
            if settings.patience is not None and stale >= settings.patience:
                break
    finally:
        if bar is not None:
            bar.close()
        if frozen is not None:
            frozen.requires_grad_(True)
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epoch
    model.eval()
    return TrainResult(model, history, int(best_epoch), int(epoch), time.perf_counter() - t_train)


def predict_packed(
    model: nn.Module, packed: PackedGraphs, index: Tensor, batch_size: int = _EVAL_BATCH
) -> Tensor:
    """Outputs of ``model`` (eval mode, no gradients) for the crystals ``index`` of ``packed``.

    The crystals go through in chunks of at least 256 (``max(batch_size, 256)``).
    """
    model.eval()
    outs = []
    with torch.inference_mode():
        for chunk in index_batches(index, max(int(batch_size), _EVAL_BATCH)):
            outs.append(model(packed.batch(chunk)))
    return torch.cat(outs)


def _train_epoch(
    model: nn.Module,
    packed: PackedGraphs,
    targets: Tensor,
    batches: Sequence[Tensor],
    criterion: Callable[[Tensor, Tensor], Tensor],
    metric: Metric,
    optimizer: torch.optim.Optimizer,
    frozen: nn.Module | None = None,
    *,
    after_step: Callable[[], None] | None = None,
    lr_factor: Callable[[int], float] | None = None,
) -> tuple[float, float]:
    """One pass over the mini-batches ``batches``; mean loss and metric per crystal (training
    mode, except the ``frozen`` submodule, which stays in eval mode). ``after_step`` runs after
    every optimiser step (a per-batch schedule); ``lr_factor(i)`` scales the rates of the
    ``i``-th step of the epoch (a warm-up; the scheduled rates are restored afterwards)."""
    scheduled = [g["lr"] for g in optimizer.param_groups]
    model.train()
    if frozen is not None:
        frozen.eval()
    custom_loss = getattr(model, "training_loss", None)
    device = batches[0].device
    total_loss = torch.zeros((), device=device)
    total_metric = torch.zeros((), device=device)
    for position, index in enumerate(batches):
        batch = packed.batch(index)
        target = targets[index]
        if custom_loss is not None:
            loss, out = custom_loss(batch, target, criterion)
        else:
            out = model(batch)
            loss = criterion(out, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if lr_factor is not None:
            factor = lr_factor(position)
            for group, rate in zip(optimizer.param_groups, scheduled):
                group["lr"] = rate * factor
        optimizer.step()
        if after_step is not None:
            after_step()
        with torch.no_grad():
            task = loss if custom_loss is None else criterion(out.detach(), target)
            total_loss += task.detach() * index.numel()
            total_metric += metric(out.detach(), target)
    if lr_factor is not None:
        for group, rate in zip(optimizer.param_groups, scheduled):
            group["lr"] = rate
    n = sum(int(b.numel()) for b in batches)
    return float(total_loss) / n, float(total_metric) / n


def _bounded_step(scheduler: Any) -> Callable[[], None]:
    """``scheduler.step`` that stops at its last step (a custom batcher may make an epoch one
    mini-batch longer than planned)."""

    def step() -> None:
        if scheduler.last_epoch + 1 < scheduler.total_steps:
            scheduler.step()

    return step


def _evaluate(
    model: nn.Module,
    packed: PackedGraphs,
    targets: Tensor,
    index: Tensor,
    criterion: Callable[[Tensor, Tensor], Tensor],
    metric: Metric,
    batch_size: int,
) -> tuple[float, float]:
    """Loss and metric per crystal on ``index`` (eval mode)."""
    out = predict_packed(model, packed, index, batch_size)
    target = targets[index]
    return float(criterion(out, target)), float(metric(out, target)) / int(index.numel())


def _postfix(history: dict[str, list[float]]) -> dict[str, str]:
    keys = [k for k in history if k not in ("epoch", "lr", "time_s")]
    return {k: f"{history[k][-1]:.4g}" for k in keys if not math.isnan(history[k][-1])}
