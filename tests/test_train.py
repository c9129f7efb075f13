"""Tests of the training loop on packed graphs (crysatom_featurizers.nn.train)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crysatom_featurizers.graphs import PackedGraphs, structures_to_graphs
from crysatom_featurizers.nn import CGCNN
from crysatom_featurizers.nn.train import (
    TrainSettings,
    history_keys,
    index_batches,
    make_scheduler,
    predict_packed,
    resolve_device,
    torch_runtime,
    train_model,
)


def test_index_batches_never_leave_one_crystal_alone():
    sizes = [len(b) for b in index_batches(torch.arange(9), 4)]
    assert sizes == [4, 5]
    assert [len(b) for b in index_batches(torch.arange(8), 4)] == [4, 4]
    assert [len(b) for b in index_batches(torch.arange(1), 4)] == [1]


def test_make_scheduler_and_device_checks():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert make_scheduler(opt, "constant", 10) is None
    assert make_scheduler(opt, "step", 8).milestones == {4: 1, 6: 1}
    with pytest.raises(ValueError, match="lr_schedule"):
        make_scheduler(opt, "linear", 10)
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


def test_train_model_returns_history_and_best_epoch(nacl, perovskite, bcc_fe, disordered):
    graphs = structures_to_graphs([nacl, perovskite, bcc_fe, disordered] * 2, expand_edges=False)
    packed = PackedGraphs.from_graphs(graphs)
    targets = torch.linspace(-1.0, 1.0, len(graphs)).unsqueeze(1)
    settings = TrainSettings(epochs=3, batch_size=3, lr=1e-2, metric_name="mae")

    def mae_sum(out, target):
        return (out - target).abs().mean(dim=1).sum()

    def fit(seed):
        with torch_runtime(torch.device("cpu"), 1, seed):
            model = CGCNN("cgcnn", atom_fea_len=8, n_conv=1, h_fea_len=8)
            return train_model(
                model,
                packed,
                targets,
                torch.arange(6),
                torch.arange(6, 8),
                torch.nn.MSELoss(),
                mae_sum,
                settings,
                seed,
            )

    result = fit(0)
    assert tuple(result.history) == history_keys("mae")
    assert result.history["epoch"] == [1, 2, 3] and result.n_epochs == 3
    val = np.asarray(result.history["val_loss"])
    assert result.best_epoch == int(np.argmin(val)) + 1
    assert not result.model.training
    out = predict_packed(result.model, packed, torch.arange(len(graphs)))
    assert out.shape == (len(graphs), 1)
    again = predict_packed(fit(0).model, packed, torch.arange(len(graphs)))
    assert torch.equal(out, again)  # same seed, same weights


def _checkpointed_fit(packed, targets, epochs, checkpoint, fingerprint="run", patience=None):
    settings = TrainSettings(
        epochs=epochs, batch_size=3, lr=1e-2, lr_schedule="cosine", patience=patience
    )
    with torch_runtime(torch.device("cpu"), 1, 0):
        model = CGCNN("cgcnn", atom_fea_len=8, n_conv=1, h_fea_len=8, dropout=0.2)
        return train_model(
            model,
            packed,
            targets,
            torch.arange(6),
            torch.arange(6, 8),
            torch.nn.MSELoss(),
            lambda out, t: (out - t).abs().sum(),
            settings,
            0,
            checkpoint=checkpoint,
            fingerprint=fingerprint,
        )


def test_train_model_resumes_from_its_checkpoint_bitwise(tmp_path, nacl, perovskite, bcc_fe):
    graphs = structures_to_graphs([nacl, perovskite, bcc_fe] * 3, expand_edges=False)
    packed = PackedGraphs.from_graphs(graphs)
    targets = torch.linspace(-1.0, 1.0, len(graphs)).unsqueeze(1)
    whole = _checkpointed_fit(packed, targets, 5, None)

    path = tmp_path / "fit.ckpt"
    first = _checkpointed_fit(packed, targets, 5, path, patience=None)
    assert path.exists() and first.n_epochs == 5
    # an interrupted run: the checkpoint of epoch 2 (a 5-epoch schedule cut short)
    path.unlink()
    settings_cut = TrainSettings(epochs=5, batch_size=3, lr=1e-2, lr_schedule="cosine")
    with torch_runtime(torch.device("cpu"), 1, 0):
        model = CGCNN("cgcnn", atom_fea_len=8, n_conv=1, h_fea_len=8, dropout=0.2)

        class Stop(Exception):
            pass

        calls = {"n": 0}

        def metric(out, t):
            calls["n"] += 1
            if calls["n"] > 2 * 3:  # 2 batches (+ 1 validation call) per epoch: stop in epoch 3
                raise Stop
            return (out - t).abs().sum()

        with pytest.raises(Stop):
            train_model(
                model, packed, targets, torch.arange(6), torch.arange(6, 8),
                torch.nn.MSELoss(), metric, settings_cut, 0, checkpoint=path, fingerprint="run",
            )  # fmt: skip
    assert torch.load(path, weights_only=True)["epoch"] == 2
    resumed = _checkpointed_fit(packed, targets, 5, path)
    assert resumed.history == {**whole.history, "time_s": resumed.history["time_s"]}
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    everything = torch.arange(len(graphs))
    assert torch.equal(
        predict_packed(whole.model, packed, everything),
        predict_packed(resumed.model, packed, everything),
    )


def test_train_model_refuses_a_foreign_or_broken_checkpoint(tmp_path, nacl, perovskite, bcc_fe):
    graphs = structures_to_graphs([nacl, perovskite, bcc_fe] * 3, expand_edges=False)
    packed = PackedGraphs.from_graphs(graphs)
    targets = torch.linspace(-1.0, 1.0, len(graphs)).unsqueeze(1)
    path = tmp_path / "fit.ckpt"
    _checkpointed_fit(packed, targets, 2, path)
    with pytest.raises(ValueError, match="another run"):
        _checkpointed_fit(packed, targets, 3, path, fingerprint="other data")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the training checkpoint") as info:
        _checkpointed_fit(packed, targets, 3, path)
    assert "weights_only" not in str(info.value)  # no advice to unpickle it
    assert path.read_bytes() == b"not a checkpoint"
    # a folder that cannot be made fails before any epoch runs
    with pytest.raises(ValueError, match="cannot create its folder"):
        _checkpointed_fit(packed, targets, 3, path / "fit.ckpt")
    torch.save({"format": "something else"}, path)
    with pytest.raises(ValueError, match="is not a training checkpoint"):
        _checkpointed_fit(packed, targets, 3, path)


def test_size_bucketed_batches_cover_every_crystal_once_in_size_groups():
    from crysatom_featurizers.nn.train import size_bucketed_batches

    sizes = torch.tensor([5, 1, 9, 3, 3, 7, 2, 8, 4, 6, 1, 2])
    batcher = size_bucketed_batches(sizes, pool=2)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    batches = batcher(order, 3, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(12))
    # within each pool of 2 x 3 crystals, the batches hold the smaller and the larger half
    for start in (0, 6):
        pool = order[start : start + 6]
        small = set(pool[torch.argsort(sizes[pool], stable=True)][:3].tolist())
        assert any(set(b.tolist()) == small for b in batches)
    again = batcher(order, 3, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
