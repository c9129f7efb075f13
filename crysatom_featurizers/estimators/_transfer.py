"""Fine-tuning and distillation from a pretrained encoder for the graph estimators: parameter
checks, the encoder file and the teacher's cached node embeddings (not public API)."""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Any

from crysatom_featurizers._checks import check_real
from crysatom_featurizers.graphs import GraphSettings

#: Architecture of the vanilla model when neither ``atom_fea_len`` nor ``n_conv`` is given.
DEFAULT_ATOM_FEA_LEN = 64
DEFAULT_N_CONV = 3
#: ``freeze_encoder_epochs`` value that keeps the encoder frozen throughout.
FREEZE_ALL = "all"
#: The transfer parameters and their defaults (plain training); models pickled before these
#: parameters existed get these values.
TRANSFER_DEFAULTS: dict[str, Any] = {
    "finetune": None,
    "freeze_encoder_epochs": 0,
    "encoder_lr": None,
    "distill": None,
    "distill_delta": 0.5,
    "distill_layer": -1,
}


@dataclass
class Transfer:
    """A loaded encoder and what to do with it."""

    mode: str  # "finetune" or "distill"
    source: str  # the parameter's value: a shipped name, a path, or a potential's name
    encoder: Any  # CGCNNEncoder, or None for a universal potential (distillation only)
    metadata: dict[str, Any]
    reads: Any = None  # the ElementEmbedding of input_embedding, resolved once
    potential: str | None = None  # the teacher's name when it is a universal potential
    site_dim: int = 0  # the width of its site vectors

    @property
    def input_embedding(self) -> str | None:
        if self.potential is not None:
            return None
        return str(self.metadata.get("input_embedding", "cgcnn"))

    @property
    def teacher_dim(self) -> int:
        """Width of the teacher's node embeddings."""
        return self.site_dim if self.encoder is None else int(self.encoder.hidden_dim)

    def describe(self) -> dict[str, Any]:
        """What a fitted estimator records in ``transfer_``."""
        return {
            "mode": self.mode,
            "encoder": self.source,
            "checksum": self.metadata.get("checksum"),
            "description": self.metadata.get("description"),
            "input_embedding": self.input_embedding,
            "hidden_dim": self.teacher_dim,
            "num_layers": None if self.encoder is None else self.encoder.num_layers,
        }


