"""The encoder diagnostics: variance explained by the element, sensitivity to strain."""

from __future__ import annotations

import numpy as np
import torch

from crysatom_featurizers.nn import CGCNN, CGCNNEncoder
from training.encoder_diagnostics import diagnose, element_r2


def test_element_r2_bounds():
    z = np.array([1, 1, 8, 8, 8])
    per_element = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 0.0], [2.0, 0.0], [2.0, 0.0]])
    assert element_r2(per_element, z) == 1.0
    noisy = per_element + np.array([[0.5, 0], [-0.5, 0], [0, 0.3], [0, -0.3], [0, 0]])
    assert 0.0 < element_r2(noisy, z) < 1.0
    same_mean = np.array([[1.0], [-1.0], [2.0], [-2.0], [0.0]])
    assert element_r2(same_mean, z) == 0.0


def test_diagnose_on_built_structures(nacl, fe2o3):
    torch.manual_seed(0)
    model = CGCNN.from_encoder(CGCNNEncoder(92, 8, 2), "cgcnn")
    result = diagnose(model, [nacl, fe2o3])
    assert 0.0 <= result["element_r2"] <= 1.0
    assert result["strain_change"] > 0.0  # the convolutions see the distances
    lookup = CGCNN.from_encoder(CGCNNEncoder(92, 8, 0), "cgcnn")  # input map only
    only_element = diagnose(lookup, [nacl, fe2o3])
    assert abs(only_element["element_r2"] - 1.0) < 1e-6
    assert only_element["strain_change"] < 1e-6
