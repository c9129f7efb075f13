"""scikit-learn and matminer protocols of the featurizers: the preset classes and
``from_preset``, ``get_params``/``clone``, pickling, ``get_feature_names_out`` with a
ColumnTransformer and a Pipeline."""

from __future__ import annotations

import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Element
from sklearn.base import clone

from crysatom_featurizers.embeddings import ElementEmbedding, available
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
    RandomCompositionFeaturizer,
    RandomSiteFeaturizer,
    RandomStructureFeaturizer,
    SkipAtomCompositionFeaturizer,
    SkipAtomSiteFeaturizer,
    SkipAtomStructureFeaturizer,
)

GENERIC = {
    "Composition": ElementEmbeddingCompositionFeaturizer,
    "Site": ElementEmbeddingSiteFeaturizer,
    "Structure": ElementEmbeddingStructureFeaturizer,
}
PRESETS = [
    CrysAtomCompositionFeaturizer,
    CrysAtomSiteFeaturizer,
    CrysAtomStructureFeaturizer,
    Atom2VecCompositionFeaturizer,
    Atom2VecSiteFeaturizer,
    Atom2VecStructureFeaturizer,
    SkipAtomCompositionFeaturizer,
    SkipAtomSiteFeaturizer,
    SkipAtomStructureFeaturizer,
    RandomCompositionFeaturizer,
    RandomSiteFeaturizer,
    RandomStructureFeaturizer,
]


def kind_of(cls: type) -> str:
    return next(kind for kind in GENERIC if cls.__name__.endswith(f"{kind}Featurizer"))


def other_embedding(cls: type) -> str:
    return "skipatom" if cls.preset != "skipatom" else "crysatom"


def frame_for(cls: type, nacl) -> tuple[pd.DataFrame, str]:
    """A two-row input frame and its column for a featurizer class."""
    if kind_of(cls) == "Composition":
        return pd.DataFrame({"formula": ["NaCl", "Fe2O3"]}), "formula"
    return pd.DataFrame({"structure": [nacl, nacl.get_primitive_structure()]}), "structure"


# ----------------------------------------------------------------------------- presets
@pytest.mark.parametrize("cls", PRESETS, ids=lambda cls: cls.__name__)
def test_preset_rejects_another_embedding_naming_what_to_use(cls):
    generic = GENERIC[kind_of(cls)].__name__
    other = other_embedding(cls)
    for args, kwargs in (((other,), {}), ((), {"embedding": other})):
        with pytest.raises(TypeError) as info:
            cls(*args, **kwargs)
        message = str(info.value)
        assert cls.__name__ in message and repr(cls.preset) in message
        assert f"{generic}({other!r})" in message
        assert f"{generic}.from_preset({other!r})" in message
    # an embedding object, and even the preset's own name, are not arguments of a preset
    toy = ElementEmbedding.from_dict({"Na": [1.0], "Cl": [2.0]}, name="toy")
    with pytest.raises(TypeError, match=rf"use {generic}\(embedding=\.\.\.\)"):
        cls(embedding=toy)
    with pytest.raises(TypeError, match="takes no embedding argument"):
        cls(cls.preset)
    with pytest.raises(TypeError, match="keyword arguments only"):
        cls(8)
    with pytest.raises(ValueError, match="Invalid parameter 'embedding'"):
        cls().set_params(embedding=other)


@pytest.mark.parametrize("cls", PRESETS, ids=lambda cls: cls.__name__)
def test_preset_clone_pickle_and_matminer_protocol(cls, nacl, tmp_path):
    kwargs = {"dim": 8} if cls.preset == "random" else {}
    if kind_of(cls) != "Site":
        kwargs["stats"] = ("mean", "max")
    featurizer = cls(**kwargs)
    params = featurizer.get_params()
    assert "embedding" not in params and params["dim"] == kwargs.get("dim")
    assert featurizer.embedding == cls.preset
    copy = clone(featurizer)
    assert type(copy) is cls and copy.get_params() == params

    frame, column = frame_for(cls, nacl)
    out = featurizer.featurize_dataframe(frame, column)
    labels = featurizer.feature_labels()
    assert labels[0].endswith(f"{cls.preset}_0")
    assert list(out.columns) == [column, *labels]
    assert np.isfinite(out[labels].to_numpy(float)).all()
    np.testing.assert_array_equal(featurizer.get_feature_names_out(), labels)
    assert featurizer.citations()[0] == CRYSATOM_CITATION and featurizer.implementors()

    # the same features as the generic class on the preset's embedding
    generic = GENERIC[kind_of(cls)](cls.preset, **kwargs)
    expected = generic.featurize_dataframe(frame, column)
    np.testing.assert_array_equal(out[labels].to_numpy(), expected[labels].to_numpy())

    path = tmp_path / "featurizer.joblib"
    joblib.dump(copy, path)
    restored = joblib.load(path)
    assert type(restored) is cls and restored.get_params() == params
    assert pickle.loads(pickle.dumps(featurizer)).feature_labels() == labels
    np.testing.assert_array_equal(
        restored.featurize_dataframe(frame, column)[labels].to_numpy(), out[labels].to_numpy()
    )


