"""featurize_dask: the same features as the in-memory path, on dask and dask.distributed."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from crysatom_featurizers.dask import feature_meta, featurize_dask  # noqa: E402
from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer  # noqa: E402

# Elements covered by every built-in embedding used here (skipatom, megnet16).
ELEMENTS = [
    "H", "Li", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K", "Ca",
    "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "Se", "Sr", "Y", "Zr",
    "Nb", "Mo", "Ag", "Sn", "Ba", "La", "W", "Pb", "Bi",
]  # fmt: skip


def make_formulas(n: int) -> list[str]:
    """``n`` distinct binary and ternary formulas built from element combinations."""
    formulas = []
    for a, b in itertools.combinations(ELEMENTS, 2):
        for i, j in itertools.product(range(1, 4), repeat=2):
            formulas.append(f"{a}{i}{b}{j}")
    for a, b, c in itertools.combinations(ELEMENTS[:20], 3):
        formulas.append(f"{a}{b}2{c}3")
    if len(formulas) < n:
        raise AssertionError(f"only {len(formulas)} formulas")
    return formulas[:n]


@pytest.fixture(scope="module")
def compositions() -> pd.DataFrame:
    formulas = make_formulas(5000)
    assert len(set(formulas)) == 5000
    return pd.DataFrame(
        {"formula": formulas, "composition": [Composition(f) for f in formulas]},
        index=pd.Index([f"mat-{i:05d}" for i in range(5000)], name="id"),
    )


@pytest.fixture(scope="module")
def featurizer():
    return ElementEmbeddingCompositionFeaturizer("skipatom")


def objects_to_dask(df: pd.DataFrame, npartitions: int):
    """A dask DataFrame that keeps Python objects (dask converts object columns to strings)."""
    with dask.config.set({"dataframe.convert-string": False}):
        return dd.from_pandas(df, npartitions=npartitions)


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def test_local_cluster_matches_in_memory_exactly(client, compositions, featurizer):

    expected = featurizer.featurize_dataframe(compositions, "composition")
    ddf = objects_to_dask(compositions, npartitions=8)
    result = featurize_dask(ddf, featurizer, "composition").compute()
    # The computation ran on the two-process cluster, not in this process.
    assert len(client.scheduler_info()["workers"]) == 2
    pd.testing.assert_frame_equal(result, expected, check_exact=True)


def test_local_cluster_formula_strings_with_converter(client, compositions, featurizer):
    expected = featurizer.featurize_dataframe(compositions, "composition")
    ddf = dd.from_pandas(compositions[["formula"]], npartitions=5)
    result = featurize_dask(ddf, featurizer, "formula", converter=Composition).compute()
    labels = featurizer.feature_labels()
    assert list(result.columns) == ["formula", *labels]
    assert list(result["formula"]) == list(compositions["formula"])
    # dask stores the string index as pyarrow strings; the labels themselves are the same.
    assert list(result.index) == list(expected.index)
    pd.testing.assert_frame_equal(
        result[labels].set_axis(expected.index), expected[labels], check_exact=True
    )


def test_meta_comes_from_feature_labels_without_featurizing(compositions):
    class NeverRun(ElementEmbeddingCompositionFeaturizer):
        def featurize_dataframe(self, *args, **kwargs):
            raise AssertionError("featurized while building the graph")

    featurizer = NeverRun("megnet16")
    ddf = objects_to_dask(compositions.iloc[:50], npartitions=3)
    lazy = featurize_dask(ddf, featurizer, "composition", return_errors=True, ignore_errors=True)
    labels = featurizer.feature_labels()
    assert list(lazy.columns) == ["formula", "composition", *labels, "NeverRun Exceptions"]
    assert (lazy.dtypes[labels] == np.float64).all()
    assert pd.api.types.is_object_dtype(lazy.dtypes["NeverRun Exceptions"])
    assert lazy.npartitions == 3


def test_partitions_run_single_process_and_leave_the_caller_unchanged(compositions):
    seen = []

    class Recording(ElementEmbeddingCompositionFeaturizer):
        def featurize_dataframe(self, df, *args, **kwargs):
            seen.append(self.n_jobs)
            return super().featurize_dataframe(df, *args, **kwargs)

    featurizer = Recording("megnet16")
    featurizer.set_n_jobs(4)
    ddf = objects_to_dask(compositions.iloc[:40], npartitions=4)
    featurize_dask(ddf, featurizer, "composition").compute(scheduler="sync")
    assert seen == [1, 1, 1, 1]
    assert featurizer.n_jobs == 4


def test_errors_are_ignored_and_reported_per_row():
    df = pd.DataFrame({"formula": ["NaCl", "Fe2O3(", "OgO2", "SiO2"]})
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))
    ddf = dd.from_pandas(df, npartitions=2)
    with pytest.raises(ValueError, match=r"row 1: cannot convert 'formula' value 'Fe2O3\('"):
        featurize_dask(
            dd.from_pandas(df.iloc[:2], npartitions=1), featurizer, "formula", converter=Composition
        ).compute(scheduler="sync")
    with pytest.raises(ValueError, match="row 2: element Og is not covered"):
        featurize_dask(
            dd.from_pandas(df.iloc[2:], npartitions=1), featurizer, "formula", converter=Composition
        ).compute(scheduler="sync")
    result = featurize_dask(
        ddf, featurizer, "formula", converter=Composition, ignore_errors=True, return_errors=True
    ).compute(scheduler="sync")
    labels = featurizer.feature_labels()
    errors = result[f"{type(featurizer).__name__} Exceptions"]
    assert errors.isna().tolist() == [True, False, False, True]
    assert "cannot convert" in errors.iloc[1] and "Og" in errors.iloc[2]
    assert result[labels].iloc[[1, 2]].isna().all().all()
    np.testing.assert_allclose(result[labels].iloc[3], featurizer.featurize(Composition("SiO2")))


def test_empty_partitions_and_argument_checks(compositions):
    featurizer = ElementEmbeddingCompositionFeaturizer("megnet16")
    ddf = objects_to_dask(compositions.iloc[:6], npartitions=2)
    empty = ddf[ddf["formula"] == "no such formula"]
    result = featurize_dask(empty, featurizer, "composition").compute(scheduler="sync")
    assert result.empty and list(result.columns) == list(
        feature_meta(featurizer, ddf._meta).columns
    )
    with pytest.raises(ValueError, match="ignore_errors"):
        featurize_dask(ddf, featurizer, "composition", return_errors=True)
    with pytest.raises(ValueError, match="not in the dask DataFrame"):
        featurize_dask(ddf, featurizer, "structure")
    clashing = featurizer.featurize_dataframe(compositions.iloc[:6], "composition")
    with pytest.raises(ValueError, match="already has feature column"):
        featurize_dask(objects_to_dask(clashing, 2), featurizer, "composition")


def test_pandas_input_is_a_type_error_naming_from_pandas(compositions):
    featurizer = ElementEmbeddingCompositionFeaturizer("megnet16")
    with pytest.raises(TypeError, match="takes a dask DataFrame") as info:
        featurize_dask(compositions.iloc[:4], featurizer, "composition")
    message = str(info.value)
    assert "pandas.core.frame.DataFrame" in message
    assert "dask.dataframe.from_pandas(df, npartitions=...)" in message
    assert "featurize_dataframe" in message and "\n" not in message
    with pytest.raises(TypeError, match="got list"):
        featurize_dask(["NaCl"], featurizer, "composition")
    # the wrapped frame featurizes as suggested
    ddf = objects_to_dask(compositions.iloc[:4], npartitions=2)
    result = featurize_dask(ddf, featurizer, "composition").compute(scheduler="sync")
    expected = featurizer.featurize_dataframe(compositions.iloc[:4], "composition")
    pd.testing.assert_frame_equal(result, expected)
