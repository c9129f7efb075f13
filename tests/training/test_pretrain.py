"""CrysAtom pretraining: losses, connectivity targets, augmentations, training, resume, DDP."""

from __future__ import annotations

import json
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from crysatom_featurizers.graphs import GraphBatch  # noqa: E402
from crysatom_featurizers.nn.heads import (  # noqa: E402
    ConnectivityReconstructionHead,
    FeatureReconstructionHead,
    ProjectionHead,
    pair_edge_counts,
)
from crysatom_featurizers.nn.ssl import barlow_twins_loss, nt_xent_loss, vicreg_loss  # noqa: E402
from training.augment import atom_masking, edge_masking, group_ranks  # noqa: E402

# ------------------------------------------------------------------------------------------
# helpers


def _decorrelated(b: int = 256, d: int = 8, seed: int = 0) -> torch.Tensor:
    """Zero-mean, unit-variance, exactly uncorrelated columns."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(a - a.mean(0))
    return (q * b**0.5).float()


def _random_batch(sizes=(3, 1, 5, 2), degree=4, seed=0) -> GraphBatch:
    """A batch of random multigraphs: every node has ``degree`` incoming edges in its crystal."""
    g = torch.Generator().manual_seed(seed)
    sizes_t = torch.tensor(sizes)
    ptr = torch.zeros(len(sizes) + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(sizes_t, 0)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), sizes_t)
    n = int(ptr[-1])
    dst = torch.repeat_interleave(torch.arange(n), degree)
    c = batch[dst]
    src = ptr[c] + (torch.rand(dst.numel(), generator=g) * sizes_t[c]).long()
    z = torch.randint(1, 90, (n,), generator=g)
    return GraphBatch(
        z=z,
        species_z=z.clone(),
        species_weight=torch.ones(n),
        species_site_index=torch.arange(n),
        edge_index=torch.stack([src, dst]),
        edge_dist=torch.rand(dst.numel(), generator=g) * 7 + 1,
        batch=batch,
        ptr=ptr,
        rows=torch.arange(len(sizes)),
    )


# ------------------------------------------------------------------------------------------
# losses


def test_barlow_twins_zero_for_identical_decorrelated_views():
    z = _decorrelated()
    assert float(barlow_twins_loss(z, z)) < 1e-3


def test_barlow_twins_penalises_collapse_and_mismatch():
    z = _decorrelated()
    collapsed = z[:, :1].repeat(1, z.shape[1])
    loss_collapsed = float(barlow_twins_loss(collapsed, collapsed))
    # every off-diagonal correlation is 1: lambda * D * (D - 1)
    assert loss_collapsed == pytest.approx(0.0051 * 8 * 7, rel=1e-3)
    other = _decorrelated(seed=1)
    assert float(barlow_twins_loss(z, other)) > 5.0  # invariance term: no correlation
    assert float(barlow_twins_loss(z, z, lambda_=1.0)) < 1e-3


def test_vicreg_terms():
    z = _decorrelated()
    assert float(vicreg_loss(z, z)) < 1e-2
    constant = torch.ones_like(z)
    # variance hinge: std 0 -> relu(1 - sqrt(eps)) per dimension and view, coefficient 25
    assert float(vicreg_loss(constant, constant)) == pytest.approx(25 * (1 - 1e-2), rel=1e-3)
    assert float(vicreg_loss(z, z + 1.0)) == pytest.approx(25.0, rel=1e-3)  # MSE of 1


def test_nt_xent_prefers_matching_views():
    z = _decorrelated(64, 16)
    matched = float(nt_xent_loss(z, z + 0.01 * torch.randn_like(z), temperature=0.1))
    shuffled = float(nt_xent_loss(z, z[torch.randperm(64)], temperature=0.1))
    assert matched < 0.1 < shuffled
    with pytest.raises(ValueError):
        nt_xent_loss(z, z[:, :3])


# ------------------------------------------------------------------------------------------
# heads


def test_connectivity_targets_match_naive_count():
    batch = _random_batch()
    got = pair_edge_counts(batch.edge_index, batch.batch, batch.ptr, max_count=2)
    expected = []
    sizes = (batch.ptr[1:] - batch.ptr[:-1]).tolist()
    for c, n in enumerate(sizes):
        start = int(batch.ptr[c])
        for u in range(n):
            for v in range(n):
                count = sum(
                    1 for s, t in batch.edge_index.T.tolist() if t == start + u and s == start + v
                )
                expected.append(min(count, 2))
    assert got.tolist() == expected
    assert max(expected) == 2 and 0 in expected  # the test data exercises the cap and zeros


def test_connectivity_head_matches_pairwise_bilinear():
    torch.manual_seed(0)
    batch = _random_batch(sizes=(3, 1, 9, 2, 4))
    dim, hidden = 6, 3
    head = ConnectivityReconstructionHead(dim, hidden=hidden)
    x = torch.randn(batch.num_nodes, dim)
    logits, pair_index = head(x, batch.ptr)
    n_pairs = int(((batch.ptr[1:] - batch.ptr[:-1]) ** 2).sum())
    assert sorted(pair_index.tolist()) == list(range(n_pairs))
    # naive evaluation of every pair with nn.Bilinear-equivalent weights
    xn = torch.nn.functional.normalize(x, dim=-1)
    sizes = (batch.ptr[1:] - batch.ptr[:-1]).tolist()
    naive = []
    for c, n in enumerate(sizes):
        s = int(batch.ptr[c])
        for u in range(n):
            for v in range(n):
                h = torch.einsum("i,ikj,j->k", xn[s + u], head.weight, xn[s + v]) + head.bias
                naive.append(head.ffn(torch.sigmoid(h)))
    naive = torch.stack(naive)
    torch.testing.assert_close(logits[torch.argsort(pair_index)], naive, atol=1e-5, rtol=1e-5)
    loss = head.loss(x, batch.edge_index, batch.batch, batch.ptr)
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0


def test_feature_head_and_projector_shapes():
    x = torch.randn(10, 12)
    target = torch.zeros(10, 92)
    target[torch.arange(10), torch.arange(10)] = 1.0
    fr = FeatureReconstructionHead(12)
    assert fr(x).shape == (10, 92)
    assert float(fr.loss(x, target).detach()) > 0
    assert ProjectionHead(12)(x).shape == (10, 128)


def test_outer_softplus_flag_reaches_every_convolution(smoke_cfg):
    from training.config import PretrainConfig
    from training.model import CrysAtomPretrainer

    # configs written before the flag existed keep CGCNN's softplus after the residual sum
    old = {k: v for k, v in smoke_cfg.to_dict().items() if k != "outer_softplus"}
    assert PretrainConfig.from_dict(old).outer_softplus is True
    for flag in (True, False):
        model = CrysAtomPretrainer(smoke_cfg.replace(outer_softplus=flag))
        convs = list(model.encoder.convs)
        assert len(convs) == smoke_cfg.num_layers
        assert all(conv.outer_softplus is flag for conv in convs)


# ------------------------------------------------------------------------------------------
# augmentations


def test_group_ranks_are_permutations_within_groups():
    group = torch.tensor([2, 0, 2, 1, 0, 2, 2])
    ranks = group_ranks(group, torch.Generator().manual_seed(0))
    for gid in range(3):
        assert sorted(ranks[group == gid].tolist()) == list(range(int((group == gid).sum())))


def test_atom_masking_keeps_graph_consistent():
    batch = _random_batch(sizes=(10, 1, 25, 2, 3))
    view = atom_masking(batch, 0.1, torch.Generator().manual_seed(3))
    old_counts = (batch.ptr[1:] - batch.ptr[:-1]).tolist()
    new_counts = (view.ptr[1:] - view.ptr[:-1]).tolist()
    # 10% rounded half-to-even, at least 1, never all: 10->9, 1->1, 25->23, 2->1, 3->2
    expected = [n - min(max(1, round(0.1 * n)), n - 1) for n in old_counts]
    assert new_counts == expected
    assert view.batch.tolist() == sorted(view.batch.tolist())
    assert torch.equal(torch.bincount(view.batch, minlength=5), torch.tensor(new_counts))
    src, dst = view.edge_index
    assert int(view.edge_index.max()) < view.num_nodes
    assert torch.equal(view.batch[src], view.batch[dst])  # edges stay inside their crystal
    assert torch.equal(view.species_z, view.z)  # species follow their sites
    # kept edges are exactly the original edges between kept nodes
    kept_pairs = {
        (int(view.rows[view.batch[s]]), int(view.z[s]), int(view.z[t]), round(float(d), 5))
        for s, t, d in zip(src, dst, view.edge_dist)
    }
    orig_pairs = {
        (int(batch.rows[batch.batch[s]]), int(batch.z[s]), int(batch.z[t]), round(float(d), 5))
        for s, t, d in zip(*batch.edge_index, batch.edge_dist)
    }
    assert kept_pairs <= orig_pairs
    assert view.edge_index.shape[1] < batch.edge_index.shape[1]


def test_edge_masking_keeps_ninety_percent_per_node():
    batch = _random_batch(sizes=(4, 6), degree=12)
    view = edge_masking(batch, 0.1, torch.Generator().manual_seed(0))
    deg = torch.bincount(view.edge_index[1], minlength=batch.num_nodes)
    assert deg.tolist() == [11] * batch.num_nodes
    assert torch.equal(view.z, batch.z)
    # the kept edges are a subset of the original ones (with their distances)
    orig = set(zip(*batch.edge_index.tolist(), batch.edge_dist.tolist()))
    assert set(zip(*view.edge_index.tolist(), view.edge_dist.tolist())) <= orig
    other = edge_masking(batch, 0.1, torch.Generator().manual_seed(1))
    assert not torch.equal(other.edge_index, view.edge_index)


# ------------------------------------------------------------------------------------------
# end to end on the built-in smoke corpus


@pytest.fixture(scope="module")
def smoke_cfg(tmp_path_factory):
    from training.config import PretrainConfig

    cache = tmp_path_factory.mktemp("graph_cache")
    return PretrainConfig.from_yaml("smoke", cache_dir=str(cache))


def _losses(history):
    return np.array([[h["loss"], h["fr"], h["cr"], h["ssl"]] for h in history])


@pytest.fixture(scope="module")
def smoke_run(smoke_cfg, tmp_path_factory):
    from training.pretrain import run_pretraining

    out = tmp_path_factory.mktemp("smoke_full")
    return run_pretraining(smoke_cfg, out_dir=out)


def test_smoke_training_writes_valid_vector_file(smoke_run, smoke_cfg):
    from crysatom_featurizers.embeddings import ElementEmbedding

    path = Path(smoke_run["vectors_path"])
    emb = ElementEmbedding.from_json(path)
    assert emb.dim == smoke_cfg.dim
    for symbol in ("Na", "Cl", "O", "Fe", "Ni", "Si"):
        assert symbol in emb
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    assert "H" not in emb  # absent from the corpus: no vector, listed instead
    meta = emb.metadata
    assert "H" in meta["absent_elements"]
    assert meta["element_counts"]["O"] > meta["element_counts"]["Cl"] > 0
    assert meta["element_counts"]["Fe"] >= 3  # two bcc sites, corundum-free, disordered site
    for key in (
        "corpus",
        "corpus_checksum",
        "config",
        "seed",
        "epochs_run",
        "final_losses",
        "hardware",
        "wall_time_s",
        "git_commit",
        "package_version",
        "citation",
        "extraction_method",
    ):
        assert key in meta, key
    assert meta["epochs_run"] == smoke_cfg.epochs
    log = [json.loads(line) for line in (Path(smoke_run["out_dir"]) / "metrics.jsonl").open()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert all(np.isfinite([r["loss"], r["fr"], r["cr"], r["ssl"]]).all() for r in log)
    assert log[0]["crystals_per_s"] > 0


def test_resume_matches_uninterrupted_run(smoke_run, smoke_cfg, tmp_path):
    from crysatom_featurizers.embeddings import ElementEmbedding
    from training.pretrain import run_pretraining

    first = run_pretraining(smoke_cfg, out_dir=tmp_path, stop_after_epoch=1)
    assert first["epochs_run"] == 1 and first["vectors_path"] is None
    resumed = run_pretraining(smoke_cfg, out_dir=tmp_path, resume=True)
    assert resumed["epochs_run"] == 2
    np.testing.assert_allclose(
        _losses(resumed["history"]), _losses(smoke_run["history"]), rtol=1e-6, atol=1e-7
    )
    a = ElementEmbedding.from_json(smoke_run["vectors_path"])
    b = ElementEmbedding.from_json(resumed["vectors_path"])
    assert a.symbols == b.symbols
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, cfg_dicts, outs, queue):
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        WORLD_SIZE=str(world),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    import torch.distributed as dist

    from training.config import PretrainConfig
    from training.pretrain import run_pretraining

    try:
        for cfg_dict, out in zip(cfg_dicts, outs):
            result = run_pretraining(PretrainConfig.from_dict(cfg_dict), out_dir=out, device="cpu")
            if rank == 0:
                queue.put(result["history"])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_two_process_gloo_matches_single_process(smoke_run, smoke_cfg, tmp_path):
    """2 ranks x 4 crystals == 1 process x 8 crystals, same global batches.

    Without batch norm the trajectories agree to float precision (gradients and the SSL loss
    are computed over the global batch). With batch norm the statistics are per rank, which
    perturbs the trajectory slightly.
    """
    import torch.multiprocessing as mp

    from training.pretrain import run_pretraining

    no_bn = smoke_cfg.replace(batch_norm=False)
    single_no_bn = run_pretraining(no_bn, out_dir=tmp_path / "single_no_bn")
    ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
    queue = ctx.Queue()
    port = _free_port()
    cfgs = [no_bn.to_dict(), smoke_cfg.to_dict()]
    outs = [str(tmp_path / "ddp_no_bn"), str(tmp_path / "ddp_bn")]
    procs = [
        ctx.Process(target=_ddp_worker, args=(r, 2, port, cfgs, outs, queue)) for r in range(2)
    ]
    for p in procs:
        p.start()
    hist_no_bn = queue.get(timeout=150)
    hist_bn = queue.get(timeout=150)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [h["world_size"] for h in hist_bn] == [2, 2]
    assert [h["crystals"] for h in hist_bn] == [h["crystals"] for h in smoke_run["history"]]
    np.testing.assert_allclose(
        _losses(hist_no_bn), _losses(single_no_bn["history"]), rtol=1e-4, atol=1e-5
    )
    # with per-rank batch norm (4 crystals per rank here): total and reconstruction losses
    # stay close; the Barlow Twins term of an 8-crystal batch moves more but keeps its scale
    ddp, single = _losses(hist_bn), _losses(smoke_run["history"])
    np.testing.assert_allclose(ddp[:, :3], single[:, :3], rtol=0.1)
    np.testing.assert_allclose(ddp[:, 1:3], single[:, 1:3], rtol=0.02)
    assert np.all(ddp[:, 3] / single[:, 3] < 3) and np.all(single[:, 3] / ddp[:, 3] < 3)
    assert (tmp_path / "ddp_bn" / "checkpoint.pt").exists()


def test_hashed_masking_is_independent_of_batch_composition():
    from training.augment import hashed_uniform

    u = hashed_uniform(torch.arange(100_000), salt=3)
    assert 0.0 <= float(u.min()) and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01
    batch = _random_batch(sizes=(10, 4, 25), degree=12)
    full = atom_masking(batch, 0.1, salt=5)
    # the same crystals split over two "ranks" keep the same sites
    n0 = int(batch.ptr[1])
    e0 = int((batch.edge_index[1] < n0).sum())
    sub = GraphBatch(
        z=batch.z[n0:],
        species_z=batch.species_z[n0:],
        species_weight=batch.species_weight[n0:],
        species_site_index=batch.species_site_index[n0:] - n0,
        edge_index=batch.edge_index[:, e0:] - n0,
        edge_dist=batch.edge_dist[e0:],
        batch=batch.batch[n0:] - 1,
        ptr=batch.ptr[1:] - n0,
        rows=batch.rows[1:],
    )
    part = atom_masking(sub, 0.1, salt=5)
    keep_full = full.z[full.batch > 0]
    assert torch.equal(part.z, keep_full)
    assert not torch.equal(atom_masking(batch, 0.1, salt=6).z, full.z)
    e_full = edge_masking(batch, 0.1, salt=9)
    e_part = edge_masking(sub, 0.1, salt=9)
    assert torch.equal(e_part.edge_dist, e_full.edge_dist[e_full.edge_index[1] >= n0])


def test_feature_reconstruction_reductions():
    x = torch.randn(7, 12)
    target = (torch.rand(7, 92) < 0.1).float()
    per_node = FeatureReconstructionHead(12, reduction="node")
    per_entry = FeatureReconstructionHead(12, reduction="element")
    per_entry.load_state_dict(per_node.state_dict())
    total, count = per_node.loss_sum(x, target)
    assert count == 7
    torch.testing.assert_close(per_node.loss(x, target), per_entry.loss(x, target) * 92)
    with pytest.raises(ValueError):
        FeatureReconstructionHead(12, reduction="mean")


def test_sequential_ssl_views_give_the_same_gradient(smoke_cfg):
    """Encoding the SSL views one at a time (less memory) gives the joint gradient and the same
    BatchNorm running statistics."""
    from training.graph_cache import GraphCache
    from training.model import CrysAtomPretrainer
    from training.pretrain import _sequential_ssl_backward, prepare_cache, resolve_corpus

    cache: GraphCache = prepare_cache(smoke_cfg, *resolve_corpus(smoke_cfg))
    batch = cache.load_shard(0).batch(np.arange(8))
    states, grads = [], []
    for mode in ("joint", "sequential"):
        torch.manual_seed(0)
        model = CrysAtomPretrainer(smoke_cfg)
        if mode == "joint":
            out = model(batch, salt=3, part="ssl")
            (0.5 * model.ssl_loss(out["z1"], out["z2"])).backward()
        else:
            _sequential_ssl_backward(model, batch, 3, 0.5)
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        states.append({k: v.clone() for k, v in model.state_dict().items() if "running" in k})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-4, atol=1e-6)
    for k in states[0]:
        torch.testing.assert_close(states[1][k], states[0][k])


def test_activation_checkpointing_gives_the_same_gradient(smoke_cfg):
    """Recomputing the convolutions in backward changes neither the gradient nor the BatchNorm
    running statistics (the recomputation must not update them a second time)."""
    from training.graph_cache import GraphCache
    from training.model import CrysAtomPretrainer
    from training.pretrain import prepare_cache, resolve_corpus

    cache: GraphCache = prepare_cache(smoke_cfg, *resolve_corpus(smoke_cfg))
    batch = cache.load_shard(0).batch(np.arange(8))
    states, grads = [], []
    for flag in (False, True):
        torch.manual_seed(0)
        model = CrysAtomPretrainer(smoke_cfg.replace(activation_checkpointing=flag))
        assert model.encoder.checkpoint_convs is flag
        out = model(batch, salt=3, part="ssl")
        (0.5 * model.ssl_loss(out["z1"], out["z2"])).backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        states.append({k: v.clone() for k, v in model.state_dict().items() if "running" in k})
        states[-1]["tracked"] = torch.stack(
            [v for k, v in model.state_dict().items() if k.endswith("num_batches_tracked")]
        )
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for k in grads[0]:
        torch.testing.assert_close(grads[1][k], grads[0][k], rtol=1e-5, atol=1e-7)
    assert len(states[0]) > 2
    for k in states[0]:
        torch.testing.assert_close(states[1][k], states[0][k])


@pytest.mark.skipif(
    not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="no C++ compiler"
)
@pytest.mark.slow
def test_compiled_convolutions_give_the_same_losses_and_gradients(smoke_cfg):
    """torch.compile of the convolutions (fused kernels, recomputation in backward) changes
    neither the losses, the gradients, the BatchNorm statistics nor the checkpoint keys."""
    from training.graph_cache import GraphCache
    from training.model import CrysAtomPretrainer
    from training.pretrain import prepare_cache, resolve_corpus

    cache: GraphCache = prepare_cache(smoke_cfg, *resolve_corpus(smoke_cfg))
    batch = cache.load_shard(0).batch(np.arange(8))
    losses, grads, states = [], [], []
    for flag in (False, True):
        torch.manual_seed(0)
        model = CrysAtomPretrainer(smoke_cfg.replace(compile_convs=flag))
        out = model(batch, salt=3)
        loss = out["fr_sum"] + out["cr_sum"] + model.ssl_loss(out["z1"], out["z2"])
        loss.backward()
        losses.append(loss.detach())
        grads.append({k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None})
        states.append(model.state_dict())
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    # float32 sums in another order: compare relative to the norms (the floor is for the
    # biases in front of a batch norm, whose true gradient is zero and whose values are noise)
    floor = 1e-5 * torch.stack([g.norm() for g in grads[0].values()]).norm()
    for k in grads[0]:
        assert (grads[1][k] - grads[0][k]).norm() <= 1e-4 * grads[0][k].norm() + floor, k
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        torch.testing.assert_close(states[1][k], states[0][k])


def test_compiled_convolutions_need_a_compiler(smoke_cfg, monkeypatch):
    from training import model as model_mod

    monkeypatch.setattr(model_mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(model_mod.torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler"):
        model_mod.CrysAtomPretrainer(smoke_cfg.replace(compile_convs=True))


def test_extract_only_averages_over_the_whole_corpus(smoke_cfg, tmp_path):
    """Training on a subset, then extracting the vectors from the checkpoint over the whole
    corpus (extract_corpus="full") or over the training crystals only."""
    from crysatom_featurizers.embeddings import ElementEmbedding
    from training.pretrain import run_pretraining

    cfg = smoke_cfg.replace(max_sites=2, epochs=1, extract_corpus="train")
    trained = run_pretraining(cfg, out_dir=tmp_path)
    sub = ElementEmbedding.from_json(trained["vectors_path"])
    n_train = sub.metadata["corpus_size"]
    assert 4 <= n_train == sub.metadata["extraction_corpus"]["size"]

    # The checkpoint's settings win; only the extraction ones come from the given config.
    other = smoke_cfg.replace(lr=0.5, extract_corpus="full")
    full = run_pretraining(
        other, out_dir=tmp_path, extract_only=True, vectors_path=tmp_path / "full.json"
    )
    emb = ElementEmbedding.from_json(full["vectors_path"])
    meta = emb.metadata
    assert meta["config"]["lr"] == cfg.lr and meta["config"]["extract_corpus"] == "full"
    assert meta["epochs_run"] == 1 and meta["loss_history"] == sub.metadata["loss_history"]
    assert meta["corpus_size"] == n_train
    # the commit of the training run comes from the checkpoint
    assert meta["training_git_commit"] == sub.metadata["training_git_commit"]
    assert meta["extraction_corpus"]["which"] == "whole corpus"
    assert meta["extraction_corpus"]["size"] > n_train
    assert sum(meta["element_counts"].values()) > sum(sub.metadata["element_counts"].values())
    assert set(sub.symbols) <= set(emb.symbols)
    np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)


def test_training_commit_of_an_old_checkpoint_comes_from_the_replaced_file(tmp_path):
    from training.pretrain import _training_commit

    history = [{"epoch": 1, "loss": 2.0, "fr": 1.0, "cr": 1.0, "ssl": 3.0, "wall_s": 5.0}]
    path = tmp_path / "v.json"
    assert _training_commit("abc", history, path) == "abc"
    assert _training_commit(None, history, path) is None  # nothing to read
    meta = {
        "git_commit": "old",
        "loss_history": [{k: history[0][k] for k in history[0] if k != "wall_s"}],
    }
    path.write_text(json.dumps({"metadata": meta}))
    assert _training_commit(None, history, path) == "old"
    history[0]["loss"] = 2.5  # another training run: no claim
    assert _training_commit(None, history, path) is None


def test_extract_only_needs_a_checkpoint(smoke_cfg, tmp_path):
    from training.pretrain import run_pretraining

    with pytest.raises(FileNotFoundError, match="checkpoint"):
        run_pretraining(smoke_cfg, out_dir=tmp_path / "empty", extract_only=True)


def test_prepare_only_builds_training_and_extraction_caches(smoke_cfg, tmp_path, capsys):
    import yaml

    from training.pretrain import main

    cfg = {**smoke_cfg.to_dict(), "max_sites": 2, "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["--config", str(path), "--prepare-only"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["cache"] != out["extraction_cache"]
    assert 0 < out["crystals"] < out["extraction_crystals"]
    assert Path(out["extraction_cache"]).is_dir()


def test_command_line_compile_flag_reaches_the_config(smoke_cfg, monkeypatch, capsys):
    from training import pretrain

    seen = {}

    def fake_run(cfg, **kwargs):
        seen["cfg"] = cfg
        return {"history": [], "epochs_run": 0, "vectors_path": None, "wall_time_s": 0.0}

    monkeypatch.setattr(pretrain, "run_pretraining", fake_run)
    assert pretrain.main(["--config", "smoke"]) == 0
    assert seen["cfg"].compile_convs is False
    assert pretrain.main(["--config", "smoke", "--compile-convs"]) == 0
    assert seen["cfg"].compile_convs is True


@pytest.mark.slow
def test_layer_probe_full_depth_reproduces_the_run_vectors(smoke_run):
    from crysatom_featurizers.embeddings import ElementEmbedding
    from training.extract import extract_element_vectors
    from training.layer_probe import depth_vectors, layer_probe
    from training.model import CrysAtomPretrainer
    from training.pretrain import extraction_cache, prepare_cache, resolve_corpus

    run = Path(smoke_run["vectors_path"]).parent
    ckpt = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    from training.config import PretrainConfig

    cfg = PretrainConfig.from_dict(ckpt["config"])
    model = CrysAtomPretrainer(cfg)
    model.load_state_dict(ckpt["model"])
    cache = extraction_cache(cfg, prepare_cache(cfg, *resolve_corpus(cfg)))
    shipped = ElementEmbedding.from_json(smoke_run["vectors_path"])
    depths = depth_vectors(model, cache)
    assert len(depths) == cfg.num_layers + 1
    full, shallow = depths[-1], depths[0]
    assert full.symbols == shipped.symbols
    np.testing.assert_allclose(full.vectors, shipped.vectors, atol=1e-6)
    assert not np.allclose(shallow.vectors, shipped.vectors, atol=1e-3)
    # depth d is the encoder truncated after d convolutions
    convs = model.encoder.convs
    model.encoder.convs = torch.nn.ModuleList(list(convs)[:1])
    try:
        truncated = extract_element_vectors(model, cache)["vectors"]
    finally:
        model.encoder.convs = convs
    np.testing.assert_allclose(
        depths[1].vectors, np.stack([truncated[s] for s in depths[1].symbols]), atol=1e-6
    )

    table = layer_probe(run, extract_corpus="train", n_estimators=5)
    assert list(table["depth"]) == [0, 1, 2, 0, 1, 2]
    assert list(table["weights"]) == ["trained"] * 3 + ["init"] * 3
    assert table["mean_r2"].notna().all()


def test_probe_trajectory_is_one_resumed_run(smoke_run, smoke_cfg, tmp_path):
    import pandas as pd

    from training.probe_trajectory import parse_overrides, probe_trajectory

    table = probe_trajectory(smoke_cfg, [1, 2], tmp_path, n_estimators=5, label="smoke")
    assert list(table["epoch"]) == [1, 2]
    assert (tmp_path / "vectors_1.json").exists() and (tmp_path / "vectors_2.json").exists()
    assert np.isfinite(table["mean_r2"]).all()
    # training in chunks continues one run: the epoch-2 losses are the uninterrupted run's
    np.testing.assert_allclose(
        table[["loss", "fr", "cr", "ssl"]].to_numpy()[-1],
        _losses(smoke_run["history"])[-1],
        rtol=1e-5,
    )
    saved = pd.read_csv(tmp_path / "probe_trajectory.csv")
    assert list(saved["epoch"]) == [1, 2] and set(saved["variant"]) == {"smoke"}
    assert parse_overrides(["batch_norm=false", "lr=3e-3"]) == {"batch_norm": False, "lr": 0.003}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["batch_norm"])
    with pytest.raises(ValueError, match="increasing"):
        probe_trajectory(smoke_cfg, [2, 1], tmp_path)


def test_exported_encoder_reproduces_the_run_encoder(smoke_run, tmp_path):
    from crysatom_featurizers.nn import load_encoder
    from training.config import PretrainConfig
    from training.export_encoder import export_encoder, main
    from training.model import CrysAtomPretrainer

    run_dir = Path(smoke_run["vectors_path"]).parent
    meta = export_encoder(run_dir, tmp_path / "enc.pt")
    encoder, loaded_meta = load_encoder(tmp_path / "enc.pt")
    assert loaded_meta["input_embedding"] == meta["input_embedding"] == "cgcnn"
    assert loaded_meta["epochs_in_checkpoint"] == smoke_run["epochs_run"]
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    model = CrysAtomPretrainer(PretrainConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    for name, tensor in model.encoder.state_dict().items():
        assert torch.equal(encoder.state_dict()[name], tensor), name
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main(["--run", str(tmp_path), "--out", str(tmp_path / "x.pt")])
    # annotate the existing file with how it was chosen: same weights, same checksum
    selection = tmp_path / "selection.json"
    selection.write_text('{"candidates": ["smoke"], "chosen": "smoke"}')
    assert main(["--out", str(tmp_path / "enc.pt"), "--selection", str(selection)]) == 0
    again, annotated = load_encoder(tmp_path / "enc.pt")
    assert annotated["selection"]["chosen"] == "smoke"
    assert annotated["checksum"] == loaded_meta["checksum"]
    assert annotated["epochs_in_checkpoint"] == loaded_meta["epochs_in_checkpoint"]
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "enc.pt")])


def test_readouts_final_is_the_run_vectors_and_others_are_unit_vectors(
    smoke_run, smoke_cfg, tmp_path
):
    from crysatom_featurizers.embeddings import ElementEmbedding
    from training.readouts import main

    run_dir = Path(smoke_run["vectors_path"]).parent
    assert (
        main(
            [
                "--run",
                str(run_dir),
                "--out",
                str(tmp_path),
                "--name",
                "smoke",
                "--extract-corpus",
                smoke_cfg.extract_corpus,
            ]
        )
        == 0
    )
    final = ElementEmbedding.from_json(tmp_path / "smoke_final.json")
    run_vectors = ElementEmbedding.from_json(smoke_run["vectors_path"])
    assert final.symbols == run_vectors.symbols
    np.testing.assert_allclose(final.vectors, run_vectors.vectors, atol=2e-6)
    mean = ElementEmbedding.from_json(tmp_path / "smoke_meandepth.json")
    concat = ElementEmbedding.from_json(tmp_path / "smoke_concat.json")
    assert concat.dim == (smoke_cfg.num_layers + 1) * smoke_cfg.dim and mean.dim == smoke_cfg.dim
    for emb in (mean, concat):
        np.testing.assert_allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)
    assert (
        concat.metadata["readout"] == "concat"
        and "side by side" in concat.metadata["readout_method"]
    )
