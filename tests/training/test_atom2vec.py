"""Tests for training.atom2vec (Atom2Vec) and training.corpus (loading, de-duplication, subsets)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import JARVIS_PATH, MP_PATH, require_shared_data
from pymatgen.core import Composition, Lattice, Species, Structure

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training import corpus as corpus_module  # noqa: E402
from training.atom2vec import Atom2Vec, build_embedding, environments, reduced_amounts  # noqa: E402
from training.corpus import (  # noqa: E402
    corpus_checksum,
    corpus_info,
    load_corpus,
    load_structures,
    select_subset,
    structure_key,
)

# Na/K and Cl/Br occur in exactly the same environments, so the matrix has rank 4 (O, Na=K,
# Cl=Br, Fe have disjoint environment sets). Fe4O6 reduces to Fe2O3.
TINY = ["NaCl", "KCl", "NaBr", "KBr", "Na2O", "K2O", "Fe2O3", "Fe4O6", "Fe"]


def test_environments_keep_own_count():
    # pairs in order of atomic number
    assert environments("Fe2O3") == [("O", "(3)Fe2"), ("Fe", "(2)O3")]
    assert environments("NaCl") == [("Na", "(1)Cl1"), ("Cl", "(1)Na1")]
    assert environments("Fe") == [("Fe", "(1)")]
    # reduced formula, species mapped to elements, other elements in alphabetical order
    assert environments("Fe4O6") == environments("Fe2O3")
    oxidised = Composition({Species("Fe", 3): 4, Species("O", -2): 6})
    assert reduced_amounts(oxidised) == {"Fe": 2.0, "O": 3.0}
    assert environments(oxidised) == environments("Fe2O3")
    assert dict(environments("BaTiO3"))["Ti"] == "(1)Ba1O3"


def test_count_matrix_entries_by_hand():
    model = Atom2Vec().fit(TINY)
    assert model.elements_ == ["O", "Na", "Cl", "K", "Fe", "Br"]
    assert model.n_compounds_ == 8  # Fe4O6 and Fe2O3 are one compound
    counts = pd.DataFrame(
        model.counts_.toarray(), index=model.elements_, columns=model.environments_
    )
    assert counts.to_numpy().sum() == 15  # 7 binary compounds x 2 atoms + Fe
    assert counts.loc["Na", "(1)Cl1"] == 1
    assert counts.loc["Na", "(2)O1"] == 1
    assert counts.loc["K", "(1)Br1"] == 1
    assert counts.loc["O", "(1)K2"] == 1
    assert counts.loc["O", "(3)Fe2"] == 1
    assert counts.loc["Fe", "(2)O3"] == 1
    assert counts.loc["Fe", "(1)"] == 1
    assert counts.loc["Cl", "(1)Na1"] == 1
    assert counts.loc["Fe", "(1)Cl1"] == 0
    assert counts.loc["Na"].sum() == 3

    structure_counts = Atom2Vec(count="structure").fit(TINY)
    dense = pd.DataFrame(
        structure_counts.counts_.toarray(),
        index=structure_counts.elements_,
        columns=structure_counts.environments_,
    )
    assert dense.loc["Fe", "(2)O3"] == 2
    assert dense.loc["O", "(3)Fe2"] == 2


def test_row_normalisation():
    model = Atom2Vec(norm="l2").fit(TINY)
    norms = np.sqrt(
        np.asarray(model.normalized_matrix().multiply(model.normalized_matrix()).sum(1))
    )
    np.testing.assert_allclose(norms.ravel(), 1.0)
    sums = np.asarray(Atom2Vec(norm="l1").fit(TINY).normalized_matrix().sum(1)).ravel()
    np.testing.assert_allclose(sums, 1.0)


def test_svd_reconstruction_and_rank_cap():
    model = Atom2Vec().fit(TINY)
    assert model.rank_ == 4
    vectors, k = model.vectors(200)
    assert k == 4 and vectors.shape == (6, 4)
    # U_k D_k reproduces the Gram matrix of the normalised rows: (UD)(UD)^T = X X^T.
    matrix = model.normalized_matrix().toarray()
    np.testing.assert_allclose(vectors @ vectors.T, matrix @ matrix.T, atol=1e-12)
    # elements with identical environments get identical vectors
    el = model.elements_
    np.testing.assert_allclose(vectors[el.index("Na")], vectors[el.index("K")], atol=1e-12)
    np.testing.assert_allclose(vectors[el.index("Cl")], vectors[el.index("Br")], atol=1e-12)
    assert not np.allclose(vectors[el.index("Na")], vectors[el.index("Cl")])
    # truncation keeps the leading axes, and the explained variance grows to 1
    two, k2 = model.vectors(2)
    assert k2 == 2
    np.testing.assert_allclose(two, vectors[:, :2])
    assert 0 < model.explained_variance_ratio(1) < model.explained_variance_ratio(2) < 1
    assert model.explained_variance_ratio(200) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        model.vectors(0)


def test_deterministic_and_order_independent():
    first, _ = Atom2Vec().fit(TINY).vectors(3)
    second, _ = Atom2Vec().fit(list(reversed(TINY))).vectors(3)
    np.testing.assert_array_equal(first, second)
    # sign convention: the largest-magnitude entry of each column of U is positive
    model = Atom2Vec().fit(TINY)
    u = model.left_singular_vectors_
    assert np.all(u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])] > 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="norm"):
        Atom2Vec(norm="max").fit(TINY)
    with pytest.raises(ValueError, match="count"):
        Atom2Vec(count="site").fit(TINY)
    with pytest.raises(ValueError, match="at least one"):
        Atom2Vec().fit([])


def test_build_embedding_pads_capped_dimension(tmp_path):
    from crysatom_featurizers.embeddings import ElementEmbedding

    model = Atom2Vec().fit(TINY)
    padded = build_embedding(model, 10, {"corpus": "tiny"}, pad=True)
    assert padded.name == "atom2vec" and padded.dim == 10
    assert padded.metadata["informative_dim"] == 4
    assert padded.metadata["dim_capped_by_rank"] is True
    assert padded.metadata["zero_padded_columns"] == 6
    assert padded.metadata["corpus"] == "tiny"
    np.testing.assert_array_equal(padded.vectors[:, 4:], 0.0)
    np.testing.assert_allclose(padded.vector("Fe")[:4], model.vectors(4)[0][4], rtol=1e-6)
    capped = build_embedding(model, 10, pad=False)
    assert capped.dim == 4
    path = padded.to_json(tmp_path / "atom2vec_10.json")
    again = ElementEmbedding.from_json(path)
    assert again.checksum == padded.checksum
    assert json.loads(path.read_text())["metadata"]["requested_dim"] == 10


def test_shipped_atom2vec_files_record_their_provenance():
    from crysatom_featurizers.embeddings import ElementEmbedding

    data = corpus_module.REPO_ROOT / "crysatom_featurizers" / "embeddings" / "data"
    files = sorted(data.glob("atom2vec_*.json"))
    if not files:
        pytest.skip("no atom2vec vector files generated yet (python -m training.atom2vec)")
    for path in files:
        emb = ElementEmbedding.from_json(path)
        meta = emb.metadata
        assert meta["requested_dim"] == int(path.stem.split("_")[1])
        assert emb.dim == meta["informative_dim"] == min(meta["requested_dim"], meta["matrix_rank"])
        assert meta["corpus_size"] > 80_000 and len(meta["corpus_checksum"]) == 64
        assert "10.1073/pnas.1801181115" in meta["citation"]
        assert {"Fe", "O", "Na", "Cl"} <= set(emb.symbols)


# ------------------------------------------------------------------------------ corpus


def _rock_salt(a: float, cation: str = "Na", anion: str = "Cl") -> Structure:
    """Conventional 8-site rock-salt cell with edge ``a`` (Å)."""
    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    shifted = [[(x + 0.5) % 1, y, z] for x, y, z in fcc]
    return Structure(Lattice.cubic(a), [cation] * 4 + [anion] * 4, fcc + shifted)


def _rock_salt_primitive(a: float, cation: str, anion: str) -> Structure:
    """Primitive 2-site rock-salt cell, conventional edge ``a`` (Å)."""
    h = a / 2
    lattice = Lattice([[0, h, h], [h, 0, h], [h, h, 0]])
    return Structure(lattice, [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_structure_key_invariances(nacl):
    key = structure_key(nacl)
    assert key.startswith("NaCl|8|")
    # translated copy and permuted lattice vectors: same crystal, same key
    shifted = nacl.copy()
    shifted.translate_sites(list(range(len(shifted))), [0.13, 0.2, 0.05])
    assert structure_key(shifted) == key
    m = nacl.lattice.matrix
    permuted = Structure(Lattice(m[[1, 2, 0]]), nacl.species, nacl.frac_coords[:, [1, 2, 0]])
    assert structure_key(permuted) == key
    # a 1% larger cell, the primitive cell and another compound all differ
    assert structure_key(_rock_salt(5.69 * 1.01)) != key
    assert structure_key(nacl.get_primitive_structure()) != key
    assert structure_key(_rock_salt(5.69, "K")) != key


def test_deduplicate_across_sources(nacl, fe2o3, perovskite):
    first = pd.DataFrame({"structure": [nacl, fe2o3, nacl.copy()]}, index=["a", "b", "c"])
    second = pd.DataFrame({"structure": [nacl.copy(), perovskite, _rock_salt(5.80)]})
    corpus = load_corpus([first, second])
    info = corpus.attrs["corpus"]
    assert list(corpus.columns[:4]) == ["source", "source_id", "formula", "num_sites"]
    assert info["sizes_before_dedupe"] == {"dataframe": 3, "dataframe_1": 3}
    assert info["size_before_dedupe"] == 6
    assert info["size"] == len(corpus) == 4
    assert info["duplicates_removed"] == 2
    # first occurrence wins, distinct structures stay
    assert corpus["source_id"].tolist() == ["a", "b", "1", "2"]
    assert corpus["formula"].tolist() == ["NaCl", "Fe2O3", "SrTiO3", "NaCl"]
    assert info["sizes_after_dedupe"] == {"dataframe": 2, "dataframe_1": 2}
    # the checksum depends on the set of crystals, not their order
    assert info["checksum"] == corpus_checksum(corpus.iloc[::-1])
    assert info["checksum"] != corpus_checksum(corpus.iloc[:3])
    assert corpus_info(corpus)["checksum"] == info["checksum"]
    assert load_corpus([first, second], dedupe=False).attrs["corpus"]["size"] == 6


def test_load_structures_from_cif_folder_and_json(tmp_path, nacl, perovskite):
    from matminer.utils.io import store_dataframe_as_json

    folder = tmp_path / "cifs"
    folder.mkdir()
    nacl.to(filename=str(folder / "b_nacl.cif"))
    perovskite.to(filename=str(folder / "a_sto.cif"))
    frame = load_structures(folder)
    assert frame["source"].unique().tolist() == ["cifs"]
    assert frame["source_id"].tolist() == ["a_sto", "b_nacl"]
    assert frame["formula"].tolist() == ["SrTiO3", "NaCl"]

    json_path = tmp_path / "mine.json.gz"
    store_dataframe_as_json(
        pd.DataFrame({"my_id": ["x", "y"], "structure": [nacl, perovskite]}),
        str(json_path),
        compression="gz",
    )
    loaded = load_structures(json_path, id_column="my_id")
    assert loaded["source"].iloc[0] == "mine"
    assert loaded["source_id"].tolist() == ["x", "y"]
    assert loaded["num_sites"].tolist() == [8, 5]

    with pytest.raises(KeyError, match="structure"):
        load_structures(pd.DataFrame({"formula": ["NaCl"]}))
    with pytest.raises(TypeError, match="row 0"):
        load_structures(pd.DataFrame({"structure": ["NaCl"]}))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .cif"):
        load_structures(empty)


def _synthetic_corpus() -> pd.DataFrame:
    cations = ["Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Sr", "Ba"]
    anions = ["F", "Cl", "Br", "I", "O", "S"]
    structures = [
        _rock_salt_primitive(4.0 + 0.1 * i + 0.01 * j, c, a)
        for i, c in enumerate(cations)
        for j, a in enumerate(anions)
    ]
    supercells = [s * (2, 1, 1) for s in structures[:20]]  # 4 sites
    structures.append(Structure(Lattice.cubic(3.0), ["Xe"], [[0, 0, 0]]))
    return load_corpus([structures + supercells])


def _elements(frame: pd.DataFrame) -> set[str]:
    from pymatgen.core import Composition

    return {el.symbol for f in frame["formula"] for el in Composition(f).elements}


def test_select_subset_covers_every_element():
    corpus = _synthetic_corpus()
    subset = select_subset(corpus, n=20, seed=0)
    assert len(subset) == 20
    assert _elements(subset) == _elements(corpus)
    assert subset.index.is_monotonic_increasing
    info = subset.attrs["corpus"]["subset"]
    # Xe, then LiF, LiCl, ..., LiS (6), then one crystal per remaining cation (8)
    assert info["coverage_rows"] == 15
    assert info["n"] == 20 and info["seed"] == 0 and info["elements_covered"] == 16
    assert "subset" not in corpus.attrs["corpus"]  # the parent record is left alone
    # deterministic for a seed, different for another seed
    assert select_subset(corpus, n=20, seed=0).index.equals(subset.index)
    assert not select_subset(corpus, n=20, seed=1).index.equals(subset.index)
    # coverage takes the smallest crystals first
    small = select_subset(corpus, n=15, seed=0)
    assert small["num_sites"].max() == 2 and "Xe" in set(small["formula"])
    # max_sites drops the 4-site supercells
    assert select_subset(corpus, n=40, seed=0, max_sites=2)["num_sites"].max() == 2
    assert select_subset(corpus, n=70, seed=0)["num_sites"].max() == 4
    assert len(select_subset(corpus, n=10_000)) == len(corpus)
    with pytest.raises(ValueError, match="too small"):
        select_subset(corpus, n=14)


def test_data_dir_override(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYSATOM_DATA_DIR", str(tmp_path))
    assert corpus_module.default_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="CRYSATOM_DATA_DIR"):
        corpus_module.shared_source_path("jarvis")
    with pytest.raises(ValueError, match="unknown corpus source"):
        corpus_module.shared_source_path("oqmd")


@pytest.mark.shared_data
def test_shared_corpus_files_are_found(monkeypatch):
    require_shared_data(JARVIS_PATH)
    require_shared_data(MP_PATH)
    monkeypatch.setenv("CRYSATOM_DATA_DIR", str(JARVIS_PATH.parent))
    assert corpus_module.shared_source_path("jarvis") == JARVIS_PATH
    assert corpus_module.shared_source_path("mp", data_dir=MP_PATH.parent) == MP_PATH


def test_fit_accepts_compositions():
    compositions = [Composition(f) for f in TINY[:-1]] + [Composition({Species("Fe", 0): 1})]
    from_objects, _ = Atom2Vec().fit(compositions).vectors(3)
    from_strings, _ = Atom2Vec().fit(TINY).vectors(3)
    np.testing.assert_array_equal(from_objects, from_strings)


def test_corpus_index_is_cached(tmp_path, nacl, perovskite):
    from matminer.utils.io import store_dataframe_as_json

    data = tmp_path / "data"
    data.mkdir()
    jarvis = pd.DataFrame({"jarvis_index": [0, 1], "structure": [nacl, perovskite]})
    mp = pd.DataFrame({"material_id": ["mp-1", "mp-2"], "structure": [nacl.copy(), fe_bcc()]})
    store_dataframe_as_json(jarvis, str(data / "jarvis_dft_3d_2021.json.gz"), compression="gz")
    store_dataframe_as_json(mp, str(data / "mp_crysxpp_2022.json.gz"), compression="gz")
    cache = tmp_path / "cache"
    first = corpus_module.load_corpus_index(data_dir=data, cache_dir=cache)
    assert first.attrs["from_cache"] is False
    assert "structure" not in first.columns
    assert first["source_id"].tolist() == ["0", "1", "mp-2"]
    assert first.attrs["corpus"]["sizes_after_dedupe"] == {"jarvis": 2, "mp": 1}
    second = corpus_module.load_corpus_index(data_dir=data, cache_dir=cache)
    assert second.attrs["from_cache"] is True
    pd.testing.assert_frame_equal(first, second)
    assert second.attrs["corpus"] == first.attrs["corpus"]
    full = load_corpus(data_dir=data)
    assert full.attrs["corpus"]["checksum"] == first.attrs["corpus"]["checksum"]


def fe_bcc() -> Structure:
    return Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