def test_preset_takes_dim_and_stats(nacl):
    featurizer = CrysAtomCompositionFeaturizer(dim=50, stats=("mean",))
    assert featurizer.feature_labels()[-1] == "mean crysatom_49"
    assert len(CrysAtomSiteFeaturizer(dim=100).featurize(nacl, 0)) == 100
    assert repr(featurizer) == "CrysAtomCompositionFeaturizer(dim=50, stats=('mean',))"
    assert repr(CrysAtomElementData(dim=50)) == "CrysAtomElementData(dim=50, missing='raise')"


@pytest.mark.parametrize("generic", list(GENERIC.values()), ids=lambda cls: cls.__name__)
def test_from_preset_builds_the_generic_class_on_a_registry_embedding(generic):
    featurizer = generic.from_preset("crysatom", dim=100)
    assert type(featurizer) is generic
    assert featurizer.get_params()["embedding"] == "crysatom"
    assert featurizer.feature_labels()[-1].endswith("crysatom_99")
    assert generic.from_preset(" SkipAtom ").embedding == "skipatom"  # case-insensitive
    names = available()["name"].tolist()
    with pytest.raises(ValueError, match="unknown preset 'nope'") as info:
        generic.from_preset("nope")
    assert all(name in str(info.value) for name in names)
    with pytest.raises(TypeError, match="registry name"):
        generic.from_preset(ElementEmbedding.from_dict({"Na": [1.0]}, name="toy"))


def test_preset_from_preset_accepts_only_its_own_embedding():
    featurizer = SkipAtomStructureFeaturizer.from_preset("skipatom", stats=("mean",))
    assert type(featurizer) is SkipAtomStructureFeaturizer
    assert featurizer.get_params() == {"dim": None, "stats": ("mean",)}
    message = r"use ElementEmbeddingStructureFeaturizer\('random'\)"
    with pytest.raises(ValueError, match=message):
        SkipAtomStructureFeaturizer.from_preset("random")


# ----------------------------------------------------------------------------- feature names
def test_get_feature_names_out_matches_feature_labels():
    for featurizer in (
        ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean", "max")),
        ElementEmbeddingSiteFeaturizer("random", dim=4),
        ElementEmbeddingStructureFeaturizer("megnet16"),
    ):
        names = featurizer.get_feature_names_out()
        assert isinstance(names, np.ndarray) and names.dtype == object
        assert all(isinstance(name, str) for name in names)
        assert names.tolist() == featurizer.feature_labels()
        assert featurizer.get_feature_names_out(["composition"]).tolist() == names.tolist()


def test_column_transformer_and_pipeline_feature_names(nacl):
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    composition = ElementEmbeddingCompositionFeaturizer("megnet16", stats=("mean",))
    structure = ElementEmbeddingStructureFeaturizer("random", dim=3, stats=("max",))
    frame = pd.DataFrame(
        {
            "formula": ["NaCl", "Fe2O3", "SiO2"],
            "structure": [nacl, nacl.get_primitive_structure(), nacl],
            "energy": [1.0, 2.0, 3.0],
        }
    )
    columns = ColumnTransformer(
        [
            ("comp", composition, "formula"),
            ("struct", structure, ["structure"]),
            ("keep", "passthrough", ["energy"]),
        ]
    )
    values = columns.fit_transform(frame)
    names = columns.get_feature_names_out()
    assert values.shape == (3, 16 + 3 + 1) and len(names) == values.shape[1]
    assert names[0] == "comp__mean megnet16_0" and names[16] == "struct__max random_0"
    assert names[-1] == "keep__energy"
    np.testing.assert_allclose(values[:, :16], composition.featurize_many(frame["formula"]))

    pipeline = Pipeline([("features", clone(composition)), ("scale", StandardScaler())])
    scaled = pipeline.fit_transform(frame["formula"])
    assert scaled.shape == (3, 16)
    assert pipeline.get_feature_names_out().tolist() == composition.feature_labels()

    # scikit-learn's set_output names the columns from get_feature_names_out
    table = clone(composition).set_output(transform="pandas").fit_transform(frame["formula"])
    assert isinstance(table, pd.DataFrame)
    assert table.columns.tolist() == composition.feature_labels()
    assert table.index.equals(frame.index)


