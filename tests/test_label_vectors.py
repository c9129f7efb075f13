"""CrystalTransformer, atom sets and element vectors read out of trained models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from crysatom_featurizers import CGCNNRegressor
from crysatom_featurizers.graphs import AtomSets
from crysatom_featurizers.nn import CGCNN, CrystalTransformer, element_embedding_from_model


def test_atom_sets_pad_and_keep_minimum_image_distances(nacl, perovskite, bcc_fe):
    sets = AtomSets([nacl, perovskite, bcc_fe])
    batch = sets.batch([2, 1])
    n = len(perovskite)
    assert batch.z.shape == (2, n) and batch.dist.shape == (2, n, n)
    assert batch.mask.sum(1).tolist() == [len(bcc_fe), n]
    assert batch.z[1].tolist() == list(perovskite.atomic_numbers)
    np.testing.assert_allclose(batch.dist[1].numpy(), perovskite.distance_matrix, atol=1e-5)
    np.testing.assert_allclose(batch.pos[1].numpy(), perovskite.cart_coords, atol=1e-5)
    assert float(batch.dist[0, len(bcc_fe) :].abs().sum()) == 0.0  # padding


def test_atom_sets_refuse_disordered_and_empty_structures(nacl, disordered):
    with pytest.raises(ValueError, match="position 1 .* is disordered"):
        AtomSets([nacl, disordered])


@pytest.mark.parametrize("readout,bias", [("first", False), ("mean", True)])
def test_crystal_transformer_ignores_padding(nacl, perovskite, readout, bias):
    torch.manual_seed(0)
    model = CrystalTransformer(
        d_model=16, n_layers=2, n_heads=2, dim_feedforward=16, n_targets=2,
        readout=readout, distance_bias=bias,
    ).eval()  # fmt: skip
    sets = AtomSets([nacl, perovskite])
    alone = model(sets.batch([0]))
    padded = model(sets.batch([0, 1]))[:1]
    assert alone.shape == (1, 2)
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)
    with torch.inference_mode():  # as in evaluation: no NaN from the padded keys
        torch.testing.assert_close(model(sets.batch([0, 1]))[:1], alone, atol=1e-5, rtol=1e-5)


def test_mean_readout_with_distances_only_is_invariant_to_site_order_and_origin(perovskite):
    torch.manual_seed(0)
    model = CrystalTransformer(
        d_model=16, n_layers=2, n_heads=2, dim_feedforward=16, readout="mean",
        coordinates=False, distance_bias=True,
    ).eval()  # fmt: skip
    order = [3, 0, 4, 1, 2]
    shuffled = Structure(
        perovskite.lattice,
        [perovskite.species[i] for i in order],
        (perovskite.frac_coords[order] + 0.13) % 1.0,
    )
    out = model(AtomSets([perovskite, shuffled]).batch([0, 1]))
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=1e-5)


def test_crystal_transformer_checks_its_arguments_and_elements():
    with pytest.raises(ValueError, match="readout"):
        CrystalTransformer(readout="max")
    with pytest.raises(ValueError, match="multiple of n_heads"):
        CrystalTransformer(d_model=10, n_heads=4)
    og = Structure(Lattice.cubic(5.0), ["Og", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="Og"):
        CrystalTransformer(d_model=8, n_heads=2, n_layers=1)(AtomSets([og]).batch([0]))


def test_element_vectors_of_a_cgcnn_are_its_input_map_rows():
    torch.manual_seed(0)
    model = CGCNN("onehot", atom_fea_len=8, n_conv=1, h_fea_len=8)
    vectors = element_embedding_from_model(model, "mine", elements=["Fe", "O"], metadata={"x": 1})
    weight = model.encoder.input.weight.detach().numpy()
    bias = model.encoder.input.bias.detach().numpy()
    np.testing.assert_allclose(vectors.vector("Fe"), weight[:, 26 - 1] + bias, rtol=1e-6)
    assert set(vectors.symbols) == {"Fe", "O"} and vectors.metadata["x"] == 1
    assert len(element_embedding_from_model(model, "all")) == 103  # H..Lr


def test_element_vectors_of_a_fitted_estimator_and_its_errors(nacl, perovskite, bcc_fe):
    X = [nacl, perovskite, bcc_fe] * 3
    y = np.arange(len(X), dtype=float)
    with pytest.raises(TypeError, match="not fitted"):
        element_embedding_from_model(CGCNNRegressor(), "x")
    est = CGCNNRegressor(
        embedding="cgcnn", trainable_embeddings=True, atom_fea_len=8, n_conv=1, h_fea_len=8,
        epochs=2, random_state=0,
    ).fit(X, y)  # fmt: skip
    vectors = element_embedding_from_model(est, "learned", elements=["Na", "Cl"])
    assert vectors.dim == 8
    # a fine-tuned table: the vectors move with it
    with torch.no_grad():
        est.model_.embedding.weight[11] += 1.0
    assert not np.allclose(element_embedding_from_model(est, "moved", elements=["Na"]).vector("Na"),
                           vectors.vector("Na"))  # fmt: skip
    with pytest.raises(ValueError, match="does not cover"):
        element_embedding_from_model(est, "x", elements=["Og"])
    with pytest.raises(TypeError, match="no element table"):
        element_embedding_from_model(torch.nn.Linear(2, 2), "x")


def test_atom_sets_refuse_positions_outside_the_set(nacl, perovskite):
    sets = AtomSets([nacl, perovskite])
    with pytest.raises(IndexError, match=r"must lie in \[0, 2\)"):
        sets.batch([0, -1])
    with pytest.raises(IndexError, match="empty batch"):
        sets.batch([])
    assert sets.to("cpu").batch([1]).z.device.type == "cpu"


def test_the_shipped_label_encoder_fine_tunes_and_distils_by_name(nacl, perovskite, bcc_fe):
    from crysatom_featurizers.nn import available_encoders, load_encoder

    encoder, meta = load_encoder("uae")
    assert (encoder.in_dim, meta["input_embedding"]) == (103, "onehot")
    guard = meta["leak_guard"]
    assert guard["removed_crystals"]["jarvis"] > 0 and guard["n_formulas"] > 0
    assert meta["unseen_properties"] == ["bulk_modulus_kv", "shear_modulus_gv"]
    assert meta["selection"]["chosen"].startswith("uae_")
    assert "uae" in {row["name"] for row in available_encoders() if row["present"]}

    X = [nacl, perovskite, bcc_fe] * 3
    y = np.array([s.volume / len(s) for s in X])
    tuned = CGCNNRegressor(finetune="uae", epochs=2, random_state=0).fit(X, y)
    assert tuned.transfer_["input_embedding"] == "onehot" and tuned.embedding_dim_ == 103
    distilled = CGCNNRegressor(embedding="cgcnn", distill="uae", epochs=2, random_state=0)
    assert np.isfinite(distilled.fit(X, y).predict(X)).all()
