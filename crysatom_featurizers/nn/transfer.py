"""Transfer from a pretrained encoder by knowledge distillation (CrysGNN, Das et al., AAAI 2023).

The property model (the *student*) is trained with

    L = delta * L_task + (1 - delta) * L_KD,    L_KD = mean ||W h_student - h_teacher||^2

(CrysGNN Eq. 3-4), where ``h_student`` are the student's node embeddings after a chosen
layer, ``W`` a learned linear projection to the teacher's width and ``h_teacher`` the node
embeddings of the frozen pretrained encoder. The teacher is deterministic in eval mode, so its
embeddings are computed once per crystal (:func:`node_embeddings`) and gathered with every
mini-batch as ``GraphBatch.node_targets``; an epoch then costs little more than a vanilla one.
Fine-tuning (CrysXPP) needs no module of its own: :meth:`CGCNN.from_encoder
<crysatom_featurizers.nn.CGCNN.from_encoder>` starts a model from the encoder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from crysatom_featurizers.graphs import PackedGraphs
from crysatom_featurizers.nn.train import index_batches

__all__ = ["DistilledModel", "NodeDistillation", "node_embeddings"]


class NodeDistillation(nn.Module):
    """CrysGNN's distillation loss between student and teacher node embeddings.

    Parameters
    ----------
    student_dim : int
        Width of the student's node embeddings.
    teacher_dim : int
        Width of the teacher's node embeddings; the student's are projected to it by a
        learned ``Linear(student_dim, teacher_dim)``.

    Notes
    -----
    **Tensor shapes.**

    ``student: Float[N, student_dim]``, ``teacher: Float[N, teacher_dim]`` -> a 0-d loss, the
    squared distance averaged over nodes and teacher dimensions.

    """

    def __init__(self, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        self.projection = nn.Linear(int(student_dim), int(teacher_dim))

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        if student.shape[0] != teacher.shape[0]:
            raise ValueError(
                f"student and teacher embeddings cover {student.shape[0]} and "
                f"{teacher.shape[0]} nodes"
            )
        return F.mse_loss(self.projection(student), teacher)


class DistilledModel(nn.Module):
    """A graph-network student trained with a distillation term.

    ``forward`` is the student's prediction (the teacher is not needed to predict);
    :meth:`training_loss` adds ``(1 - delta) * L_KD`` for the training loop of
    :func:`crysatom_featurizers.nn.train.train_model`.

    Parameters
    ----------
    student : nn.Module
        The property model, e.g. a :class:`~crysatom_featurizers.nn.CGCNN`. It provides
        ``encode_layers(batch)`` (node embeddings after each layer, the input map first),
        ``pool(batch, nodes)``, ``head(crystals)``, ``node_dim`` (width of the node
        embeddings) and ``num_node_layers`` (length of ``encode_layers``).
    teacher_dim : int
        Width of the teacher's node embeddings (``batch.node_targets``).
    delta : float
        Weight of the task loss, in [0, 1]; 1 is plain supervised training.
    layer : int
        Student layer whose node embeddings are distilled: 0 after the input map, ``k`` after
        the ``k``-th convolution, negative values counted from the last (-1, the default, is
        the output of the last convolution).
    """

    def __init__(
        self, student: nn.Module, teacher_dim: int, delta: float = 0.5, layer: int = -1
    ) -> None:
        super().__init__()
        n_layers = int(student.num_node_layers)
        if not -n_layers <= int(layer) < n_layers:
            raise ValueError(
                f"layer must be in [{-n_layers}, {n_layers - 1}] for a student with "
                f"{n_layers - 1} convolutions, got {layer}"
            )
        if not 0.0 <= float(delta) <= 1.0:
            raise ValueError(f"delta must be in [0, 1], got {delta!r}")
        self.student = student
        self.delta = float(delta)
        self.layer = int(layer)
        self.distillation = NodeDistillation(student.node_dim, teacher_dim)

    def forward(self, batch: Any) -> Tensor:
        return self.student(batch)

    def training_loss(
        self, batch: Any, target: Tensor, criterion: Callable[[Tensor, Tensor], Tensor]
    ) -> tuple[Tensor, Tensor]:
        """``delta * criterion(out, target) + (1 - delta) * L_KD`` and the predictions ``out``.

        Raises
        ------
        ValueError
            If the batch carries no teacher embeddings (``node_targets``).
        """
        teacher = getattr(batch, "node_targets", None)
        if teacher is None:
            raise ValueError(
                "distillation needs the teacher's node embeddings in batch.node_targets "
                "(set PackedGraphs.node_targets, e.g. with node_embeddings)"
            )
        layers = self.student.encode_layers(batch)
        out = self.student.head(self.student.pool(batch, layers[-1]))
        task = criterion(out, target)
        if self.delta == 1.0:
            return task, out
        kd = self.distillation(layers[self.layer], teacher)
        return self.delta * task + (1.0 - self.delta) * kd, out


def node_embeddings(model: nn.Module, packed: PackedGraphs, batch_size: int = 256) -> Tensor:
    """Node embeddings ``Float[N, atom_fea_len]`` of ``model``'s encoder for every crystal of
    ``packed``, in the packed node order (eval mode, no gradients).

    Use it to compute a frozen teacher's embeddings once and store them as
    ``packed.node_targets``.
    """
    was_training = model.training
    model.eval()
    outs = []
    try:
        with torch.inference_mode():
            index = torch.arange(len(packed), device=packed.num_nodes.device)
            for chunk in index_batches(index, int(batch_size)):
                outs.append(model.encode(packed.batch(chunk)))
    finally:
        model.train(was_training)
    return torch.cat(outs).clone()  # out of inference mode: usable as a training target
