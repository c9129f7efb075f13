"""Inputs the featurizers reject with a one-line error: non-finite or negative amounts,
Molecules, and the README's ElementProperty example running without matminer's warning."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Composition, Molecule

from crysatom_featurizers.featurizers import (
    CrysAtomSiteFeaturizer,
    CrysAtomStructureFeaturizer,
    ElementEmbeddingCompositionFeaturizer,
    ElementEmbeddingSiteFeaturizer,
    ElementEmbeddingStructureFeaturizer,
    EmbeddingElementData,
)

README = Path(__file__).resolve().parents[1] / "docs" / "getting_started.md"  # the example's page
MOLECULE_MESSAGE = "expected a pymatgen Structure, got pymatgen.core.structure.Molecule"


@pytest.fixture
def carbon_monoxide() -> Molecule:
    return Molecule(["C", "O"], [[0.0, 0.0, 0.0], [0.0, 0.0, 1.13]])


# ----------------------------------------------------------------------------- amounts
BAD_AMOUNTS = [
    (Composition({"Fe": float("inf"), "O": 1}), "element Fe has amount inf"),
    (Composition({"Fe": -1, "O": 2}, allow_negative=True), "element Fe has amount -1.0"),
    ("Fe" + "9" * 400 + "O", "element Fe has amount inf"),  # overflows float
]


@pytest.mark.parametrize(("entry", "message"), BAD_AMOUNTS, ids=["inf", "negative", "overflow"])
def test_infinite_or_negative_amount_is_a_value_error(entry, message):
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean", "std_dev"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from a NaN row any more
        with pytest.raises(ValueError, match=message) as info:
            featurizer.featurize(entry)
        assert "finite and non-negative" in str(info.value)
        assert "\n" not in str(info.value)
        with pytest.raises(ValueError, match=rf"row 1: {message}"):
            featurizer.featurize_many(["NaCl", entry])
        frame = pd.DataFrame({"composition": ["NaCl", entry, "SiO2"]})
        out = featurizer.featurize_dataframe(
            frame, "composition", ignore_errors=True, return_errors=True
        )
    errors = out["ElementEmbeddingCompositionFeaturizer Exceptions"]
    assert errors.isna().tolist() == [True, False, True]
    assert "ValueError" in errors.iloc[1] and message in errors.iloc[1]
    values = out[featurizer.feature_labels()].to_numpy()
    assert np.isnan(values[1]).all() and np.isfinite(values[[0, 2]]).all()
    np.testing.assert_allclose(values[2], featurizer.featurize("SiO2"))


def test_matminer_records_the_amount_error_in_its_own_batch_loop():
    # matminer's BaseFeaturizer.featurize_wrapper runs featurize() per row
    from matminer.featurizers.base import BaseFeaturizer

    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))
    rows = BaseFeaturizer.featurize_many(
        featurizer, [("NaCl",), (BAD_AMOUNTS[0][0],)], ignore_errors=True, return_errors=True
    )
    assert "element Fe has amount inf" in rows[1][-1]


# ----------------------------------------------------------------------------- molecules
@pytest.mark.parametrize(
    "featurizer",
    [CrysAtomStructureFeaturizer(), ElementEmbeddingStructureFeaturizer("skipatom")],
    ids=type,
)
def test_structure_featurizers_reject_a_molecule(featurizer, carbon_monoxide, nacl):
    with pytest.raises(TypeError, match=MOLECULE_MESSAGE) as info:
        featurizer.featurize(carbon_monoxide)
    assert "ElementEmbeddingCompositionFeaturizer" in str(info.value)
    with pytest.raises(TypeError, match=rf"row 1: {MOLECULE_MESSAGE}"):
        featurizer.featurize_many([nacl, carbon_monoxide])
    frame = pd.DataFrame({"structure": [nacl, carbon_monoxide]})
    out = featurizer.featurize_dataframe(frame, ignore_errors=True, return_errors=True)
    errors = out[f"{type(featurizer).__name__} Exceptions"]
    assert pd.isna(errors.iloc[0]) and MOLECULE_MESSAGE in errors.iloc[1]
    assert np.isnan(out[featurizer.feature_labels()].to_numpy()[1]).all()


@pytest.mark.parametrize(
    "featurizer",
    [CrysAtomSiteFeaturizer(), ElementEmbeddingSiteFeaturizer("skipatom")],
    ids=type,
)
def test_site_featurizers_reject_a_molecule(featurizer, carbon_monoxide, nacl):
    with pytest.raises(TypeError, match=MOLECULE_MESSAGE):
        featurizer.featurize(carbon_monoxide, 0)
    with pytest.raises(TypeError, match=rf"row 1: {MOLECULE_MESSAGE}"):
        featurizer.featurize_many([(nacl, 0), (carbon_monoxide, 0)])
    # one row per site: the molecule gets a single error row (site -1)
    frame = pd.DataFrame({"structure": [carbon_monoxide]})
    with pytest.raises(TypeError, match=MOLECULE_MESSAGE):
        featurizer.featurize_dataframe(frame)
    out = featurizer.featurize_dataframe(frame, ignore_errors=True, return_errors=True)
    assert out.index.tolist() == [(0, -1)]
    assert MOLECULE_MESSAGE in out[f"{type(featurizer).__name__} Exceptions"].iloc[0]
    pairs = pd.DataFrame({"structure": [carbon_monoxide, nacl], "site": [0, 1]})
    out = featurizer.featurize_dataframe(
        pairs, ["structure", "site"], ignore_errors=True, return_errors=True
    )
    assert MOLECULE_MESSAGE in out[f"{type(featurizer).__name__} Exceptions"].iloc[0]


def test_composition_featurizer_still_takes_a_molecule_composition(carbon_monoxide):
    featurizer = ElementEmbeddingCompositionFeaturizer("skipatom", stats=("mean",))
    np.testing.assert_allclose(
        featurizer.featurize(carbon_monoxide.composition), featurizer.featurize("CO")
    )


# ----------------------------------------------------------------------------- README
def test_documented_element_property_example_runs_without_warnings(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "ElementProperty(" in b]
    assert "impute_nan=False" in block
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(block, "README ElementProperty example", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert printed.startswith("[") and "nan" not in printed


def test_element_property_default_impute_nan_warns_for_an_external_source():
    # why the example passes impute_nan=False: matminer warns for any external source
    from matminer.featurizers.composition import ElementProperty

    source = EmbeddingElementData("skipatom")
    with pytest.warns(UserWarning, match="impute_nan"):
        ElementProperty(data_source=source, features=source.features[:2], stats=["mean"])


def test_featurize_dask_without_dask_says_how_to_install(monkeypatch):
    import sys

    from crysatom_featurizers.dask import featurize_dask

    for name in ("dask", "dask.dataframe"):
        monkeypatch.setitem(sys.modules, name, None)  # as if dask were not installed
    with pytest.raises(ImportError, match=r"featurize_dask needs dask: pip install"):
        featurize_dask(None, None, "formula")


def test_site_index_out_of_range_names_the_number_of_sites():
    from pymatgen.core import Lattice, Structure

    from crysatom_featurizers.featurizers import ElementEmbeddingSiteFeaturizer

    nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    featurizer = ElementEmbeddingSiteFeaturizer("skipatom")
    with pytest.raises(IndexError, match="site index 5 is out of range for a structure of 2"):
        featurizer.featurize(nacl, 5)
    with pytest.raises(TypeError, match="site index must be an integer"):
        featurizer.featurize(nacl, 0.5)
    assert featurizer.featurize(nacl, -1) == featurizer.featurize(nacl, 1)
    assert featurizer.featurize(nacl, 1.0) == featurizer.featurize(nacl, np.int64(1))
    out = featurizer.featurize_many([(nacl, 0), (nacl, 2)], ignore_errors=True)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


def test_std_dev_of_a_composition_dominated_by_one_element_is_its_limit():
    """``1 - sum f^2`` cancels to 0 for Fe1e308O; the statistic takes its limit (for two
    elements std_dev does not depend on the fractions) instead of NaN."""
    import numpy as np
    import pandas as pd
    from pymatgen.core import Composition

    from crysatom_featurizers.featurizers import ElementEmbeddingCompositionFeaturizer

    featurizer = ElementEmbeddingCompositionFeaturizer("magpie", stats=("std_dev",))
    even = np.array(featurizer.featurize(Composition("FeO")))
    for formula in ("Fe1e308O", "Fe1e12O", "FeO1e200"):
        values = np.array(featurizer.featurize(Composition(formula)))
        np.testing.assert_allclose(values, even, rtol=1e-9, err_msg=formula)
    frame = pd.DataFrame({"c": [Composition("Fe1e308O"), Composition("FeO")]})
    table = featurizer.featurize_dataframe(frame, "c").drop(columns="c").to_numpy()
    np.testing.assert_allclose(table[0], table[1], rtol=1e-9)
