"""Universal-potential featurizers (CHGNet, SevenNet) on small structures built here.

Without the [potentials] extra only the torch-free contract runs (labels, parameter checks, the
ImportError that names the extra); the rest skips with a reason.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Molecule, Structure
from sklearn.base import clone

from crysatom_featurizers.featurizers import (
    UniversalPotentialSiteFeaturizer,
    UniversalPotentialStructureFeaturizer,
)
from crysatom_featurizers.potentials import (
    MissingPotentialDependencyError,
    clear_cache,
    get_potential,
    structure_key,
)

HAS = {
    "chgnet": all(importlib.util.find_spec(m) for m in ("torch", "chgnet")),
    "sevennet": all(importlib.util.find_spec(m) for m in ("torch", "torch_geometric", "sevenn")),
}
MODELS = [
    pytest.param(
        name, marks=pytest.mark.skipif(not ok, reason=f"needs the [potentials] extra ({name})")
    )
    for name, ok in HAS.items()
]


def silicon() -> Structure:
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.47), ["Si"], [[0, 0, 0]])


def rocksalt() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def copper() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.63), ["Cu"], [[0, 0, 0]])


# ------------------------------------------------------------------ without the extra
def test_labels_and_checks_need_no_potential_package():
    featurizer = UniversalPotentialStructureFeaturizer("sevennet", physics=("energy", "stress"))
    labels = featurizer.feature_labels()
    assert labels[0] == "mean sevennet_site_0" and len(labels) == 4 * 128 + 3
    assert labels[-2:] == ["sevennet pressure (GPa)", "sevennet von Mises stress (GPa)"]
    assert list(featurizer.get_feature_names_out()) == labels
    chgnet = UniversalPotentialStructureFeaturizer("CHGNet")
    assert chgnet.feature_labels()[-1] == "chgnet_crystal_63"  # its crystal vector, by default
    assert UniversalPotentialSiteFeaturizer("chgnet").feature_labels()[0] == "site chgnet_0"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "mace"}, "unknown universal potential 'mace'.*download their weights"),
        ({"physics": ("enthalpy",)}, "unknown physics feature"),
        ({"physics": ("energy", "energy")}, "twice"),
        ({"model": "sevennet", "physics": ("magmom",)}, "no magnetic moments"),
        ({"model": "sevennet", "crystal_feature": True}, "no crystal vector"),
        ({"stats": ("median",)}, "median"),
        ({"stats": (), "crystal_feature": False}, "no features"),
        ({"volume_strain": 0.5}, "at most 0.1"),
        ({"elastic_strain": -0.01}, "positive"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"n_jobs": 1.5}, "n_jobs must be an integer >= 1"),
        ({"cache": "yes"}, "cache must be True or False"),
    ],
)
def test_bad_parameters_are_refused_clearly(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniversalPotentialStructureFeaturizer(**kwargs).feature_labels()


def test_set_n_jobs_validates():
    featurizer = UniversalPotentialStructureFeaturizer()
    featurizer.set_n_jobs(2)
    assert featurizer.n_jobs == 2 and featurizer.get_params()["n_jobs"] == 2
    with pytest.raises(ValueError, match="n_jobs"):
        featurizer.set_n_jobs(0)


@pytest.mark.skipif(HAS["chgnet"], reason="chgnet is installed")
def test_missing_extra_names_it():
    with pytest.raises(MissingPotentialDependencyError, match=r"\[potentials\]"):
        UniversalPotentialStructureFeaturizer("chgnet").featurize(silicon())


def test_structure_key_sees_what_the_potential_sees():
    a, b = silicon(), silicon()
    assert structure_key(a) == structure_key(b)
    b.perturb(1e-6)
    assert structure_key(a) != structure_key(b)
    c = silicon()
    c.replace_species({"Si": "Ge"})
    assert structure_key(a) != structure_key(c)


# ------------------------------------------------------------------ with the extra
@pytest.mark.parametrize("model", MODELS)
def test_structure_features_are_finite_and_match_the_site_vectors(model):
    structures = [silicon(), rocksalt(), copper()]
    featurizer = UniversalPotentialStructureFeaturizer(model, physics=("energy",))
    x = featurizer.featurize_many(structures)
    assert x.shape == (3, len(featurizer.feature_labels())) and np.isfinite(x).all()
    sites = UniversalPotentialSiteFeaturizer(model)
    frame = sites.featurize_dataframe(pd.DataFrame({"structure": structures}))
    dim = get_potential(model).site_dim
    for row, structure in enumerate(structures):
        vectors = frame.xs(row, level=0)[sites.feature_labels()].to_numpy()
        assert vectors.shape == (len(structure), dim)
        np.testing.assert_allclose(x[row, :dim], vectors.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            x[row, 2 * dim : 3 * dim], vectors.min(axis=0), rtol=1e-5, atol=1e-6
        )
    # one site, by index, equals its row of the per-site frame
    np.testing.assert_allclose(
        sites.featurize(structures[1], 5),
        frame.loc[(1, 5), sites.feature_labels()].to_numpy(dtype=float),
        rtol=1e-6,
    )
    # Si and Cu: one element per cell, symmetric sites: the site std is (nearly) zero
    assert np.abs(x[0, dim : 2 * dim]).max() < 1e-3


@pytest.mark.skipif(not HAS["chgnet"], reason="needs the [potentials] extra (chgnet)")
def test_chgnet_features_equal_chgnets_own_output():
    from chgnet.model import CHGNet

    structures = [silicon(), rocksalt()]
    reference = CHGNet.load(verbose=False).predict_structure(
        structures, task="em", return_atom_feas=True, return_crystal_feas=True, batch_size=16
    )
    clear_cache()
    featurizer = UniversalPotentialStructureFeaturizer(
        "chgnet", stats=("mean",), physics=("energy", "magmom")
    )
    x = featurizer.featurize_many(structures)
    for row, ref in enumerate(reference):
        np.testing.assert_allclose(x[row, :64], ref["atom_fea"].mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(
            x[row, 64:128], ref["crystal_fea"] / len(structures[row]), rtol=1e-5, atol=1e-6
        )
        assert x[row, 128] == pytest.approx(float(ref["e"]), rel=1e-5)
        assert x[row, 130] == pytest.approx(np.abs(ref["m"]).max(), rel=1e-4, abs=1e-6)


@pytest.mark.skipif(not HAS["sevennet"], reason="needs the [potentials] extra (sevenn)")
def test_sevennet_energy_and_stress_equal_its_calculator():
    from pymatgen.io.ase import AseAtomsAdaptor
    from sevenn.calculator import SevenNetCalculator

    structure = rocksalt()
    structure.apply_strain(-0.03)  # compressed: a positive pressure
    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = SevenNetCalculator("7net-0", device="cpu")
    energy = atoms.get_potential_energy() / len(atoms)
    pressure = -atoms.get_stress()[:3].mean() * 160.21766208  # ASE: eV/A^3, tensile positive
    x = UniversalPotentialStructureFeaturizer(
        "sevennet", stats=(), physics=("energy", "stress")
    ).featurize(structure)
    assert x[0] == pytest.approx(energy, abs=1e-4)
    assert x[1] == pytest.approx(pressure, rel=1e-3) and x[1] > 0


@pytest.mark.parametrize("model", MODELS)
def test_moduli_are_physical(model):
    featurizer = UniversalPotentialStructureFeaturizer(
        model, stats=(), crystal_feature=False, physics=("stress", "bulk_modulus", "elastic")
    )
    pressure, von_mises, k_fd, k_voigt, g_voigt = featurizer.featurize(copper())
    assert von_mises == pytest.approx(0, abs=1e-3)  # cubic: the stress is hydrostatic
    assert 80 < k_fd < 250 and 80 < k_voigt < 250 and 10 < g_voigt < 150  # DFT: 140, 50
    assert k_fd == pytest.approx(k_voigt, rel=0.2)  # two routes (strains of 2 % and 1 %)
    compressed = copper()
    compressed.apply_strain(-0.02)
    assert featurizer.featurize(compressed)[0] > pressure  # squeezing raises the pressure


@pytest.mark.parametrize("model", MODELS)
def test_second_pass_reads_the_cache(model, monkeypatch):
    featurizer = UniversalPotentialStructureFeaturizer(model, physics=("energy",))
    first = featurizer.featurize_many([silicon(), copper()])
    potential = get_potential(model)

    def boom(*args, **kwargs):
        raise AssertionError("the potential ran again")

    monkeypatch.setattr(potential, "_run", boom)
    np.testing.assert_array_equal(featurizer.featurize_many([silicon(), copper()]), first)
    with pytest.raises(AssertionError, match="ran again"):
        UniversalPotentialStructureFeaturizer(model, cache=False).featurize(silicon())


@pytest.mark.parametrize("model", MODELS)
def test_structures_the_potential_cannot_do_fail_per_row(model):
    disordered = rocksalt()
    disordered.replace_species({"Na": {"Na": 0.5, "K": 0.5}})
    isolated = Structure(Lattice.cubic(15.0), ["Cu", "Cu"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    heavy = Structure(Lattice.cubic(3.5), ["Cf"], [[0, 0, 0]])  # Z = 98
    featurizer = UniversalPotentialStructureFeaturizer(model)
    for bad, match in [
        (disordered, "disordered"),
        (isolated, "isolated atom"),
        (heavy, "outside the .* table"),
        (Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]]), "Molecule"),
    ]:
        with pytest.raises((ValueError, TypeError), match=match):
            featurizer.featurize(bad)
    df = pd.DataFrame({"structure": [silicon(), isolated, copper()]})
    with pytest.raises(ValueError, match=r"row 1: .*isolated atom"):
        featurizer.featurize_dataframe(df)
    out = featurizer.featurize_dataframe(df, ignore_errors=True, return_errors=True)
    labels = featurizer.feature_labels()
    assert out[labels].iloc[1].isna().all() and out[labels].iloc[[0, 2]].notna().all().all()
    assert "isolated" in out[f"{type(featurizer).__name__} Exceptions"].iloc[1]


@pytest.mark.parametrize("model", MODELS)
def test_site_index_out_of_range_is_clear(model):
    featurizer = UniversalPotentialSiteFeaturizer(model)
    with pytest.raises(IndexError, match="out of range for a structure of 2 sites"):
        featurizer.featurize(copper().get_primitive_structure() * (1, 1, 2), 7)
    out = featurizer.featurize_many([(silicon(), 0), (silicon(), 99)], ignore_errors=True)
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


@pytest.mark.skipif(not HAS["chgnet"], reason="needs the [potentials] extra (chgnet)")
def test_threads_are_used_and_restored():
    import torch

    before = torch.get_num_threads()
    seen = []
    potential = get_potential("chgnet")
    run = potential._run

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return run(*args, **kwargs)

    potential._run = spy
    try:
        UniversalPotentialStructureFeaturizer("chgnet", n_jobs=1, cache=False).featurize(copper())
    finally:
        potential._run = run
    assert seen == [1] and torch.get_num_threads() == before


@pytest.mark.skipif(not HAS["chgnet"], reason="needs the [potentials] extra (chgnet)")
def test_scikit_learn_and_matminer_contract():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    featurizer = UniversalPotentialStructureFeaturizer("chgnet", stats=("mean",))
    assert clone(featurizer).get_params() == featurizer.get_params()
    assert pickle.loads(pickle.dumps(featurizer)).get_params() == featurizer.get_params()
    structures = [silicon(), rocksalt(), copper(), silicon() * (1, 1, 2)]
    X = np.array(structures, dtype=object).reshape(-1, 1)
    pipe = make_pipeline(featurizer, Ridge()).fit(X, [1.0, 2.0, 3.0, 1.0])
    assert pipe.predict(X).shape == (4,)
    assert featurizer.fit(X) is featurizer
    assert "Deng" in featurizer.citations()[0] and featurizer.implementors()
    # a supercell has the same site statistics and crystal vector as its cell
    x = featurizer.featurize_many([silicon(), silicon() * (1, 1, 2)])
    np.testing.assert_allclose(x[0], x[1], rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not HAS["chgnet"], reason="needs the [potentials] extra (chgnet)")
def test_dask_path_matches_in_memory():
    pytest.importorskip("dask.dataframe")
    import dask
    import dask.dataframe as dd

    from crysatom_featurizers.dask import featurize_dask

    df = pd.DataFrame({"structure": [silicon(), rocksalt(), copper()]})
    featurizer = UniversalPotentialStructureFeaturizer("chgnet", physics=("energy",))
    expected = featurizer.featurize_dataframe(df)
    with dask.config.set({"dataframe.convert-string": False}):
        ddf = dd.from_pandas(df, npartitions=2)
        got = featurize_dask(ddf, featurizer, "structure").compute(scheduler="synchronous")
    labels = featurizer.feature_labels()
    np.testing.assert_allclose(got[labels].to_numpy(), expected[labels].to_numpy(), rtol=1e-6)
