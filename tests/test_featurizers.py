"""Tests of crysatom_featurizers.featurizers: site, composition and structure featurizers and the
matminer data source."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, DummySpecies, Element, Lattice, Species, Structure

from crysatom_featurizers.embeddings import ElementEmbedding, UnknownElementError, load
from crysatom_featurizers.featurizers import (
    CRYSATOM_CITATION,
    Atom2VecCompositionFeaturizer,
    Atom2VecSiteFeaturizer,
    Atom2VecStructureFeaturizer,
    CrysAtomCompositionFeaturizer,
    CrysAtomElementData,
    CrysAtomSiteFeaturizer,
    CrysAtomStructureFeaturizer,
    ElementEmbeddingCompositionFeaturizer,
    ElementEmbeddingSiteFeaturizer,
    ElementEmbeddingStructureFeaturizer,
    EmbeddingElementData,
    RandomCompositionFeaturizer,
    RandomSiteFeaturizer,
    RandomStructureFeaturizer,
    SkipAtomCompositionFeaturizer,
    SkipAtomSiteFeaturizer,
    SkipAtomStructureFeaturizer,
    clear_formula_cache,
)
from crysatom_featurizers.featurizers._chemistry import _fast_parse, composition_arrays

ALL_STATS = ("mean", "std_dev", "min", "max", "range", "avg_dev", "mode", "skewness", "kurtosis")
MATMINER_NAMES = {"min": "minimum", "max": "maximum"}
FORMULAS = [
    "Fe2O3",
    "NaCl",
    "LiFePO4",
    "Fe",
    "Ba4NaBi",
    "MoW3(SeS3)2",
    "Ca3(PO4)2",
    "K4[Fe(CN)6]",
    "Li0.5CoO2",
    "Fe0.5Ni0.5O",
    "CuZnSnS4",
    "SiO2",
]


@pytest.fixture(scope="module")
def skipatom() -> ElementEmbedding:
    return load("skipatom")


@pytest.fixture
def composition_featurizer() -> ElementEmbeddingCompositionFeaturizer:
    return ElementEmbeddingCompositionFeaturizer("skipatom")


def vec(embedding: ElementEmbedding, symbol: str) -> np.ndarray:
    return np.asarray(embedding.vector(symbol), dtype=np.float64)


def block(features, stat_index: int, dim: int) -> np.ndarray:
    return np.asarray(features, dtype=np.float64)[..., stat_index * dim : (stat_index + 1) * dim]


def vacancy_structure() -> Structure:
    """CsCl-type cell whose cation site is 60 % Li and 40 % vacant."""
    return Structure(Lattice.cubic(3.0), [{"Li": 0.6}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


# ----------------------------------------------------------------------------- labels, shapes
def test_labels_shapes_and_dims(skipatom, nacl):
    composition = ElementEmbeddingCompositionFeaturizer("skipatom")
    labels = composition.feature_labels()
    assert len(labels) == 5 * 200
    assert labels[0] == "mean skipatom_0"
    assert labels[200 + 12] == "std_dev skipatom_12"
    assert labels[-1] == "range skipatom_199"
    assert len(composition.featurize("Fe2O3")) == len(labels)

    small = RandomCompositionFeaturizer(dim=16, stats=("mean", "max"))
    assert small.feature_labels()[:2] == ["mean random_0", "mean random_1"]
    assert np.asarray(small.featurize_many(["NaCl", "Fe2O3"])).shape == (2, 32)

    site = ElementEmbeddingSiteFeaturizer("skipatom")
    assert site.feature_labels()[3] == "site skipatom_3"
    assert len(site.featurize(nacl, 0)) == 200

    structure = ElementEmbeddingStructureFeaturizer("random", dim=8, stats=("mean",))
    assert structure.feature_labels() == [f"mean random_{i}" for i in range(8)]
    assert len(structure.featurize(nacl)) == 8


def test_unsupported_stat_is_rejected():
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean", "median"))
    with pytest.raises(ValueError, match="median"):
        featurizer.featurize("NaCl")


def test_named_subclasses_fix_their_embedding():
    pairs = [
        (CrysAtomCompositionFeaturizer, "crysatom"),
        (CrysAtomSiteFeaturizer, "crysatom"),
        (CrysAtomStructureFeaturizer, "crysatom"),
        (Atom2VecCompositionFeaturizer, "atom2vec"),
        (Atom2VecSiteFeaturizer, "atom2vec"),
        (Atom2VecStructureFeaturizer, "atom2vec"),
        (SkipAtomCompositionFeaturizer, "skipatom"),
        (SkipAtomSiteFeaturizer, "skipatom"),
        (SkipAtomStructureFeaturizer, "skipatom"),
        (RandomCompositionFeaturizer, "random"),
        (RandomSiteFeaturizer, "random"),
        (RandomStructureFeaturizer, "random"),
    ]
    for cls, name in pairs:
        assert cls.preset == name and cls().embedding == name
        assert "embedding" not in cls().get_params()
        assert cls().embedding_.name == name
    assert SkipAtomCompositionFeaturizer().feature_labels()[0] == "mean skipatom_0"


def test_crysatom_vectors_when_trained():
    try:
        embedding = load("crysatom")
    except FileNotFoundError as error:
        pytest.skip(f"crysatom vectors not generated yet: {error}")
    featurizer = CrysAtomCompositionFeaturizer()
    assert featurizer.feature_labels()[0] == "mean crysatom_0"
    dim = embedding.dim
    np.testing.assert_allclose(block(featurizer.featurize("Fe"), 0, dim), vec(embedding, "Fe"))
    final = CrysAtomCompositionFeaturizer(dim=200)
    np.testing.assert_allclose(
        block(final.featurize("Fe"), 0, 200), vec(load("crysatom_final", 200), "Fe")
    )
    source = CrysAtomElementData()
    assert source.get_elemental_property(Element("O"), "crysatom_3") == pytest.approx(
        float(embedding.vector("O")[3])
    )


# ----------------------------------------------------------------------------- values
def test_values_equal_the_embedding_table(skipatom, nacl):
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    for symbol in ("Fe", "O", "Na"):
        features = np.asarray(featurizer.featurize(symbol))
        np.testing.assert_allclose(block(features, 0, 200), vec(skipatom, symbol))  # mean
        np.testing.assert_array_equal(block(features, 1, 200), 0.0)  # std_dev of one element
        np.testing.assert_allclose(block(features, 2, 200), vec(skipatom, symbol))  # min
        np.testing.assert_allclose(block(features, 3, 200), vec(skipatom, symbol))  # max
    nacl_features = np.asarray(featurizer.featurize("NaCl"))
    na, cl = vec(skipatom, "Na"), vec(skipatom, "Cl")
    np.testing.assert_allclose(block(nacl_features, 0, 200), (na + cl) / 2)
    np.testing.assert_allclose(block(nacl_features, 2, 200), np.minimum(na, cl))
    np.testing.assert_allclose(block(nacl_features, 4, 200), np.abs(na - cl))
    # matminer's std_dev: sqrt(sum f (x - mean)^2 / (1 - sum f^2)) = |na - cl| / sqrt(2) here
    np.testing.assert_allclose(block(nacl_features, 1, 200), np.abs(na - cl) / np.sqrt(2))

    site = ElementEmbeddingSiteFeaturizer("skipatom")
    species = [str(s) for s in nacl.species]
    for idx in (0, len(nacl) - 1):
        np.testing.assert_allclose(site.featurize(nacl, idx), vec(skipatom, species[idx]))


def test_custom_embedding_from_dict_and_dim_check():
    toy = ElementEmbedding.from_dict(
        {"Fe": [1.0, 0.0, 2.0], "O": [0.0, 1.0, -2.0]}, name="toy", metadata={"citation": "Toy"}
    )
    featurizer = ElementEmbeddingCompositionFeaturizer(toy, stats=("mean", "max"))
    assert featurizer.feature_labels() == [
        "mean toy_0",
        "mean toy_1",
        "mean toy_2",
        "max toy_0",
        "max toy_1",
        "max toy_2",
    ]
    np.testing.assert_allclose(featurizer.featurize("FeO"), [0.5, 0.5, 0.0, 1.0, 1.0, 2.0])
    assert "Toy" in featurizer.citations()
    with pytest.raises(ValueError, match="dim=5"):
        ElementEmbeddingCompositionFeaturizer(toy, dim=5).featurize("FeO")


def test_citations_and_implementors():
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    citations = featurizer.citations()
    assert citations[0] == CRYSATOM_CITATION
    assert "2409.04737" in citations[0] and citations[0].startswith("@inproceedings")
    assert any("Antunes" in c for c in citations)  # SkipAtom's own citation, from metadata
    assert featurizer.implementors()
    # the paper citation survives an embedding that cannot be loaded
    unloadable = ElementEmbeddingSiteFeaturizer(embedding="no-such-embedding")
    assert unloadable.citations() == [CRYSATOM_CITATION]


# ----------------------------------------------------------------------------- invariances
def test_formula_scaling_invariance_for_every_statistic():
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=ALL_STATS)
    np.testing.assert_array_equal(featurizer.featurize("NaCl"), featurizer.featurize("Na4Cl4"))
    batch = featurizer.featurize_many(["Fe2O3", "Fe4O6", "Fe200O300"])
    np.testing.assert_allclose(batch[0], batch[1], atol=1e-12)
    np.testing.assert_allclose(batch[0], batch[2], atol=1e-12)


def test_formula_scaling_invariance(composition_featurizer):
    np.testing.assert_allclose(
        composition_featurizer.featurize("Fe2O3"), composition_featurizer.featurize("Fe4O6")
    )
    batch = composition_featurizer.featurize_many(["Fe2O3", "Fe4O6", Composition("Fe6O9")])
    np.testing.assert_allclose(batch[0], batch[1])
    np.testing.assert_allclose(batch[0], batch[2])


def test_site_permutation_invariance(fe2o3, perovskite):
    structure_featurizer = ElementEmbeddingStructureFeaturizer("skipatom")
    composition_featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    for structure in (fe2o3, perovskite):
        order = np.random.default_rng(0).permutation(len(structure))
        permuted = Structure.from_sites([structure[int(i)] for i in order])
        np.testing.assert_allclose(
            structure_featurizer.featurize(structure), structure_featurizer.featurize(permuted)
        )
        np.testing.assert_allclose(
            structure_featurizer.featurize_many([structure, permuted])[0],
            structure_featurizer.featurize_many([structure, permuted])[1],
        )
        np.testing.assert_allclose(
            composition_featurizer.featurize(structure),
            composition_featurizer.featurize(permuted),
        )


def test_primitive_and_supercell_give_identical_features(nacl, fe2o3):
    structure_featurizer = ElementEmbeddingStructureFeaturizer("skipatom", stats=ALL_STATS)
    composition_featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=ALL_STATS)
    primitive = nacl.get_primitive_structure()
    assert len(primitive) == 2 and len(nacl) == 8
    supercell = fe2o3.copy()
    supercell.make_supercell([2, 1, 2])
    for small, large in ((primitive, nacl), (fe2o3, supercell)):
        for featurizer in (structure_featurizer, composition_featurizer):
            np.testing.assert_allclose(
                featurizer.featurize(small), featurizer.featurize(large), atol=1e-12
            )
            batch = featurizer.featurize_many([small, large])
            np.testing.assert_allclose(batch[0], batch[1], atol=1e-12)


def test_structure_features_equal_composition_features_when_ordered(small_structures):
    structure_featurizer = ElementEmbeddingStructureFeaturizer("skipatom", stats=ALL_STATS)
    composition_featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=ALL_STATS)
    np.testing.assert_allclose(
        structure_featurizer.featurize_many(small_structures),
        composition_featurizer.featurize_many([s.composition for s in small_structures]),
        atol=1e-12,
    )


# ----------------------------------------------------------------------------- chemistry
def test_oxidation_state_species_map_to_their_element(skipatom, nacl):
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    ionic = Composition({Species("Fe", 2): 1, Species("O", -2): 1})
    np.testing.assert_allclose(featurizer.featurize(ionic), featurizer.featurize("FeO"))
    # Fe2+ and Fe3+ in one composition add up as Fe (magnetite)
    magnetite = Composition({Species("Fe", 2): 1, Species("Fe", 3): 2, Species("O", -2): 4})
    np.testing.assert_allclose(featurizer.featurize(magnetite), featurizer.featurize("Fe3O4"))
    batch = featurizer.featurize_many([ionic, magnetite])
    np.testing.assert_allclose(batch[1], featurizer.featurize("Fe3O4"))

    decorated = nacl.copy()
    decorated.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    site = ElementEmbeddingSiteFeaturizer("skipatom")
    np.testing.assert_allclose(site.featurize(decorated, 0), vec(skipatom, "Na"))
    structure = ElementEmbeddingStructureFeaturizer("skipatom")
    np.testing.assert_allclose(structure.featurize(decorated), structure.featurize(nacl))


def test_disordered_site_is_occupancy_weighted(skipatom, disordered):
    site = ElementEmbeddingSiteFeaturizer("skipatom")
    cation = next(i for i, s in enumerate(disordered) if not s.is_ordered)
    expected = 0.5 * vec(skipatom, "Fe") + 0.5 * vec(skipatom, "Ni")
    np.testing.assert_allclose(site.featurize(disordered, cation), expected)

    structure = ElementEmbeddingStructureFeaturizer("skipatom")
    features = np.asarray(structure.featurize(disordered))
    oxygen = vec(skipatom, "O")
    np.testing.assert_allclose(block(features, 0, 200), (expected + oxygen) / 2)  # mean
    np.testing.assert_allclose(block(features, 2, 200), np.minimum(expected, oxygen))  # min
    np.testing.assert_allclose(structure.featurize_many([disordered])[0], features)

    composition = ElementEmbeddingCompositionFeaturizer("skipatom")
    np.testing.assert_allclose(
        composition.featurize(disordered), composition.featurize("Fe0.5Ni0.5O"), atol=1e-12
    )


def test_vacancy_contributes_a_zero_vector_on_sites(skipatom):
    structure = vacancy_structure()
    site = ElementEmbeddingSiteFeaturizer("skipatom")
    np.testing.assert_allclose(site.featurize(structure, 0), 0.6 * vec(skipatom, "Li"))
    frame = site.featurize_dataframe(pd.DataFrame({"structure": [structure]}))
    np.testing.assert_allclose(frame.iloc[0, 1:].to_numpy(float), 0.6 * vec(skipatom, "Li"))

    pooled = ElementEmbeddingStructureFeaturizer("skipatom", stats=("mean",))
    expected_mean = (0.6 * vec(skipatom, "Li") + vec(skipatom, "O")) / 2
    np.testing.assert_allclose(pooled.featurize(structure), expected_mean)
    np.testing.assert_allclose(pooled.featurize_many([structure])[0], expected_mean)

    # compositions renormalise over the atoms present, as matminer's ElementProperty does
    composition = ElementEmbeddingCompositionFeaturizer("skipatom")
    np.testing.assert_allclose(
        composition.featurize(structure), composition.featurize("Li0.6O"), atol=1e-12
    )


# ----------------------------------------------------------------------------- bad inputs
def test_dummy_species_raise_naming_element_embedding_and_coverage():
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    dummy = Composition({DummySpecies("X"): 1, "O": 1})
    with pytest.raises(ValueError) as info:
        featurizer.featurize(dummy)
    message = str(info.value)
    assert isinstance(info.value, UnknownElementError)
    assert "X0+" in message and "'skipatom'" in message and "H, Li, Be" in message
    with pytest.raises(UnknownElementError, match="X0\\+"):
        featurizer.featurize_many([dummy])
    with pytest.raises(UnknownElementError, match="dummy species"):
        featurizer.featurize_many(["Xa2O"])  # pymatgen parses Xa as a DummySpecies

    structure = Structure(Lattice.cubic(3.0), [DummySpecies("X"), "O"], [[0, 0, 0], [0.5] * 3])
    for structure_featurizer in (
        ElementEmbeddingStructureFeaturizer("skipatom"),
        ElementEmbeddingSiteFeaturizer("skipatom"),
    ):
        with pytest.raises(UnknownElementError, match="X0\\+"):
            if isinstance(structure_featurizer, ElementEmbeddingSiteFeaturizer):
                structure_featurizer.featurize(structure, 0)
            else:
                structure_featurizer.featurize(structure)
    with pytest.raises(UnknownElementError, match="site 0"):
        ElementEmbeddingStructureFeaturizer("skipatom").featurize_many([structure])


def test_unknown_element_raises_naming_element_embedding_row_and_coverage():
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    with pytest.raises(ValueError) as info:
        featurizer.featurize("HeO")
    message = str(info.value)
    assert "He" in message and "'skipatom'" in message and "covers 86 elements" in message
    frame = pd.DataFrame({"formula": ["NaCl", "Ar2O"]}, index=["a", "b"])
    with pytest.raises(UnknownElementError) as info:
        featurizer.featurize_dataframe(frame, "formula")
    assert "row 'b'" in str(info.value) and "Ar" in str(info.value)
    assert "ignore_errors=True" in str(info.value)
    with pytest.raises(ValueError, match="row 2"):
        featurizer.featurize_many(["NaCl", "Fe2O3", "not a formula((("])
    with pytest.raises(TypeError, match="expected a pymatgen Composition"):
        featurizer.featurize(42)


def test_ignore_errors_gives_nan_rows_and_an_error_column(composition_featurizer):
    formulas = ["Fe2O3", "HeO", "NaCl", "X2O", "not a formula(((", "NeAr", "SiO2"]
    frame = pd.DataFrame({"formula": formulas, "target": np.arange(7.0)})
    out = composition_featurizer.featurize_dataframe(
        frame, "formula", ignore_errors=True, return_errors=True
    )
    labels = composition_featurizer.feature_labels()
    errors = out["ElementEmbeddingCompositionFeaturizer Exceptions"]
    assert list(out.columns) == [
        "formula",
        "target",
        *labels,
        "ElementEmbeddingCompositionFeaturizer Exceptions",
    ]
    values = out[labels].to_numpy()
    bad = [1, 3, 4, 5]
    assert np.isnan(values[bad]).all()
    for good in (0, 2, 6):
        np.testing.assert_allclose(values[good], composition_featurizer.featurize(formulas[good]))
        assert pd.isna(errors.iloc[good])
    assert "He" in errors.iloc[1] and "skipatom" in errors.iloc[1]
    assert "dummy species" in errors.iloc[3]
    assert "Ne" in errors.iloc[5]
    np.testing.assert_array_equal(out["target"], frame["target"])

    no_column = composition_featurizer.featurize_dataframe(frame, "formula", ignore_errors=True)
    assert "ElementEmbeddingCompositionFeaturizer Exceptions" not in no_column
    rows = composition_featurizer.featurize_many(formulas, ignore_errors=True, return_errors=True)
    assert len(rows[1]) == len(labels) + 1 and "He" in rows[1][-1]
    assert np.isnan(rows[0][-1])
    with pytest.raises(ValueError, match="ignore_errors"):
        composition_featurizer.featurize_many(formulas, return_errors=True)


def test_ignore_errors_matches_matminer_elementproperty_rows(composition_featurizer):
    from matminer.featurizers.composition import ElementProperty

    source = EmbeddingElementData("skipatom")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ElementProperty(source, source.features, ["mean"])
    reference.set_n_jobs(1)
    frame = pd.DataFrame({"composition": [Composition(f) for f in ("NaCl", "HeO", "SiO2")]})
    expected = reference.featurize_dataframe(frame, "composition", ignore_errors=True, pbar=False)
    ours = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))
    out = ours.featurize_dataframe(frame, "composition", ignore_errors=True)
    np.testing.assert_allclose(
        out[ours.feature_labels()].to_numpy(), expected[reference.feature_labels()].to_numpy()
    )


def test_site_featurizer_errors_are_per_site(skipatom):
    structure = Structure(
        Lattice.cubic(4.0), ["Na", "He", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0]]
    )
    site = ElementEmbeddingSiteFeaturizer("skipatom")
    frame = pd.DataFrame({"structure": [structure, "not a structure"]})
    out = site.featurize_dataframe(frame, ignore_errors=True, return_errors=True)
    assert out.index.tolist() == [(0, 0), (0, 1), (0, 2), (1, -1)]
    values = out[site.feature_labels()].to_numpy()
    np.testing.assert_allclose(values[0], vec(skipatom, "Na"))
    np.testing.assert_allclose(values[2], vec(skipatom, "Cl"))
    assert np.isnan(values[1]).all() and np.isnan(values[3]).all()
    errors = out["ElementEmbeddingSiteFeaturizer Exceptions"]
    assert "He" in errors.iloc[1] and "site 1" in errors.iloc[1]
    assert "Structure" in errors.iloc[3]
    with pytest.raises(UnknownElementError, match=r"row \(0, 1\)"):
        site.featurize_dataframe(frame)
    with pytest.raises(UnknownElementError, match="He"):
        site.featurize(structure, 1)


# ----------------------------------------------------------------------------- vectorized path
def test_vectorized_composition_path_equals_featurize(small_structures, disordered):
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=ALL_STATS)
    entries = [
        *FORMULAS,
        *(Composition(f) for f in FORMULAS[:4]),
        *small_structures,
        disordered,
        vacancy_structure(),
    ]
    clear_formula_cache()
    batch = featurizer.featurize_many(entries)
    reference = np.array([featurizer.featurize(entry) for entry in entries])
    assert batch.shape == reference.shape == (len(entries), 9 * 200)
    np.testing.assert_allclose(batch, reference, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(featurizer.transform(entries), reference, rtol=1e-9, atol=1e-9)
    # the second call is served from the formula cache and must not change anything
    np.testing.assert_array_equal(featurizer.featurize_many(entries), batch)


def test_vectorized_structure_path_equals_featurize(small_structures, disordered):
    featurizer = ElementEmbeddingStructureFeaturizer("skipatom", stats=ALL_STATS)
    mixed = Structure(
        Lattice.cubic(4.0),
        [{"Fe": 0.5, "Ni": 0.5}, {"Fe": 0.5, "Ni": 0.5}, {"Co": 0.7}, "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5], [0.5, 0.5, 0.5]],
    )
    structures = [*small_structures, disordered, vacancy_structure(), mixed]
    batch = featurizer.featurize_many(structures)
    reference = np.array([featurizer.featurize(s) for s in structures])
    np.testing.assert_allclose(batch, reference, rtol=1e-9, atol=1e-9)
    frame = featurizer.featurize_dataframe(pd.DataFrame({"structure": structures}))
    np.testing.assert_allclose(frame[featurizer.feature_labels()].to_numpy(), batch)


def test_vectorized_site_path_equals_featurize(small_structures, disordered):
    site = ElementEmbeddingSiteFeaturizer("skipatom")
    structures = [*small_structures, disordered, vacancy_structure()]
    frame = pd.DataFrame({"structure": structures, "label": list("abcdef")})
    out = site.featurize_dataframe(frame)
    reference = np.array([site.featurize(s, i) for s in structures for i in range(len(s))])
    np.testing.assert_allclose(out[site.feature_labels()].to_numpy(), reference, atol=1e-12)
    pairs = [(s, i) for s in structures for i in range(len(s))]
    np.testing.assert_allclose(site.featurize_many(pairs), reference, atol=1e-12)


def test_site_featurize_dataframe_without_site_column_gives_row_site_multiindex(
    small_structures,
):
    site = SkipAtomSiteFeaturizer()
    frame = pd.DataFrame(
        {"structure": small_structures, "energy": [1.0, 2.0, 3.0, 4.0]},
        index=pd.Index(["nacl", "fe2o3", "fe", "srtio3"], name="material"),
    )
    out = site.featurize_dataframe(frame)
    n_sites = [len(s) for s in small_structures]
    assert isinstance(out.index, pd.MultiIndex)
    assert out.index.names == ["material", "site"]
    assert len(out) == sum(n_sites)
    assert out.index[:3].tolist() == [("nacl", 0), ("nacl", 1), ("nacl", 2)]
    assert out.loc["fe2o3"].index.tolist() == list(range(30))
    assert list(out.columns) == ["structure", "energy", *site.feature_labels()]
    assert out.loc["srtio3", "energy"].tolist() == [4.0] * 5
    assert out.loc[("srtio3", 4), "structure"] is small_structures[3]
    with pytest.raises(ValueError, match="inplace"):
        site.featurize_dataframe(frame, inplace=True)


def test_site_featurize_dataframe_with_site_column_follows_matminer(small_structures, skipatom):
    site = ElementEmbeddingSiteFeaturizer("skipatom")
    frame = pd.DataFrame({"structure": small_structures, "site": [0, 29, 0, 2]})
    out = site.featurize_dataframe(frame, ["structure", "site"])
    assert out.index.equals(frame.index) and len(out) == 4
    expected = [site.featurize(s, i) for s, i in zip(small_structures, frame["site"])]
    np.testing.assert_allclose(out[site.feature_labels()].to_numpy(), expected)
    np.testing.assert_allclose(out.iloc[3, 2:].to_numpy(float), vec(skipatom, "O"))
    site.featurize_dataframe(frame, ["structure", "site"], inplace=True)
    assert "site skipatom_0" in frame.columns


def test_featurize_dataframe_follows_matminer_column_rules(composition_featurizer):
    frame = pd.DataFrame({"formula": ["NaCl", "SiO2"]})
    out = composition_featurizer.featurize_dataframe(frame, "formula")
    assert list(frame.columns) == ["formula"]  # input untouched
    with pytest.raises(ValueError, match="exists in input dataframe"):
        composition_featurizer.featurize_dataframe(out, "formula")
    assert composition_featurizer.featurize_dataframe(frame, "formula", inplace=True) is None
    np.testing.assert_allclose(frame.iloc[:, 1:].to_numpy(float), out.iloc[:, 1:].to_numpy(float))
    multi = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))
    out = multi.featurize_dataframe(pd.DataFrame({"formula": ["NaCl"]}), "formula", multiindex=True)
    assert out.columns[0] == ("Input Data", "formula")
    assert out.columns[1] == ("ElementEmbeddingCompositionFeaturizer", "mean skipatom_0")


def test_fast_formula_parser_matches_pymatgen():
    tricky = [
        *FORMULAS,
        "H2O",
        "Li3Fe2(PO4)3",
        "((CH3)2N)3",
        "Fe{OH}2",
        "C60",
        "Na0.333CoO2",
        "FeFeO",
        "Y3N(C80)",
    ]
    for formula in tricky:
        parsed = _fast_parse(formula)
        assert parsed is not None, formula
        zs, amounts, _ = composition_arrays(Composition(formula))
        expected = dict(zip(zs, amounts))
        assert parsed.keys() == expected.keys(), formula
        for z in expected:
            assert parsed[z] == pytest.approx(expected[z], rel=1e-12), formula
    # everything the fast path does not handle goes to pymatgen
    for formula in ("D2O", "Xa2O", "Fe0O", "H2O(", "Fe2)O", "", "CuSO4·5H2O", "Fe2+O"):
        assert _fast_parse(formula) is None, formula
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))
    np.testing.assert_allclose(
        featurizer.featurize_many(["D2O"]), featurizer.featurize_many(["H2O"])
    )


# ----------------------------------------------------------------------------- matminer parity
def test_parity_with_matminer_elementproperty():
    from matminer.featurizers.composition import ElementProperty

    source = EmbeddingElementData("skipatom")
    stats = [MATMINER_NAMES.get(s, s) for s in ALL_STATS]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ElementProperty(source, features=source.features, stats=stats)
    # fraction weights (see _stats): equal to ElementProperty on fractional compositions
    compositions = [Composition(f).fractional_composition for f in FORMULAS]
    raw = np.array([reference.featurize(c) for c in compositions])
    # matminer orders features property-major; ours are statistic-major
    expected = raw.reshape(len(FORMULAS), 200, len(stats)).transpose(0, 2, 1)
    expected = expected.reshape(len(FORMULAS), -1)
    ours = ElementEmbeddingCompositionFeaturizer("skipatom", stats=ALL_STATS)
    np.testing.assert_allclose(ours.featurize_many(FORMULAS), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        np.array([ours.featurize(c) for c in compositions]), expected, rtol=0, atol=1e-6
    )
    # the five defaults on the compositions as written, matched by label to matminer's columns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = ElementProperty(
            source,
            features=source.features,
            stats=["mean", "std_dev", "minimum", "maximum", "range"],
        )
    raw = np.array([reference.featurize(Composition(f)) for f in FORMULAS])
    default = ElementEmbeddingCompositionFeaturizer("skipatom")
    table = pd.DataFrame(default.featurize_many(FORMULAS), columns=default.feature_labels())
    labels = reference.feature_labels()
    for stat in ("mean", "std_dev", "min", "max", "range"):
        name = MATMINER_NAMES.get(stat, stat)
        for i in (0, 77, 199):
            column = labels.index(f"EmbeddingElementData {name} skipatom_{i}")
            np.testing.assert_allclose(table[f"{stat} skipatom_{i}"], raw[:, column], atol=1e-6)


def test_data_source_api(skipatom):
    source = EmbeddingElementData("skipatom")
    assert source.features[0] == "skipatom_0" and len(source.features) == 200
    assert source.prop_names == source.all_properties == source.features
    assert source.get_elemental_property(Element("Fe"), "skipatom_5") == pytest.approx(
        float(skipatom.vector("Fe")[5])
    )
    assert source.get_elemental_property(Species("Fe", 3), "skipatom_5") == pytest.approx(
        float(skipatom.vector("Fe")[5])
    )
    assert source.get_elemental_properties([Element("O"), "Na"], "skipatom_0") == [
        pytest.approx(float(skipatom.vector("O")[0])),
        pytest.approx(float(skipatom.vector("Na")[0])),
    ]
    with pytest.raises(KeyError, match="skipatom_200"):
        source.get_elemental_property(Element("Fe"), "skipatom_200")
    with pytest.raises(UnknownElementError, match="He"):
        source.get_elemental_property(Element("He"), "skipatom_0")
    with pytest.raises(UnknownElementError, match="dummy"):
        source.get_elemental_property(DummySpecies("X"), "skipatom_0")
    lenient = EmbeddingElementData("skipatom", missing="nan")
    assert np.isnan(lenient.get_elemental_property(Element("He"), "skipatom_0"))
    assert isinstance(CrysAtomElementData(), EmbeddingElementData)
    with pytest.raises(TypeError, match=r"use EmbeddingElementData\('skipatom'\)"):
        CrysAtomElementData(embedding="skipatom")
    restored = pickle.loads(pickle.dumps(source))
    assert restored.get_elemental_property("Fe", "skipatom_5") == source.get_elemental_property(
        "Fe", "skipatom_5"
    )


def test_featurizers_do_not_import_torch():
    code = (
        "import sys, crysatom_featurizers.featurizers as f; "
        "f.ElementEmbeddingCompositionFeaturizer('skipatom').featurize('NaCl'); "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
