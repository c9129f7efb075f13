"""One resolver for embedding specs, and the package-wide chemistry helpers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crysatom_featurizers.chemistry import (
    ELEMENT_SYMBOLS,
    SYMBOL_TO_Z,
    atomic_number,
    element_symbol,
    is_element,
    parse_species,
)
from crysatom_featurizers.embeddings import (
    ElementEmbedding,
    EmbeddingFileError,
    load,
    parse_spec,
    resolve,
    spec_label,
)


def test_resolve_names_and_dims():
    assert resolve("cgcnn") is load("cgcnn")
    assert resolve("random:8").dim == 8
    assert resolve("random", 8) is resolve("random:8")
    assert resolve("random:8", 8).dim == 8


def test_resolve_object_and_contradictions():
    emb = ElementEmbedding.from_dict({"Na": [1.0, 0.0], "Cl": [0.0, 1.0]}, name="nacl")
    assert resolve(emb) is emb
    with pytest.raises(ValueError, match="dim=3 contradicts"):
        resolve(emb, 3)
    with pytest.raises(ValueError, match="contradicts dim=16"):
        resolve("random:8", 16)


def test_resolve_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"unknown atom_features 'nope'; available embeddings: "):
        resolve("nope", param="atom_features")
    with pytest.raises(ValueError, match="positive integer dimension"):
        resolve("crysatom:big")
    with pytest.raises(TypeError, match="embedding must be a registry name"):
        resolve(3.5)


def test_resolve_files(tmp_path):
    emb = load("random", dim=4)
    emb.to_json(tmp_path / "vec.json")
    emb.to_csv(tmp_path / "vec.csv")
    assert np.allclose(resolve(str(tmp_path / "vec.json")).vectors, emb.vectors)
    assert np.allclose(resolve(tmp_path / "vec.csv").vectors, emb.vectors)
    assert resolve("vec.json", base_dir=tmp_path).dim == 4
    with pytest.raises(FileNotFoundError, match="missing.json"):
        resolve(str(tmp_path / "missing.json"))


def test_plain_vector_mapping_file(tmp_path):
    """A third-party {"vectors": {symbol: [...]}} file, as the CrysAtom authors release theirs."""
    path = tmp_path / "authors_3.json"
    doc = {
        "source": "x",
        "license": "GPL-3.0",
        "dim": 3,
        "vectors": {"Fe": [1, 2, 3], "O": [0, 1, 0]},
    }
    path.write_text(json.dumps(doc))
    emb = resolve(str(path))
    assert emb.name == "authors_3" and emb.dim == 3
    assert emb.metadata["license"] == "GPL-3.0"
    path.write_text(json.dumps({**doc, "dim": 4}))
    with pytest.raises(EmbeddingFileError, match="'dim' is 4"):
        resolve(str(path))
    path.write_text(json.dumps({**doc, "vectors": {"Xx": [1, 2, 3]}}))
    with pytest.raises(EmbeddingFileError, match="Xx"):
        resolve(str(path))


def test_parse_spec_and_label():
    assert parse_spec("cgcnn") == ("cgcnn", None)
    assert parse_spec("crysatom:200") == ("crysatom", 200)
    with pytest.raises(ValueError, match="empty embedding name"):
        parse_spec(":3")
    assert spec_label("crysatom:200") == "crysatom_200"
    assert spec_label("../data/crysatom_authors_200.json") == "crysatom_authors_200"
    assert spec_label(load("cgcnn")) == "cgcnn"


def test_chemistry_helpers():
    assert len(ELEMENT_SYMBOLS) == 118 and ELEMENT_SYMBOLS[25] == "Fe"
    assert atomic_number("Fe") == 26 == SYMBOL_TO_Z["Fe"]
    assert element_symbol(26) == "Fe"
    assert element_symbol(200, strict=False) == "Z=200"
    with pytest.raises(ValueError, match="not an atomic number"):
        element_symbol(0)
    with pytest.raises(KeyError):
        atomic_number("Xx")
    assert is_element("O") and not is_element("o") and not is_element("D")
    assert parse_species("Fe2+") == ("element", "Fe")
    assert parse_species("X0+")[0] == "dummy"
    assert parse_species("$$")[0] == "invalid"
    with pytest.raises(TypeError):
        SYMBOL_TO_Z["Qq"] = 1  # read-only
