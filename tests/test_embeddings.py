"""Tests of crysatom_featurizers.embeddings: the container, file formats, registry and built-ins."""

from __future__ import annotations

import copy
import gzip
import json
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from pymatgen.core.periodic_table import DummySpecies, Element, Species

from crysatom_featurizers.embeddings import (
    ELEMENT_SYMBOLS,
    ElementEmbedding,
    EmbeddingFileError,
    EmbeddingNotAvailableError,
    UnknownElementError,
    available,
    builtin,
    cgcnn_bins,
    cgcnn_feature_names,
    cgcnn_feature_table,
    load,
    random_embedding,
    register,
    registry,
    unregister,
    vectors_checksum,
)
from crysatom_featurizers.embeddings.cgcnn import _bin_index


@pytest.fixture
def toy() -> ElementEmbedding:
    return ElementEmbedding.from_dict(
        {"O": [0.5, -1.0, 2.0], "Fe": [1.0, 2.0, 3.0], "H": [0.25, 0.0, -0.125]},
        name="toy",
        metadata={"source": "unit test", "citation": "none", "note": [1, 2]},
    )


@pytest.fixture
def isolated_registry(monkeypatch, tmp_path):
    """Snapshot the registry and cache; point trained-embedding files at an empty folder."""
    registry._register_builtins()
    saved_registry = dict(registry._REGISTRY)
    saved_cache = dict(registry._CACHE)
    monkeypatch.setattr(builtin, "DATA_DIR", tmp_path)
    for key in [k for k in registry._CACHE if k[0] in builtin.TRAINED_EMBEDDINGS]:
        del registry._CACHE[key]
    yield tmp_path
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved_registry)
    registry._CACHE.clear()
    registry._CACHE.update(saved_cache)


# ------------------------------------------------------------------ container
def test_from_dict_sorts_by_atomic_number_and_freezes(toy):
    assert toy.symbols == ["H", "O", "Fe"]
    assert toy.dim == 3 and len(toy) == 3
    assert toy.vectors.dtype == np.float32
    np.testing.assert_array_equal(toy.vector("Fe"), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(toy.vectors[1], [0.5, -1.0, 2.0])
    assert not toy.vectors.flags.writeable
    with pytest.raises(ValueError):
        toy.vectors[0, 0] = 9.0
    np.testing.assert_array_equal(toy.atomic_numbers, [1, 8, 26])


def test_metadata_has_standard_fields_and_is_a_copy(toy):
    meta = toy.metadata
    for key in ("source", "citation", "corpus", "corpus_size", "license", "dim", "checksum"):
        assert key in meta
    assert meta["dim"] == 3 and meta["checksum"] == toy.checksum and meta["note"] == [1, 2]
    meta["checksum"] = "tampered"
    meta["note"].append(3)
    assert toy.metadata["checksum"] == toy.checksum and toy.metadata["note"] == [1, 2]


def test_checksum_definition(toy):
    digest = vectors_checksum(toy.symbols, toy.vectors)
    assert toy.checksum == digest and len(digest) == 64
    import hashlib

    expected = hashlib.sha256(
        b"H,O,Fe\n" + np.asarray(toy.vectors, dtype="<f4").tobytes()
    ).hexdigest()
    assert digest == expected
    changed = np.array(toy.vectors)
    changed[0, 0] += 1.0
    assert vectors_checksum(toy.symbols, changed) != digest


def test_from_dict_accepts_elements_and_atomic_numbers():
    emb = ElementEmbedding.from_dict({Element("Si"): [1.0], 6: [2.0]})
    assert emb.symbols == ["C", "Si"] and emb.name == "custom"


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"Fe": [1.0], "Xx": [2.0]}, "not an element symbol"),
        ({"Fe": [1.0], 26: [2.0]}, "duplicate"),
        ({"Fe": [1.0, 2.0], "O": [1.0]}, "differ in length"),
        ({"Fe": [np.nan]}, "non-finite"),
        ({"Fe": [[1.0]]}, "1-D"),
        ({}, "non-empty"),
    ],
)
def test_from_dict_rejects_bad_input(mapping, match):
    with pytest.raises(ValueError, match=match):
        ElementEmbedding.from_dict(mapping)


