"""Tests of the torch modules (crysatom_featurizers.nn)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader
from torch_geometric.nn import CGConv

from crysatom_featurizers.embeddings import ElementEmbedding
from crysatom_featurizers.graphs import gaussian_centers, gaussian_expand, structures_to_graphs
from crysatom_featurizers.nn import (
    CGCNN,
    CGCNNConv,
    CGCNNEncoder,
    ElementEmbeddingLayer,
    GaussianExpansion,
    uniform_neighbors,
)

TOY_ELEMENTS = ["O", "Na", "Cl", "Ti", "Fe", "Ni", "Sr"]


@pytest.fixture
def toy_embedding() -> ElementEmbedding:
    rng = np.random.default_rng(0)
    vectors = {symbol: rng.normal(size=6) for symbol in TOY_ELEMENTS}
    return ElementEmbedding.from_dict(vectors, name="toy")


@pytest.fixture
def graphs(nacl, perovskite, disordered, bcc_fe):
    return structures_to_graphs([nacl, perovskite, disordered, bcc_fe])


def _batch(graphs, size=None):
    return next(iter(DataLoader(graphs, batch_size=size or len(graphs))))


def test_gaussian_expansion_matches_graphs():
    d = torch.tensor([0.0, 1.234, 2.5, 7.99, 8.0])
    expansion = GaussianExpansion()
    assert expansion.num_gaussians == 41
    expected = gaussian_expand(d.numpy(), gaussian_centers(0.0, 8.0, 0.2), 0.2)
    np.testing.assert_allclose(expansion(d).numpy(), expected, atol=1e-6)
    assert expansion(d)[1].argmax() == 6  # 1.2 Å is the nearest centre
    assert GaussianExpansion(0.0, 6.0, 0.5, 0.5)(d).shape == (5, 13)


def test_embedding_layer_ordered_and_disordered(toy_embedding, graphs):
    layer = ElementEmbeddingLayer(toy_embedding)
    nacl_graph, _, disordered_graph, _ = graphs
    x = layer(nacl_graph)
    expected = np.stack([toy_embedding.vector(int(z)) for z in nacl_graph.z.tolist()])
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    # A half-Fe, half-Ni site gets the occupancy-weighted sum of the two vectors.
    mixed = layer(disordered_graph)[0].numpy()
    halfway = 0.5 * (toy_embedding.vector("Fe") + toy_embedding.vector("Ni"))
    np.testing.assert_allclose(mixed, halfway, atol=1e-6)
    # Batched lookup equals per-graph lookup (species_site_index is offset by the loader).
    batched = layer(_batch(graphs))
    np.testing.assert_allclose(batched.numpy(), torch.cat([layer(g) for g in graphs]).numpy())


def test_embedding_layer_missing_element_named(toy_embedding, fe2o3, graphs):
    layer = ElementEmbeddingLayer(ElementEmbedding.from_dict({"O": np.ones(6)}, name="only_o"))
    with pytest.raises(ValueError, match=r"the graph contains Fe, which the 'only_o' embedding"):
        layer(structures_to_graphs([fe2o3])[0])
    batch = _batch([graphs[1], structures_to_graphs([fe2o3])[0]])
    full = ElementEmbeddingLayer(toy_embedding)
    batch.species_z[-1] = 92  # uranium, not covered
    with pytest.raises(ValueError, match=r"graph 1 of the batch contains U, which the 'toy'"):
        full(batch)
    assert full.missing_elements(torch.tensor([8, 92, 94])) == ["U", "Pu"]


def test_embedding_layer_frozen_and_trainable(toy_embedding, graphs):
    frozen = ElementEmbeddingLayer(toy_embedding)
    assert not any(p is frozen.weight for p in frozen.parameters())
    assert "weight" in frozen.state_dict()
    trainable = ElementEmbeddingLayer(toy_embedding, trainable=True)
    assert any(p is trainable.weight for p in trainable.parameters())
    trainable(_batch(graphs)).square().sum().backward()
    grad = trainable.weight.grad
    assert grad[8].abs().sum() > 0 and grad[1].abs().sum() == 0  # O used, H not


def test_embedding_layer_by_name():
    layer = ElementEmbeddingLayer("cgcnn")
    assert layer.dim == 92 and layer.covered[26] and not layer.covered[0]


def _dense_cgcnn_conv(conv: CGCNNConv, x, edge_index, edge_attr, n_neighbors):
    """The original CGCNN ConvLayer on padded [N, M] neighbour lists (every centre has M)."""
    n, f = x.shape
    src, dst = edge_index
    order = torch.argsort(dst, stable=True)
    nbr_idx = src[order].view(n, n_neighbors)
    nbr_fea = edge_attr[order].view(n, n_neighbors, -1)
    total = torch.cat(
        [x.unsqueeze(1).expand(n, n_neighbors, f), x[nbr_idx], nbr_fea], dim=2
    )  # [x_i, x_j, e_ij]
    gated = conv.lin(total)
    gated = conv.bn_message(gated.view(-1, 2 * f)).view(n, n_neighbors, 2 * f)
    nbr_filter, nbr_core = gated.chunk(2, dim=2)
    summed = torch.sum(torch.sigmoid(nbr_filter) * F.softplus(nbr_core), dim=1)
    return F.softplus(x + conv.bn_sum(summed))


@pytest.mark.parametrize("train", [True, False])
def test_cgcnn_conv_matches_dense_original(nacl, fe2o3, train):
    torch.manual_seed(0)
    graphs = structures_to_graphs([nacl, fe2o3])
    batch = _batch(graphs)
    assert torch.all(torch.bincount(batch.edge_index[1]) == 12)
    conv = CGCNNConv(8, 41)
    with torch.no_grad():  # non-trivial batch-norm affine parameters and running statistics
        for bn in (conv.bn_message, conv.bn_sum):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    conv.train(train)
    x = torch.randn(batch.num_nodes, 8)
    ours = conv(x, batch.edge_index, batch.edge_attr)
    conv.train(train)
    reference = _dense_cgcnn_conv(conv, x, batch.edge_index, batch.edge_attr, 12)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_uniform_neighbors_detects_the_graph_layout(nacl, fe2o3, graphs):
    batch = _batch(structures_to_graphs([nacl, fe2o3]))
    assert uniform_neighbors(batch.edge_index, batch.num_nodes) == 12
    # one edge fewer, edges out of centre order, or an extra node without edges: no fast path
    assert uniform_neighbors(batch.edge_index[:, 1:], batch.num_nodes) is None
    assert uniform_neighbors(batch.edge_index.flip(1), batch.num_nodes) is None
    assert uniform_neighbors(batch.edge_index, batch.num_nodes + 1) is None
    assert uniform_neighbors(batch.edge_index[:, :0], batch.num_nodes) is None


@pytest.mark.parametrize("train", [True, False])
def test_cgcnn_conv_uniform_fast_path_same_values_and_gradients(nacl, fe2o3, train):
    torch.manual_seed(0)
    batch = _batch(structures_to_graphs([nacl, fe2o3]))
    conv = CGCNNConv(8, 41).double().train(train)
    x = torch.randn(batch.num_nodes, 8, dtype=torch.float64, requires_grad=True)
    edge_attr = batch.edge_attr.double()
    outputs, grads = [], []
    for k in (None, 12):
        conv.zero_grad()
        x.grad = None
        out = conv(x, batch.edge_index, edge_attr, k)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        outputs.append(out.detach())
        grads.append([x.grad.clone()] + [p.grad.clone() for p in conv.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1])
    for generic, fast in zip(*grads):
        torch.testing.assert_close(generic, fast)
    reference = _dense_cgcnn_conv(conv.eval(), x.detach(), batch.edge_index, edge_attr, 12)
    if not train:
        torch.testing.assert_close(outputs[1], reference)


def test_encoder_uses_the_fast_path_only_when_the_layout_allows(nacl, fe2o3, monkeypatch):
    batch = _batch(structures_to_graphs([nacl, fe2o3]))
    encoder = CGCNNEncoder(92, 16, 2)
    seen = []
    forward = CGCNNConv.forward

    def spy(self, x, edge_index, edge_attr, neighbors_per_node=None):
        seen.append(neighbors_per_node)
        return forward(self, x, edge_index, edge_attr, neighbors_per_node)

    monkeypatch.setattr(CGCNNConv, "forward", spy)
    x = torch.randn(batch.num_nodes, 92)
    full = encoder(x, batch.edge_index, batch.edge_attr)
    keep = torch.ones(batch.edge_index.shape[1], dtype=torch.bool)
    keep[::7] = False  # edge masking breaks the layout
    encoder(x, batch.edge_index[:, keep], batch.edge_attr[keep])
    assert seen == [12, 12, None, None]
    assert torch.isfinite(full).all()


def _copy_into_cgconv(conv: CGCNNConv, channels: int, edge_dim: int) -> CGConv:
    pyg = CGConv(channels, dim=edge_dim, batch_norm=False)
    with torch.no_grad():
        weight_f, weight_s = conv.lin.weight.chunk(2, dim=0)
        bias_f, bias_s = conv.lin.bias.chunk(2, dim=0)
        pyg.lin_f.weight.copy_(weight_f)
        pyg.lin_f.bias.copy_(bias_f)
        pyg.lin_s.weight.copy_(weight_s)
        pyg.lin_s.bias.copy_(bias_s)
    return pyg


def test_cgcnn_conv_parity_with_pyg_cgconv(graphs):
    torch.manual_seed(1)
    batch = _batch(graphs)
    x = torch.randn(batch.num_nodes, 16)
    plain = CGCNNConv(16, 41, batch_norm=False, outer_softplus=False)
    pyg = _copy_into_cgconv(plain, 16, 41)
    expected = pyg(x, batch.edge_index, batch.edge_attr)
    torch.testing.assert_close(plain(x, batch.edge_index, batch.edge_attr), expected)
    # The default layer with freshly initialised batch norms in eval mode (identity up to
    # the eps of the norm) equals softplus(CGConv).
    full = CGCNNConv(16, 41).eval()
    full.lin.load_state_dict(plain.lin.state_dict())
    out = full(x, batch.edge_index, batch.edge_attr)
    torch.testing.assert_close(out, F.softplus(expected), atol=1e-4, rtol=1e-4)
    # ... but not without the softplus, so the comparison can fail.
    assert not torch.allclose(out, expected, atol=1e-3)


def test_encoder_shapes_and_validation(graphs):
    batch = _batch(graphs)
    encoder = CGCNNEncoder(92, 200, 5)
    assert encoder.num_layers == 5
    h = encoder(torch.randn(batch.num_nodes, 92), batch.edge_index, batch.edge_attr)
    assert h.shape == (batch.num_nodes, 200)
    with pytest.raises(ValueError, match="size 92"):
        encoder(torch.randn(batch.num_nodes, 10), batch.edge_index, batch.edge_attr)
    with pytest.raises(ValueError, match="edge features of size 41"):
        encoder(torch.randn(batch.num_nodes, 92), batch.edge_index, batch.edge_attr[:, :5])


def test_cgcnn_forward_gradients(toy_embedding, graphs):
    torch.manual_seed(0)
    model = CGCNN(toy_embedding, atom_fea_len=8, n_conv=2, h_fea_len=16, n_h=2, n_targets=3)
    batch = _batch(graphs)
    out = model(batch)
    assert out.shape == (4, 3)
    out.square().mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert "embedding.weight" not in dict(model.named_parameters())  # frozen by default
    trainable = CGCNN(toy_embedding, atom_fea_len=8, n_conv=1, trainable_embeddings=True)
    assert "embedding.weight" in dict(trainable.named_parameters())


def test_cgcnn_batch_consistency_and_edge_dist(toy_embedding, graphs, nacl, perovskite):
    torch.manual_seed(0)
    model = CGCNN(toy_embedding, atom_fea_len=8, n_conv=2, h_fea_len=16).eval()
    with torch.no_grad():
        together = model(_batch(graphs))
        alone = torch.cat([model(g) for g in graphs])
        torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
        # Without edge_attr the model expands edge_dist itself, with the same result.
        bare = structures_to_graphs([nacl, perovskite], expand_edges=False)
        torch.testing.assert_close(model(_batch(bare)), together[:2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_cgcnn_pooling(toy_embedding, graphs, pooling):
    torch.manual_seed(0)
    model = CGCNN(toy_embedding, atom_fea_len=8, n_conv=1, h_fea_len=8, pooling=pooling).eval()
    batch = _batch(graphs)
    with torch.no_grad():
        nodes = model.encode(batch)
        pooled = model.pool(batch, nodes)
    first = nodes[: graphs[0].num_nodes]
    expected = {"mean": first.mean(0), "sum": first.sum(0), "max": first.max(0).values}[pooling]
    torch.testing.assert_close(pooled[0], expected)


def test_cgcnn_bad_arguments(toy_embedding):
    with pytest.raises(ValueError, match="pooling"):
        CGCNN(toy_embedding, pooling="median")
    with pytest.raises(ValueError, match="n_h"):
        CGCNN(toy_embedding, n_h=0)


def test_cgcnn_learns_a_toy_target(toy_embedding, graphs):
    torch.manual_seed(0)
    model = CGCNN(toy_embedding, atom_fea_len=8, n_conv=1, h_fea_len=16)
    batch = _batch(graphs)
    target = torch.tensor([[1.0], [-1.0], [0.5], [2.0]])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.03)
    first = None
    for _ in range(60):
        optimiser.zero_grad()
        loss = F.mse_loss(model(batch), target)
        loss.backward()
        optimiser.step()
        first = loss.item() if first is None else first
    assert loss.item() < 0.1 * first


def test_cgcnn_dim():
    model = CGCNN("random", dim=8, atom_fea_len=4, n_conv=1)
    assert model.embedding.dim == 8
    with pytest.raises(TypeError, match="embedding_dim"):
        CGCNN("random", embedding_dim=8, atom_fea_len=4, n_conv=1)  # removed before 1.0


def test_no_generated_module_is_left_in_the_temporary_folder(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from crysatom_featurizers.nn import CGCNN\n"
        "from crysatom_featurizers.graphs import GraphBatch, structures_to_graphs\n"
        "from tests.prototypes import prototype_dataset\n"
        "X, _ = prototype_dataset()\n"
        "CGCNN('cgcnn', atom_fea_len=8, n_conv=2)(GraphBatch.from_graphs(structures_to_graphs(X[:2])))\n"
    )
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert not [p.name for p in tmp_path.rglob("*.py")]