# ----------------------------------------------------------------------------- sklearn protocol
def test_get_params_clone_and_set_params():
    from sklearn.base import clone

    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean", "max"))
    assert featurizer.get_params() == {
        "embedding": "skipatom",
        "dim": None,
        "stats": ("mean", "max"),
    }
    copy = clone(featurizer)
    assert copy is not featurizer and copy.get_params() == featurizer.get_params()
    np.testing.assert_array_equal(copy.featurize("NaCl"), featurizer.featurize("NaCl"))
    copy.set_params(embedding="random", dim=8, stats=("mean",))
    assert copy.feature_labels() == [f"mean random_{i}" for i in range(8)]
    assert len(copy.featurize("NaCl")) == 8  # the cached embedding was replaced
    assert len(featurizer.featurize("NaCl")) == 400
    site = clone(ElementEmbeddingSiteFeaturizer("skipatom"))
    assert site.get_params() == {"embedding": "skipatom", "dim": None}


def test_n_jobs_defaults_to_one_and_never_pools(monkeypatch):
    import matminer.featurizers.base as matminer_base

    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom")
    assert featurizer.n_jobs == 1

    def no_pool(*args, **kwargs):
        raise AssertionError("a process pool was started")

    monkeypatch.setattr(matminer_base, "Pool", no_pool)
    featurizer.set_n_jobs(2)
    assert featurizer.n_jobs == 2
    out = featurizer.featurize_dataframe(pd.DataFrame({"c": ["NaCl", "SiO2"]}), "c")
    assert out.shape == (2, 1001)


def test_joblib_round_trip(tmp_path, nacl):
    toy = ElementEmbedding.from_dict({"Na": [1.0, 2.0], "Cl": [3.0, -1.0]}, name="toy")
    featurizers = [
        ElementEmbeddingCompositionFeaturizer("skipatom"),
        ElementEmbeddingStructureFeaturizer(toy, stats=("mean", "std_dev")),
        ElementEmbeddingSiteFeaturizer("skipatom"),
    ]
    inputs = [("NaCl",), (nacl,), (nacl, 1)]
    for featurizer, args in zip(featurizers, inputs):
        before = featurizer.featurize(*args)  # resolves (and caches) the embedding
        path = tmp_path / f"{type(featurizer).__name__}.joblib"
        joblib.dump(featurizer, path)
        restored = joblib.load(path)
        assert restored.get_params().keys() == featurizer.get_params().keys()
        assert "_resolved_cache" not in restored.__dict__
        np.testing.assert_array_equal(restored.featurize(*args), before)
    # a featurizer given by name pickles small: the vectors are not stored
    assert len(pickle.dumps(featurizers[0])) < 2000


def test_sklearn_pipeline_with_ridge_cross_validates():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import Pipeline

    cations = ["Li", "Na", "K", "Mg", "Ca", "Sr", "Al", "Fe", "Ni", "Cu", "Zn", "Ti"]
    anions = ["O", "S", "Cl", "F", "N", "Se"]
    formulas = [f"{c}{a}{n}" for c in cations for a in anions for n in (1, 2)][:96]
    # a smooth target: mean Pauling electronegativity
    target = np.array(
        [np.mean([Element(e.symbol).X for e in Composition(f).elements]) for f in formulas]
    )
    pipeline = Pipeline(
        [
            ("features", ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))),
            ("ridge", Ridge(alpha=1.0)),
        ]
    )
    scores = cross_val_score(pipeline, formulas, target, cv=3, scoring="r2")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert scores.mean() > 0.0
    fitted = pipeline.fit(formulas, target)
    assert np.isfinite(fitted.predict(["NaCl", "MgO"])).all()


def test_generic_classes_default_to_the_chosen_vectors_and_presets_keep_theirs():
    from crysatom_featurizers.embeddings import DEFAULT_EMBEDDING, vector_file_path
    from crysatom_featurizers.featurizers import EmbeddingElementData

    assert DEFAULT_EMBEDDING == "uae"
    for cls in GENERIC.values():
        assert cls().get_params()["embedding"] == DEFAULT_EMBEDDING
    assert CrysAtomCompositionFeaturizer().embedding == "crysatom"
    if not vector_file_path(DEFAULT_EMBEDDING, 256).exists():
        pytest.skip("the default vectors are not generated yet")
    source = EmbeddingElementData()
    assert source.embedding_.name == "uae" and len(source.features) == 256
    columns = ElementEmbeddingCompositionFeaturizer(stats=("mean", "max")).feature_labels()
    assert columns[0] == "mean uae_0" and len(columns) == 2 * 256