def test_constructor_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        ElementEmbedding("x", ["H", "He"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match="non-finite"):
        ElementEmbedding("x", ["H"], [[1e39]])  # overflows float32
    with pytest.raises(ValueError, match="name"):
        ElementEmbedding("", ["H"], [[1.0]])


@pytest.mark.parametrize(
    "item", ["Fe", "Fe2+", "Fe3+", 26, np.int64(26), Element("Fe"), Species("Fe", 3), " Fe "]
)
def test_species_and_elements_map_to_the_element(toy, item):
    np.testing.assert_array_equal(toy.vector(item), toy.vector("Fe"))
    assert item in toy


def test_anion_species(toy):
    np.testing.assert_array_equal(toy.vector("O2-"), toy.vector("O"))
    np.testing.assert_array_equal(toy.vector(Species("O", -2)), toy.vector("O"))


def test_unknown_element_error_names_element_embedding_and_coverage():
    skipatom = load("skipatom")
    with pytest.raises(UnknownElementError) as info:
        skipatom.vector("He")
    error = info.value
    assert isinstance(error, ValueError)
    message = str(error)
    assert "He" in message and "'skipatom'" in message
    assert "86 elements" in message and "Li, Be" in message and "Pu" in message
    assert error.element == "He" and error.embedding_name == "skipatom"
    assert error.covered == tuple(skipatom.symbols)
    assert "He" not in skipatom and "He+" not in skipatom
    with pytest.raises(UnknownElementError, match="Ar"):
        skipatom.vector(Species("Ar", 0))


@pytest.mark.parametrize("item", [DummySpecies("X"), DummySpecies("Xa", 2), "X", "X0+"])
def test_dummy_species_raise(toy, item):
    with pytest.raises(UnknownElementError, match="dummy species") as info:
        toy.vector(item)
    assert "'toy'" in str(info.value) and "H, O, Fe" in str(info.value)
    assert item not in toy


@pytest.mark.parametrize("item", ["Foo", "", 0, 119, 3.5, None, True])
def test_unparseable_input_raises_unknown_element(toy, item):
    with pytest.raises(UnknownElementError):
        toy.vector(item)
    assert item not in toy


def test_unknown_element_error_pickles():
    error = UnknownElementError("He", "toy", ["H", "O"])
    clone = pickle.loads(pickle.dumps(error))
    assert str(clone) == str(error) and clone.covered == ("H", "O")
    file_error = pickle.loads(pickle.dumps(EmbeddingFileError("a.json", "bad")))
    assert str(file_error) == str(EmbeddingFileError("a.json", "bad"))


def test_vectors_for(toy):
    stacked = toy.vectors_for(["Fe", "O2-", "H"])
    np.testing.assert_array_equal(stacked, toy.vectors[[2, 1, 0]])
    assert stacked.flags.writeable  # a copy the caller owns
    with pytest.raises(UnknownElementError):
        toy.vectors_for(["Fe", "Ni"])


def test_as_dataframe(toy):
    df = toy.as_dataframe()
    assert list(df.index) == ["H", "O", "Fe"] and df.index.name == "element"
    assert list(df.columns) == ["toy_0", "toy_1", "toy_2"]
    np.testing.assert_array_equal(df.to_numpy(), toy.vectors)
    df.iloc[0, 0] = 99.0  # the frame is a copy
    assert toy.vectors[0, 0] == 0.25


def test_lookup_table(toy):
    table, covered = toy.lookup_table()
    assert table.shape == (119, 3) and table.dtype == np.float32
    assert covered.shape == (119,) and covered.dtype == bool
    assert np.flatnonzero(covered).tolist() == [1, 8, 26]
    np.testing.assert_array_equal(table[26], toy.vector("Fe"))
    assert np.isnan(table[0]).all() and np.isnan(table[2]).all()
    assert not table.flags.writeable and not covered.flags.writeable
    small, small_covered = toy.lookup_table(max_z=10)
    assert small.shape == (11, 3) and np.flatnonzero(small_covered).tolist() == [1, 8]
    assert toy.lookup_table() is toy.lookup_table()
    with pytest.raises(ValueError):
        toy.lookup_table(0)


def test_pickle_and_deepcopy_keep_vectors_read_only(toy):
    for clone in (pickle.loads(pickle.dumps(toy)), copy.deepcopy(toy)):
        assert clone == toy and clone.checksum == toy.checksum
        assert clone.metadata == toy.metadata
        assert not clone.vectors.flags.writeable
    assert toy != toy.renamed("other") and toy.renamed("other").checksum == toy.checksum


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
def test_json_round_trip(toy, tmp_path, suffix):
    path = toy.to_json(tmp_path / f"toy{suffix}")
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    back = ElementEmbedding.from_json(path)
    assert back == toy and back.symbols == toy.symbols
    np.testing.assert_array_equal(back.vectors, toy.vectors)
    assert back.metadata == toy.metadata


def test_json_document_is_plain_and_explicit(toy, tmp_path):
    document = json.loads(toy.to_json(tmp_path / "toy.json").read_text())
    assert document["format"] == "crysatom-featurizers/element-embedding"
    assert document["format_version"] == 1
    assert document["name"] == "toy" and document["dim"] == 3
    assert document["symbols"] == ["H", "O", "Fe"]
    assert document["vectors"][2] == [1.0, 2.0, 3.0]
    assert document["metadata"]["checksum"] == toy.checksum


def test_json_round_trip_is_exact_for_arbitrary_float32(tmp_path):
    emb = random_embedding(dim=64, seed=7)
    back = ElementEmbedding.from_json(emb.to_json(tmp_path / "r.json"))
    assert back.checksum == emb.checksum
    np.testing.assert_array_equal(back.vectors, emb.vectors)


def test_unsorted_json_file_loads_sorted(toy, tmp_path):
    document = toy.to_document()
    document["symbols"] = document["symbols"][::-1]
    document["vectors"] = document["vectors"][::-1]
    document["metadata"]["checksum"] = vectors_checksum(
        document["symbols"], np.asarray(document["vectors"])
    )
    path = tmp_path / "reversed.json"
    path.write_text(json.dumps(document))
    assert ElementEmbedding.from_json(path) == toy


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_csv_round_trip(toy, tmp_path, suffix):
    path = toy.to_csv(tmp_path / f"toy{suffix}")
    back = ElementEmbedding.from_csv(path)
    assert back.name == "toy" and back.checksum == toy.checksum
    assert ElementEmbedding.from_csv(path, name="mine").name == "mine"


def test_csv_without_header(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("Fe,1,2\nO,3,4\n\n")
    emb = ElementEmbedding.from_csv(path)
    assert emb.symbols == ["O", "Fe"] and emb.name == "plain"
    np.testing.assert_array_equal(emb.vector("Fe"), [1.0, 2.0])


def test_csv_exact_float32_round_trip(tmp_path):
    emb = random_embedding(dim=16, seed=3)
    assert ElementEmbedding.from_csv(emb.to_csv(tmp_path / "r.csv")).checksum == emb.checksum


def _write_json(path, document):
    path.write_text(json.dumps(document))
    return path


def _bad_json_files(toy, tmp_path):
    """(path, expected fragment of the message) for every corrupt JSON case."""
    good = toy.to_document()
    cases = []

    gz = toy.to_json(tmp_path / "ok.json.gz").read_bytes()
    truncated = tmp_path / "truncated.json.gz"
    truncated.write_bytes(gz[: len(gz) // 2])
    cases.append((truncated, "truncated"))

    garbage = tmp_path / "garbage.json.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"\x00not gzip at all" * 4)
    cases.append((garbage, "gzip"))

    bad_json = tmp_path / "bad.json"
    bad_json.write_text(json.dumps(good)[:-40])
    cases.append((bad_json, "not valid JSON"))

    empty = tmp_path / "empty.json"
    empty.write_text("")
    cases.append((empty, "empty"))

    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    cases.append((binary, "UTF-8"))

    not_object = _write_json(tmp_path / "list.json", [1, 2, 3])
    cases.append((not_object, "JSON object"))

    missing = dict(good)
    del missing["symbols"]
    cases.append((_write_json(tmp_path / "missing.json", missing), "missing fields ['symbols']"))

    wrong_format = dict(good, format="something-else")
    cases.append((_write_json(tmp_path / "format.json", wrong_format), "format"))

    wrong_version = dict(good, format_version=99)
    cases.append((_write_json(tmp_path / "version.json", wrong_version), "format_version"))

    short_row = copy.deepcopy(good)
    short_row["vectors"][1] = short_row["vectors"][1][:2]
    cases.append((_write_json(tmp_path / "short_row.json", short_row), "wrong shape"))

    missing_row = copy.deepcopy(good)
    missing_row["vectors"] = missing_row["vectors"][:2]
    cases.append((_write_json(tmp_path / "missing_row.json", missing_row), "wrong shape"))

    wrong_dim = dict(good, dim=4)
    cases.append((_write_json(tmp_path / "dim.json", wrong_dim), "wrong shape"))

    nan_path = tmp_path / "nan.json"
    nan_doc = copy.deepcopy(good)
    nan_doc["vectors"][2][1] = float("nan")
    nan_path.write_text(json.dumps(nan_doc))  # Python writes NaN, which json.loads accepts
    cases.append((nan_path, "non-finite"))

    text_value = copy.deepcopy(good)
    text_value["vectors"][0][0] = "1.0"
    cases.append((_write_json(tmp_path / "text.json", text_value), "non-numbers"))

    unknown = copy.deepcopy(good)
    unknown["symbols"][1] = "Xx"
    cases.append((_write_json(tmp_path / "unknown.json", unknown), "unknown element symbols"))

    duplicate = copy.deepcopy(good)
    duplicate["symbols"][1] = "H"
    cases.append((_write_json(tmp_path / "duplicate.json", duplicate), "duplicate"))

    tampered = copy.deepcopy(good)
    tampered["vectors"][2][0] = 1.5
    cases.append((_write_json(tmp_path / "tampered.json", tampered), "checksum mismatch"))

    no_checksum = copy.deepcopy(good)
    del no_checksum["metadata"]["checksum"]
    cases.append((_write_json(tmp_path / "no_checksum.json", no_checksum), "checksum"))
    return cases


def test_every_corrupt_json_file_raises_embedding_file_error(toy, tmp_path):
    cases = _bad_json_files(toy, tmp_path)
    assert len(cases) == 18
    for path, fragment in cases:
        with pytest.raises(EmbeddingFileError) as info:
            ElementEmbedding.from_json(path)
        message = str(info.value)
        assert str(path) in message, message
        assert fragment in message, (path.name, message)
        assert isinstance(info.value, ValueError) and info.value.path == str(path)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("element,a,b\nFe,1,2\nO,3\n", "wrong shape"),
        ("element,a,b\nFe,1,2\nO,3,x\n", "not a number"),
        ("element,a,b\nFe,1,2\nO,3,nan\n", "non-finite"),
        ("element,a,b\nFe,1,2\nQq,3,4\n", "unknown element symbols"),
        ("element,a,b\nFe,1,2\nFe,3,4\n", "duplicate"),
        ("element,a,b\n", "no data rows"),
        ("Fe\nO\n", "element column"),
    ],
)
def test_corrupt_csv_files_raise_embedding_file_error(tmp_path, content, fragment):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(EmbeddingFileError) as info:
        ElementEmbedding.from_csv(path)
    assert str(path) in str(info.value) and fragment in str(info.value)


def test_truncated_gzip_csv(toy, tmp_path):
    data = toy.to_csv(tmp_path / "toy.csv.gz").read_bytes()
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[:-10])
    with pytest.raises(EmbeddingFileError, match="truncated"):
        ElementEmbedding.from_csv(path)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        ElementEmbedding.from_json(tmp_path / "nothing.json")
    with pytest.raises(FileNotFoundError):
        ElementEmbedding.from_csv(tmp_path / "nothing.csv")


def test_files_are_never_unpickled(toy, tmp_path):
    path = tmp_path / "pickled.json"
    path.write_bytes(pickle.dumps(toy))
    with pytest.raises(EmbeddingFileError):
        ElementEmbedding.from_json(path)


# ------------------------------------------------------------------ built-ins
@pytest.mark.parametrize(
    ("name", "dim", "n_elements", "first", "last"),
    [
        ("cgcnn", 92, 100, "H", "Fm"),
        ("onehot", 103, 103, "H", "Lr"),
        ("random", 200, 100, "H", "Fm"),
        ("skipatom", 200, 86, "H", "Pu"),
        ("mat2vec", 200, 118, "H", "Og"),
        ("megnet16", 16, 94, "H", "Pu"),
        ("magpie", 22, 97, "H", "Bk"),
        ("matscholar", 200, 103, "H", "Lr"),
    ],
)
def test_builtin_shapes(name, dim, n_elements, first, last):
    emb = load(name)
    assert emb.name == name and emb.dim == dim and len(emb) == n_elements
    assert emb.vectors.shape == (n_elements, dim) and emb.vectors.dtype == np.float32
    assert emb.symbols[0] == first and emb.symbols[-1] == last
    assert np.isfinite(emb.vectors).all()
    zs = emb.atomic_numbers
    assert (np.diff(zs) > 0).all()
    meta = emb.metadata
    assert meta["dim"] == dim and meta["checksum"] == emb.checksum and meta["license"]


def test_elementembeddings_vectors_match_the_package():
    from elementembeddings.core import Embedding

    for name in ("skipatom", "mat2vec", "megnet16", "magpie"):
        reference = Embedding.load_data(name)
        ours = load(name)
        expected = {s: np.asarray(v, dtype=np.float64) for s, v in reference.embeddings.items()}
        assert set(ours.symbols) == set(expected) - {"Null"}, name
        for symbol in ours.symbols:
            np.testing.assert_array_equal(
                ours.vector(symbol), expected[symbol].astype(np.float32), err_msg=name
            )
    np.testing.assert_array_equal(
        load("skipatom").vector("Fe"),
        np.asarray(Embedding.load_data("skipatom").embeddings["Fe"], dtype=np.float32),
    )


def test_elementembeddings_metadata():
    meta = load("skipatom").metadata
    assert "10.1038/s41524-022-00729-3" in meta["citation"]
    assert "MIT" in meta["license"] and meta["original_license"]
    assert "Materials Project" in meta["corpus"]
    assert load("megnet16").metadata["dropped_not_elements"] == ["Null"]
    magpie = load("magpie")
    assert magpie.metadata["feature_names"][:2] == ["Number", "MendeleevNumber"]
    assert magpie.vector("Fe")[0] == 26.0  # raw values, not standardized


def test_onehot():
    emb = load("onehot")
    np.testing.assert_array_equal(emb.vectors, np.eye(103, dtype=np.float32))
    assert emb.vector("Fe2+")[25] == 1.0 and emb.vector("Fe").sum() == 1.0


def test_random_is_reproducible_and_seeded():
    emb = load("random", dim=4)
    # checksum of the generated vectors (PCG64 seed 0, standard normal, H..Fm)
    assert emb.checksum == "3e987e4c5b1d7185c8bbcac03bd787fdd5d61dba65f66f32f53e73ccce8ef049"
    np.testing.assert_allclose(emb.vector("H")[0], 0.1257302210933933, rtol=1e-6)
    assert random_embedding(4, seed=0).checksum == emb.checksum
    assert load("random", dim=4, seed=1).checksum != emb.checksum
    assert load("random", dim=4, seed=0) is emb
    assert load("random", dim=4, seed=1) is load("random", dim=4, seed=1)
    assert load("random").dim == 200 and load("random").metadata["seed"] == 0
    assert load("random", dim=4, seed=5).metadata["seed"] == 5


def test_random_any_dimension_and_distribution():
    emb = load("random", dim=1000)
    assert emb.vectors.shape == (100, 1000)
    assert abs(float(emb.vectors.mean())) < 0.02
    assert abs(float(emb.vectors.std()) - 1.0) < 0.02
    assert load("random", dim=1).dim == 1
    for bad in (0, -3, 2.5, "10", True):
        with pytest.raises(ValueError, match="dim"):
            load("random", dim=bad)
    with pytest.raises(ValueError, match="seed"):
        random_embedding(4, seed=-1)


# ------------------------------------------------------------------ cgcnn
def test_cgcnn_layout():
    bins = cgcnn_bins()
    assert [b["property"] for b in bins] == [
        "group",
        "period",
        "electronegativity",
        "covalent_radius",
        "valence_electrons",
        "first_ionization_energy",
        "electron_affinity",
        "block",
        "atomic_volume",
    ]
    assert [b["size"] for b in bins] == [19, 7, 10, 10, 12, 10, 10, 4, 10]
    assert [b["offset"] for b in bins] == [0, 19, 26, 36, 46, 58, 68, 78, 82]
    assert sum(b["size"] for b in bins) == 92
    edges = {b["property"]: b.get("edges") for b in bins}
    assert (
        edges["electronegativity"][:3] == [0.5, 0.85, 1.2] and edges["electronegativity"][-1] == 4.0
    )
    assert edges["covalent_radius"][1] == 47.5 and edges["covalent_radius"][-1] == 250.0
    assert edges["electron_affinity"][:2] == [-3.0, -2.33] and edges["electron_affinity"][-1] == 3.7
    assert edges["first_ionization_energy"] == pytest.approx(np.linspace(1.3, 3.3, 11))
    assert edges["atomic_volume"] == pytest.approx(np.linspace(1.5, 4.3, 11))
    meta = load("cgcnn").metadata
    assert meta["bins"] == bins
    names = cgcnn_feature_names()
    assert len(names) == 92 and meta["feature_names"] == names
    assert names[8] == "group=8" and names[0] == "group=f-block" and names[78] == "block=s"


def test_cgcnn_known_elements():
    emb = load("cgcnn")
    # Fe: group 8, period 4, X=1.83 -> [1.55,1.9), r=142 pm -> [137.5,160),
    # 8 valence electrons, ln(7.90 eV)=2.07 -> [1.9,2.1), EA 0.15 eV -> [-0.32,0.35),
    # d block, ln(7.09 cm3/mol)=1.96 -> [1.78,2.06)
    assert np.flatnonzero(emb.vector("Fe")).tolist() == [8, 22, 29, 41, 53, 61, 72, 80, 83]
    # Li agrees with the original CGCNN atom_init.json column for column
    assert np.flatnonzero(emb.vector("Li")).tolist() == [1, 20, 27, 40, 46, 59, 73, 78, 85]
    # O: group 16, period 2, X=3.44 -> [3.3,3.65), 6 valence electrons, p block
    o = np.flatnonzero(emb.vector("O")).tolist()
    assert o[:2] == [16, 20] and 26 + 8 in o and 46 + 5 in o and 79 in o
    # f-block elements use column 0 of the group block and valence 2; Lu is group 3, d block
    for symbol in ("La", "Ce", "Yb", "Ac", "U"):
        v = emb.vector(symbol)
        assert v[0] == 1.0 and v[1:19].sum() == 0 and v[81] == 1.0 and v[47] == 1.0, symbol
    lu = emb.vector("Lu")
    assert lu[0] == 0.0 and lu[3] == 1.0 and lu[80] == 1.0
    # He is put in the s block; it has no electronegativity -> zero block
    he = emb.vector("He")
    assert he[78] == 1.0 and he[26:36].sum() == 0 and he[18] == 1.0


def test_cgcnn_one_hot_per_block_or_documented_gap():
    emb = load("cgcnn")
    missing = emb.metadata["missing_properties"]
    assert missing["He"] == ["electronegativity"] and "covalent_radius" in missing["Fm"]
    assert set(emb.vectors.ravel().tolist()) == {0.0, 1.0}
    for symbol, vector in zip(emb.symbols, emb.vectors):
        for block in cgcnn_bins():
            total = vector[block["offset"] : block["offset"] + block["size"]].sum()
            expected = 0.0 if block["property"] in missing.get(symbol, []) else 1.0
            assert total == expected, (symbol, block["property"])


def test_bin_index_rule():
    edges = [0.5, 0.85, 1.2, 1.55, 1.9, 2.25, 2.6, 2.95, 3.3, 3.65, 4.0]
    assert _bin_index(1.2, edges) == 2  # a value on an edge goes to the upper bin
    assert _bin_index(1.19, edges) == 1
    assert _bin_index(0.1, edges) == 0 and _bin_index(4.0, edges) == 9 and _bin_index(9, edges) == 9
    gd = np.flatnonzero(load("cgcnn").vector("Gd")).tolist()  # Pauling X of Gd is exactly 1.20
    assert 26 + 2 in gd


def test_cgcnn_feature_table():
    table = cgcnn_feature_table()
    emb = load("cgcnn")
    assert table.shape == (119, 92) and table.dtype == np.float32
    assert not table[0].any() and not table[101:].any()
    for z in (1, 8, 26, 57, 100):
        np.testing.assert_array_equal(table[z], emb.vector(ELEMENT_SYMBOLS[z - 1]))
    assert cgcnn_feature_table(max_z=30).shape == (31, 92)
    lookup, covered = emb.lookup_table()
    np.testing.assert_array_equal(lookup[covered], table[covered])
    table[1, 0] = 5.0  # a fresh array each call
    assert cgcnn_feature_table()[1, 0] == 0.0


# ------------------------------------------------------------------ registry
def test_available_lists_every_builtin():
    table = available()
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == [
        "name",
        "dims",
        "default_dim",
        "source",
        "citation",
        "license",
        "corpus",
        "description",
        "leak",
    ]
    names = set(table["name"])
    expected = {"crysatom", "atom2vec", "skipatom", "mat2vec", "megnet16", "magpie"}
    assert expected | {"random", "onehot", "cgcnn"} <= names
    row = table.set_index("name").loc["skipatom"]
    assert row["dims"] == [200] and row["default_dim"] == 200 and "MIT" in row["license"]
    assert table.set_index("name").loc["random", "default_dim"] == 200
    assert table.set_index("name").loc["cgcnn", "dims"] == [92]


FOUNDATION_TABLES = {
    "chgnet": (64, "potential"),
    "mace_mp0": (128, "potential"),
    "orb_v2": (256, "potential"),
    "sevennet": (128, "potential"),
    "crystallm": (512, "label-free"),
    "chemeleon": (512, "label-free"),
    "matscibert": (768, "label-free"),
}


@pytest.mark.parametrize("name", sorted(FOUNDATION_TABLES))
def test_foundation_model_tables_load_with_leak_class(name):
    dim, leak = FOUNDATION_TABLES[name]
    row = available().set_index("name").loc[name]
    assert row["dims"] == [dim] and row["leak"].startswith(f"{leak}:")
    embedding = load(name)
    assert embedding.dim == dim
    assert {"Fe", "O", "Si"} <= set(embedding.symbols)
    assert np.isfinite(np.asarray(embedding.vector("Fe"))).all()
    assert embedding.metadata["leak_class"] == leak
    cells = embedding.metadata["leak"]
    if leak == "potential":  # MPtrj held the MP energies of the benchmark crystals
        assert cells["formation_energy_per_atom"] == "seen"
        assert cells["formation_energy_peratom"] == "related"
    assert cells["mbj_bandgap"] == "unseen" and cells["bulk_modulus_kv"] == "unseen"
    # the file is read in place from the installed package, never copied into this one
    assert "elementembeddings" in embedding.metadata["source"]


def test_every_registry_entry_has_a_leak_class():
    table = available()
    assert table["leak"].notna().all()
    assert table.set_index("name").loc["megnet16", "leak"].startswith("mp-formation-energy")
    assert "K unseen" in table.set_index("name").loc["uae", "leak"]


def test_load_is_cached_and_case_insensitive():
    assert load("cgcnn") is load("cgcnn") is load("CGCNN", dim=92)
    assert load("skipatom", 200) is load("skipatom")


def test_load_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown embedding 'nope'") as info:
        load("nope")
    assert "skipatom" in str(info.value) and "random" in str(info.value)


def test_load_unsupported_dim_lists_dims():
    with pytest.raises(ValueError, match=r"supported dims: \[200\]"):
        load("skipatom", dim=100)
    with pytest.raises(ValueError, match=r"\[50, 100, 200, 1200\]"):
        load("crysatom", dim=64)


def test_load_rejects_unknown_parameters():
    with pytest.raises(ValueError, match="does not take parameters"):
        load("skipatom", seed=3)
    with pytest.raises(ValueError, match="hashable"):
        load("random", dim=3, seed=[1])


def test_trained_embedding_not_generated(isolated_registry):
    row = available().set_index("name").loc["crysatom"]
    assert row["dims"] == []
    with pytest.raises(EmbeddingNotAvailableError, match="python -m training.pretrain") as info:
        load("crysatom")
    assert isinstance(info.value, FileNotFoundError)
    assert "not been generated" in str(info.value) and "crysatom_1200.json" in str(info.value)
    with pytest.raises(EmbeddingNotAvailableError, match="crysatom_200.json"):
        load("crysatom_final")  # the final-layer files of crysatom
    with pytest.raises(EmbeddingNotAvailableError, match="training.atom2vec"):
        load("atom2vec", dim=50)


def test_trained_embedding_from_file(isolated_registry):
    data_dir = isolated_registry
    vectors = ElementEmbedding.from_dict(
        {s: np.full(50, i, dtype=np.float32) for i, s in enumerate(["H", "O", "Fe"])},
        name="crysatom",
    )
    vectors.to_json(data_dir / "crysatom_50.json.gz")
    row = available().set_index("name").loc["crysatom"]
    assert row["dims"] == [50] and row["default_dim"] == 50
    loaded = load("crysatom", dim=50)
    assert loaded == vectors and load("crysatom") is loaded
    # a file holding something else is refused
    vectors.renamed("atom2vec").to_json(data_dir / "atom2vec_100.json")
    with pytest.raises(
        EmbeddingFileError, match="dimension 50, expected 'atom2vec' of dimension 100"
    ):
        load("atom2vec", dim=100)


def test_rank_capped_trained_file(isolated_registry):
    """Atom2Vec cannot have more dimensions than its matrix rank: the file keeps the request."""
    capped = ElementEmbedding.from_dict(
        {"H": [1.0, 0.0, 0.0], "O": [0.0, 1.0, 0.0], "Fe": [0.0, 0.0, 1.0]},
        name="atom2vec",
        metadata={"requested_dim": 200, "dim_capped_by_rank": True},
    )
    capped.to_json(isolated_registry / "atom2vec_200.json")
    assert available().set_index("name").loc["atom2vec", "dims"] == [200]
    loaded = load("atom2vec", dim=200)
    assert loaded.dim == 3 and loaded.metadata["requested_dim"] == 200
    capped.to_json(isolated_registry / "atom2vec_50.json")
    with pytest.raises(EmbeddingFileError, match="expected 'atom2vec' of dimension 50"):
        load("atom2vec", dim=50)


def test_register_embedding(isolated_registry, toy):
    register("my_vectors", toy)
    loaded = load("my_vectors")
    assert loaded.name == "my_vectors" and loaded.checksum == toy.checksum
    assert load("My_Vectors", dim=3) is loaded
    row = available().set_index("name").loc["my_vectors"]
    assert row["dims"] == [3] and row["source"] == "unit test"
    with pytest.raises(ValueError, match="supported dims: \\[3\\]"):
        load("my_vectors", dim=4)
    with pytest.raises(ValueError, match="already registered"):
        register("my_vectors", toy)
    other = ElementEmbedding.from_dict({"Li": [1.0, 2.0]}, name="my_vectors")
    register("my_vectors", other, overwrite=True)
    assert load("my_vectors") is not loaded and load("my_vectors").dim == 2
    with pytest.raises(ValueError, match="do not match"):
        register("mismatch", toy, dims=[5])
    unregister("my_vectors")
    with pytest.raises(ValueError, match="unknown embedding"):
        load("my_vectors")


def test_register_factory(isolated_registry):
    calls = []

    def factory(dim, scale=1.0):
        calls.append((dim, scale))
        return ElementEmbedding.from_dict({"H": np.full(dim, scale)}, name="scaled")

    register("scaled", factory, dims=[2, 4], info={"description": "test factory"})
    assert load("scaled").dim == 2 and load("scaled", dim=4, scale=3.0).vector("H")[0] == 3.0
    load("scaled")
    assert calls == [(2, 1.0), (4, 3.0)]
    assert available().set_index("name").loc["scaled", "description"] == "test factory"
    with pytest.raises(ValueError, match="supported dims"):
        load("scaled", dim=3)
    with pytest.raises(TypeError):
        register("broken", 42)
    register("any_dim", factory)
    assert load("any_dim", dim=7).dim == 7

    register("liar", lambda dim: ElementEmbedding.from_dict({"H": [1.0]}), dims=[2])
    with pytest.raises(ValueError, match="returned dimension 1"):
        load("liar")


def test_register_can_replace_builtin_only_with_overwrite(isolated_registry, toy):
    with pytest.raises(ValueError, match="already registered"):
        register("cgcnn", toy)
    register("cgcnn", toy, overwrite=True)
    assert load("cgcnn").dim == 3


def test_package_exports_and_no_torch_import():
    import crysatom_featurizers

    assert crysatom_featurizers.load_embedding is load
    assert crysatom_featurizers.available_embeddings is available
    assert crysatom_featurizers.ElementEmbedding is ElementEmbedding
    code = (
        "import sys, crysatom_featurizers.embeddings as e; e.load('onehot'); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_gzip_files_are_reproducible(toy, tmp_path):
    first = toy.to_json(tmp_path / "a.json.gz").read_bytes()
    second = toy.to_json(tmp_path / "b.json.gz").read_bytes()
    assert first == second
    assert json.loads(gzip.decompress(first))["name"] == "toy"