def _same_setting(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 1e-9


def _is_spec(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def check_transfer_params(est: Any, n_layers: int) -> None:
    """Raise ``ValueError`` on transfer parameters that cannot work, before any file is read.

    ``n_layers`` is the number of layers of the estimator's network whose node embeddings can
    be distilled after the input map (``distill_layer`` lies in ``[-(n_layers + 1),
    n_layers]``).
    """
    finetune, distill = est.finetune, est.distill
    for name, value in (("finetune", finetune), ("distill", distill)):
        if value is not None and not _is_spec(value):
            raise ValueError(
                f"{name} must be None, a shipped encoder name ('crysatom', 'uae') or the path of an "
                f"encoder file, got {type(value).__name__}"
            )
    if finetune is not None and distill is not None:
        raise ValueError(
            "finetune and distill are alternatives: start from the encoder (finetune) or learn "
            "from it (distill), not both"
        )
    freeze = est.freeze_encoder_epochs
    if not (
        freeze == FREEZE_ALL
        or (isinstance(freeze, numbers.Integral) and not isinstance(freeze, bool) and freeze >= 0)
    ):
        raise ValueError(
            f"freeze_encoder_epochs must be an integer >= 0 or {FREEZE_ALL!r}, got {freeze!r}"
        )
    lr = est.encoder_lr
    check_real("encoder_lr", lr, positive=True, allow_none=True)
    defaults = TRANSFER_DEFAULTS
    if finetune is None and (
        freeze != defaults["freeze_encoder_epochs"] or lr != defaults["encoder_lr"]
    ):
        raise ValueError(
            "freeze_encoder_epochs and encoder_lr apply to a fine-tuned encoder; set "
            "finetune='crysatom' (or an encoder file) or leave them at their defaults"
        )
    delta = est.distill_delta
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta <= 1:
        raise ValueError(
            f"distill_delta must be a number in (0, 1], got {delta!r} (0 would leave the "
            "property loss out: the head would never train)"
        )
    layer = est.distill_layer
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral):
        raise ValueError(f"distill_layer must be an integer, got {layer!r}")
    if distill is not None and not -(n_layers + 1) <= layer <= n_layers:
        raise ValueError(
            f"distill_layer must be in [{-(n_layers + 1)}, {n_layers}] for a student with "
            f"{n_layers} graph layers (0: after the input map, k: after the k-th layer), got "
            f"{layer}"
        )
    if distill is None and (
        delta != defaults["distill_delta"] or layer != defaults["distill_layer"]
    ):
        raise ValueError(
            "distill_delta and distill_layer apply to distillation; set distill='crysatom' "
            "(or an encoder file) or leave them at their defaults"
        )


def load_transfer(est: Any, settings: GraphSettings) -> Transfer | None:
    """The encoder of ``finetune`` or ``distill``, checked against the estimator's settings.

    Raises
    ------
    ValueError
        If the graphs the encoder was trained on differ from the estimator's ``settings`` (for
        distillation only the edges count: ``radius`` and ``max_neighbors``), or, for
        fine-tuning, if ``atom_fea_len``, ``n_conv`` or ``embedding`` are given and differ from
        the encoder's architecture.
    FileNotFoundError, EncoderFileError
        From :func:`crysatom_featurizers.nn.load_encoder`.
    """
    source = est.finetune if est.finetune is not None else est.distill
    if source is None:
        return None
    from crysatom_featurizers.estimators._sites import potential_name
    from crysatom_featurizers.nn.pretrained import load_encoder

    mode = "finetune" if est.finetune is not None else "distill"
    potential = potential_name(source)
    if potential is not None:
        if mode == "finetune":
            raise ValueError(
                f"finetune={source!r}: fine-tuning starts from a CGCNN encoder, and {potential} "
                f"is a universal potential; use distill={potential!r} (its site vectors teach "
                f"the network) or site_features={potential!r} (they are its node inputs)"
            )
        return potential_teacher(potential)
    encoder, metadata = load_encoder(source)
    transfer = Transfer(mode, str(source), encoder, dict(metadata))
    graph = metadata.get("graph", {})
    compared = settings.as_dict()
    if mode == "distill":  # the teacher expands the distances its own way; the edges must agree
        compared = {k: compared[k] for k in ("radius", "max_neighbors")}
    for key, value in compared.items():
        if key in graph and not _same_setting(graph[key], value):
            raise ValueError(
                f"{mode}={source!r}: the encoder was trained on graphs with {key}={graph[key]}, "
                f"this estimator builds {key}={value}; set {key}={graph[key]} (the encoder's "
                "convolutions only understand the graphs they were trained on)"
            )
    from crysatom_featurizers.embeddings import resolve

    name = transfer.input_embedding
    try:
        reads = resolve(name, None)
    except (ValueError, OSError) as exc:
        raise ValueError(
            f"{mode}={source!r}: the element vectors the encoder reads, {name!r}, cannot be "
            f"loaded ({exc})"
        ) from None
    transfer.reads = reads
    if int(reads.dim) != int(encoder.in_dim):
        raise ValueError(
            f"{mode}={source!r}: the encoder reads {encoder.in_dim}-dim element vectors, but "
            f"its file names {name!r} ({reads.dim}-dim) as its input; the file is inconsistent"
        )
    if mode == "finetune":
        for name, value in (("atom_fea_len", encoder.hidden_dim), ("n_conv", encoder.num_layers)):
            given = getattr(est, name, None)
            if given is not None and int(given) != int(value):
                raise ValueError(
                    f"finetune={source!r}: the encoder has {name}={value} (the architecture "
                    f"comes from the file), got {name}={given}; leave {name}=None"
                )
    return transfer


def potential_teacher(potential: str) -> Transfer:
    """A universal potential as the teacher of a distillation: its frozen site vectors are the
    node embeddings the student learns to reproduce."""
    from crysatom_featurizers.potentials import get_potential

    model = get_potential(potential)
    info = model.info
    metadata = {
        "checksum": f"{model.name}:{model.version}",
        "description": f"{model.name} {model.version} site vectors ({info.get('license', '')})",
    }
    return Transfer(
        "distill", potential, None, metadata, potential=model.name, site_dim=model.site_dim
    )


def check_input_embedding(transfer: Transfer, embedding: Any) -> None:
    """For fine-tuning, the element vectors given must be those the encoder was trained on."""
    want, expected = transfer.input_embedding, transfer.reads
    if embedding.name != expected.name or int(embedding.dim) != int(expected.dim):
        raise ValueError(
            f"finetune={transfer.source!r}: the encoder reads the {want!r} element vectors "
            f"({expected.dim}-dim), got embedding={embedding.name!r} ({embedding.dim}-dim); "
            "leave embedding=None to use the encoder's"
        )


def attach_teacher(
    transfer: Transfer, packed: Any, train_idx: Any, settings: GraphSettings, batch_size: int
) -> None:
    """Store the frozen teacher's node embeddings for every crystal of ``packed`` in
    ``packed.node_targets``, standardised per dimension with the training crystals' nodes.

    Raises
    ------
    ValueError
        If a structure holds an element the teacher's input vectors do not cover.
    """
    import torch

    if transfer.encoder is None:  # a universal potential: its site vectors, packed with the graphs
        raw = packed.tensors["site_features"].to(packed.num_nodes.device).float()
    else:
        raw = _encoder_node_embeddings(transfer, packed, settings, batch_size)
    is_train = torch.zeros(len(packed), dtype=torch.bool, device=raw.device)
    is_train[torch.as_tensor(train_idx, dtype=torch.long, device=raw.device)] = True
    train_nodes = raw[torch.repeat_interleave(is_train, packed.num_nodes.to(raw.device))]
    mean = train_nodes.mean(dim=0)
    std = train_nodes.std(dim=0, unbiased=False).clamp_min(1e-6)
    packed.node_targets = (raw - mean) / std


def _encoder_node_embeddings(
    transfer: Transfer, packed: Any, settings: GraphSettings, batch_size: int
) -> Any:
    """The frozen CGCNN encoder's node embeddings of every crystal of ``packed``."""
    from crysatom_featurizers.graphs import GraphSettings
    from crysatom_featurizers.nn import CGCNN, check_covered
    from crysatom_featurizers.nn.transfer import node_embeddings

    # the teacher's own distance expansion, on the student's edges (same radius and neighbours)
    graph = GraphSettings.from_dict(transfer.metadata.get("graph", {})).replace(
        radius=settings.radius, max_neighbors=settings.max_neighbors
    )
    teacher = CGCNN.from_encoder(transfer.encoder, transfer.reads, graph=graph).to(
        packed.num_nodes.device
    )
    check_covered(
        packed.tensors["species_z"].long(),
        teacher.embedding.covered,
        f"{transfer.input_embedding} (input of the distill={transfer.source!r} teacher)",
    )
    packed.node_targets = None
    student_edges, packed.edge_attr = packed.edge_attr, None  # the student's expansion
    try:
        raw = node_embeddings(teacher, packed, batch_size=max(int(batch_size), 256))
    finally:
        packed.edge_attr = student_edges
    return raw
