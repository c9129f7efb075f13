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
