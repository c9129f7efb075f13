"""CGCNN and ALIGNN property regressors as scikit-learn estimators."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from sklearn.base import RegressorMixin

from crysatom_featurizers.estimators._alignn import _ALIGNNBase
from crysatom_featurizers.estimators._cgcnn import _CGCNNBase
from crysatom_featurizers.estimators._registry import register_estimator
from crysatom_featurizers.estimators._tasks import _RegressionTask
from crysatom_featurizers.graphs import ALIGNN_GRAPH, CGCNN_GRAPH

__all__ = ["ALIGNNRegressor", "CGCNNRegressor"]


@register_estimator("cgcnn")
class CGCNNRegressor(RegressorMixin, _RegressionTask, _CGCNNBase):
    """CGCNN property regressor on element-embedding node features, as a scikit-learn estimator.

    The crystal graph convolutional network of Xie & Grossman (PRL 120, 145301, 2018), with the
    input node vectors taken from an element embedding of the registry (CrysAtom by default,
    frozen), as in the CrysAtom paper (Section 3.3). Targets are standardised internally and
    predictions are returned in the original units. Single and multiple targets are supported.

    Parameters
    ----------
    embedding : str, path, ElementEmbedding or None, default=None
        Input node vectors: a registry name (``"crysatom"``, ``"cgcnn"``, ``"skipatom"``,
        ``"atom2vec"``, ``"random"``, ``"onehot"``, ...), ``"name:dim"`` (e.g.
        ``"crysatom:100"``), the path of a vector file, or an
        :class:`~crysatom_featurizers.embeddings.ElementEmbedding`; anything
        :func:`crysatom_featurizers.embeddings.resolve` accepts. None: the default vectors
        (``"uae"``, 256 numbers per element, learned from property labels; see
        :data:`crysatom_featurizers.embeddings.DEFAULT_EMBEDDING`), or with ``finetune`` the
        vectors the encoder was trained on.
    dim : int, optional
        Dimension of a registry embedding (as ``"name:dim"``; give it once).
    trainable_embeddings : bool, default=False
        Fine-tune the element vectors. They are frozen by default, as in the CrysAtom paper.
    site_features : {"chgnet", "sevennet"} or None, default=None
        Feed the network a universal interatomic potential's frozen per-site vectors (CHGNet:
        64 numbers per site, SevenNet: 128; see
        :class:`~crysatom_featurizers.featurizers.UniversalPotentialSiteFeaturizer`), so that it
        learns on top of a foundation encoder. They replace the element vectors, unless
        ``embedding`` is also given: then each node reads its element vector followed by its
        site vector. The potential runs once per crystal at ``fit`` and at ``predict``
        (results are cached by structure). Needs the ``[potentials]`` extra; not with
        ``finetune``.
    atom_fea_len : int or None, default=None
        Node feature size in the convolutions; None: 64 (CGCNN default), or the encoder's
        width with ``finetune``.
    n_conv : int or None, default=None
        Number of gated graph convolutions; None: 3 (CGCNN default), or the encoder's depth
        with ``finetune``.
    h_fea_len : int, default=128
        Hidden size after pooling (CGCNN default).
    n_h : int, default=1
        Number of hidden layers after pooling (CGCNN default).
    pooling : {"mean", "sum", "max"}, default="mean"
        Readout over the sites of a crystal.
    finetune : str, path or None, default=None
        Start the input map and the convolutions from a pretrained encoder and train them with
        a new head (CrysXPP, Das et al. 2022): a shipped encoder's name (``"crysatom"``, the
        label-free CrysAtom encoder, or ``"uae"``, learned from property labels; see
        :func:`crysatom_featurizers.nn.available_encoders`) or an encoder file. Its width,
        depth, input vectors and graph settings apply; ``atom_fea_len``, ``n_conv``,
        ``embedding``, ``radius`` or ``max_neighbors`` that differ raise a ``ValueError``.
    freeze_encoder_epochs : int or "all", default=0
        With ``finetune``: keep the encoder frozen (no gradients, batch norms in eval mode)
        for this many epochs, or throughout with ``"all"`` (only the head trains).
    encoder_lr : float, optional
        With ``finetune``: Adam learning rate of the encoder (default: ``lr``).
    distill : str, path or None, default=None
        Train this model (any ``embedding`` and architecture) with the knowledge-distillation
        loss of CrysGNN (Das et al., AAAI 2023, Eq. 3-4) against a frozen pretrained encoder
        (name or file, as ``finetune``), or a universal potential (``"chgnet"``,
        ``"sevennet"``: its per-site vectors are the teacher's node embeddings): ``distill_delta * MSE + (1 - distill_delta) *
        L_KD``, where L_KD is the mean squared distance between the model's node embeddings
        after ``distill_layer``, projected linearly to the encoder's width, and the encoder's
        node embeddings (standardised per dimension on the training crystals). The encoder
        runs once per crystal at ``fit``; it is not needed to predict.
    distill_delta : float, default=0.5
        Weight of the property loss in [0, 1] (CrysGNN's delta; 1 switches distillation
        off). Tune it on validation data, e.g. with ``GridSearchCV``.
    distill_layer : int, default=-1
        Layer of this model whose node embeddings are distilled: 0 after the input map,
        ``k`` after the ``k``-th convolution, -1 the last.
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
        L2 penalty of Adam, or the decoupled weight decay of AdamW.
    optimizer : {"adam", "adamw"}, default="adam"
        Adam, as in the CGCNN and CrysAtom papers, or AdamW, as in the ALIGNN paper (with
        ``weight_decay=1e-5`` and ``lr_schedule="onecycle"``).
    lr_schedule : {"constant", "cosine", "step", "onecycle"}, default="constant"
        ``"cosine"``: cosine annealing to zero over ``epochs``. ``"step"``: multiply the
        learning rate by 0.1 at each of ``lr_milestones`` (CGCNN's ``MultiStepLR``).
        ``"onecycle"``: stepped after every mini-batch, from ``lr / 25`` up to ``lr`` over the
        first 30 % of the steps, then down to ``lr / 10^4`` (torch's ``OneCycleLR``, the ALIGNN
        paper's schedule); with early stopping the fit may end before the cycle does.
    warmup_epochs : int, default=0
        Raise the learning rate linearly over the mini-batches of the first ``warmup_epochs``
        epochs to its scheduled value (not with ``"onecycle"``, which has its own warm-up).
    lr_milestones : sequence of int, optional
        Epochs of the ``"step"`` schedule (ignored by the others); default
        ``[epochs // 2, 3 * epochs // 4]``.
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
    checkpoint : str or path, optional
        A file that makes the fit resumable. After every epoch, everything needed to continue
        (weights, optimiser, learning-rate schedule, random generator state, early-stopping
        state and history) is written there atomically, as tensors and numbers that load with
        ``torch.load(weights_only=True)`` (no unpickling of objects). A fit that finds the
        file resumes after its last epoch and ends exactly as an uninterrupted fit would
        (bitwise on the CPU). The file records a SHA-256 of the data, parameters, element
        vectors, split and seed: a checkpoint of another fit is an error, never a silent
        restart. The file is kept after the fit (a finished fit resumes to its end at once);
        delete it to train afresh.

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
    transfer_ : dict or None
        With ``finetune`` or ``distill``: the mode, the encoder (name or path), its checksum,
        description, input vectors, width and depth. None otherwise.
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
    >>> model = CGCNNRegressor(embedding="cgcnn", epochs=2, validation_fraction=0,
    ...                        random_state=0).fit(X, [4.0, 4.1, 4.2])
    >>> model.predict(X).shape
    (3,)
    """

    def __init__(
        self,
        embedding: Any = None,
        *,
        dim: int | None = None,
        trainable_embeddings: bool = False,
        site_features: str | None = None,
        atom_fea_len: int | None = None,
        n_conv: int | None = None,
        h_fea_len: int = 128,
        n_h: int = 1,
        pooling: str = "mean",
        finetune: str | os.PathLike | None = None,
        freeze_encoder_epochs: int | str = 0,
        encoder_lr: float | None = None,
        distill: str | os.PathLike | None = None,
        distill_delta: float = 0.5,
        distill_layer: int = -1,
        radius: float = CGCNN_GRAPH.radius,
        max_neighbors: int = CGCNN_GRAPH.max_neighbors,
        allow_isolated: bool = False,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "constant",
        warmup_epochs: int = 0,
        lr_milestones: Sequence[int] | None = None,
        validation_fraction: float | None = 0.1,
        patience: int | None = None,
        standardize_target: bool = True,
        device: str = "auto",
        random_state: Any = None,
        num_workers: int = 0,
        n_threads: int | None = None,
        verbose: int = 0,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self._store_params(locals())


@register_estimator("alignn")
class ALIGNNRegressor(RegressorMixin, _RegressionTask, _ALIGNNBase):
    """ALIGNN property regressor on element-embedding node features, as a scikit-learn
    estimator.

    The atomistic line graph neural network of Choudhary & DeCost (npj Comput. Mater. 7, 185,
    2021): messages pass on the crystal graph and on its line graph, whose edges carry bond
    angles. The input node vectors come from any element embedding of the registry, frozen or
    trainable, as for :class:`CGCNNRegressor`. Targets are standardised internally and
    predictions are returned in the original units.

    Parameters
    ----------
    embedding, dim, trainable_embeddings, site_features
        As in :class:`CGCNNRegressor` (the published ALIGNN reads CGCNN's features,
        ``embedding="cgcnn"``).
    preset : {"cpu", "paper"}, default="cpu"
        Architecture. ``"paper"``: width 256, 4 ALIGNN and 4 edge-gated graph convolution
        layers, as published. ``"cpu"``: width 64, 1 + 1 layers, chosen on validation among
        the sizes whose converged fit on 1,000 crystals ends within 30 min on one CPU core
        (see the README).
    hidden_features : int, optional
        Width of atoms, bonds and bond pairs; None: the preset's.
    alignn_layers : int, optional
        ALIGNN layers (crystal graph, then line graph); None: the preset's.
    gcn_layers : int, optional
        Edge-gated convolutions on the crystal graph after them; None: the preset's.
    embedding_features : int, default=64
        Width between the two layers that embed bond lengths and bond angles.
    distill, distill_delta, distill_layer
        As in :class:`CGCNNRegressor`: CrysGNN's distillation loss against a frozen pretrained
        CGCNN encoder (``"crysatom"``, ``"uae"`` or a file) or a universal potential
        (``"chgnet"``, ``"sevennet"``), on the atom embeddings after
        ``distill_layer`` (0: after the input map, then each ALIGNN layer and each
        convolution; -1 the last). The teacher reads the same edges with its own distance
        expansion. (Fine-tuning a CGCNN encoder has no ALIGNN counterpart.)
    radius : float, default=8.0
        Neighbour cutoff, Å; the bond lengths are expanded in 80 Gaussians from 0 to
        ``radius``.
    max_neighbors : int, default=12
        Nearest neighbours kept per site, with the ones tied with the last (ALIGNN's 12).
    allow_isolated, epochs, batch_size, lr, weight_decay, optimizer, lr_schedule, warmup_epochs, \
lr_milestones, \
validation_fraction, patience, standardize_target, device, random_state, num_workers, \
n_threads, verbose, checkpoint
        As in :class:`CGCNNRegressor`. The published ALIGNN trains 300 epochs at batch 64 with
        AdamW (weight decay 1e-5) and a one-cycle schedule stepped per batch:
        ``optimizer="adamw", weight_decay=1e-5, lr_schedule="onecycle", epochs=300,
        batch_size=64``. The defaults are CGCNN's loop (Adam, a constant rate, early stopping
        on validation data), which makes the two networks comparable.

    Attributes
    ----------
    model_ : crysatom_featurizers.nn.ALIGNN
        The trained torch module (on the CPU, in eval mode).
    history_, best_epoch_, n_iter_, validation_indices_, n_targets_, target_mean_, \
target_scale_, embedding_name_, embedding_dim_, transfer_, timings_
        As in :class:`CGCNNRegressor`; ``timings_["graphs_s"]`` includes the line graphs.

    Notes
    -----
    The crystal graphs are ALIGNN's (:data:`~crysatom_featurizers.graphs.ALIGNN_GRAPH`): the
    ``max_neighbors`` nearest sites with the neighbours tied with the last one, every bond in
    both directions, with bond vectors; a line graph is built for each packed set with a few
    vectorised index operations (:func:`~crysatom_featurizers.graphs.add_line_graph`). A site
    with ``k`` bonds has ``k ** 2`` bond pairs (rock salt: 18 and 324), so the line graph
    dominates memory and time. Graphs passed as ``X`` must be built that way
    (``CrystalGraphTransformer(edge_vectors=True, symmetric=True)``); a directed graph or one
    without bond vectors raises a ``ValueError`` naming its row.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from crysatom_featurizers.estimators import ALIGNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2)]  # CsCl-type cells, edge a in Å
    >>> model = ALIGNNRegressor(embedding="cgcnn", epochs=2, validation_fraction=0,
    ...                         random_state=0).fit(X, [4.0, 4.1, 4.2])
    >>> model.predict(X).shape
    (3,)
    """

    def __init__(
        self,
        embedding: Any = None,
        *,
        dim: int | None = None,
        trainable_embeddings: bool = False,
        site_features: str | None = None,
        preset: str = "cpu",
        hidden_features: int | None = None,
        alignn_layers: int | None = None,
        gcn_layers: int | None = None,
        embedding_features: int = 64,
        distill: str | os.PathLike | None = None,
        distill_delta: float = 0.5,
        distill_layer: int = -1,
        radius: float = ALIGNN_GRAPH.radius,
        max_neighbors: int = ALIGNN_GRAPH.max_neighbors,
        allow_isolated: bool = False,
        epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "constant",
        warmup_epochs: int = 0,
        lr_milestones: Sequence[int] | None = None,
        validation_fraction: float | None = 0.1,
        patience: int | None = None,
        standardize_target: bool = True,
        device: str = "auto",
        random_state: Any = None,
        num_workers: int = 0,
        n_threads: int | None = None,
        verbose: int = 0,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        self._store_params(locals())
