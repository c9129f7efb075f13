"""Shared pytest fixtures: small structures built in code, and the optional shared data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
JARVIS_PATH = SHARED_DATA / "jarvis_dft_3d_2021.json.gz"
MP_PATH = SHARED_DATA / "mp_crysxpp_2022.json.gz"

#: Whether the [gnn] extra (torch, torch-geometric) is installed. Without it the suite runs the
#: descriptor tests: the GNN test modules are not collected and tests marked ``gnn`` skip.
HAS_GNN = all(importlib.util.find_spec(m) is not None for m in ("torch", "torch_geometric"))
GNN_TEST_MODULES = [
    "test_estimators.py",
    "test_nn.py",
    "test_graphs.py",
    "test_train.py",
    "test_transfer.py",
    "test_label_vectors.py",
    "test_estimator_base.py",
    "test_model_files.py",
    "test_resumable_fits.py",
    "test_alignn.py",
    "test_network_registry.py",
    "training",
]
collect_ignore = [] if HAS_GNN else GNN_TEST_MODULES


def pytest_collection_modifyitems(config, items):
    if HAS_GNN:
        return
    skip = pytest.mark.skip(reason="needs the [gnn] extra (torch, torch-geometric)")
    for item in items:
        if "gnn" in item.keywords:
            item.add_marker(skip)


def require_shared_data(path: Path = JARVIS_PATH) -> Path:
    """Skip the calling test when the shared data file is absent."""
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (clone the project next to ../shared)")
    return path


@pytest.fixture(scope="session")
def jarvis_path() -> Path:
    return require_shared_data(JARVIS_PATH)


@pytest.fixture(scope="session")
def mp_path() -> Path:
    return require_shared_data(MP_PATH)


@pytest.fixture(scope="session")
def jarvis_small(jarvis_path):
    """The first 300 JARVIS rows (structures and properties), loaded once per session."""
    from matminer.utils.io import load_dataframe_from_json

    df = load_dataframe_from_json(str(jarvis_path), pbar=False)
    return df.iloc[:300].copy()


@pytest.fixture
def nacl() -> Structure:
    """Rock-salt NaCl, conventional cell (8 sites)."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.69), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


@pytest.fixture
def fe2o3() -> Structure:
    """Corundum Fe2O3 (hexagonal setting, 30 sites)."""
    return Structure.from_spacegroup(
        "R-3c",
        Lattice.hexagonal(5.035, 13.747),
        ["Fe", "O"],
        [[0, 0, 0.35530], [0.3059, 0, 0.25]],
    )


@pytest.fixture
def bcc_fe() -> Structure:
    """Primitive bcc Fe, a single site: many periodic images of one atom."""
    a = 2.87 / 2  # half the conventional bcc edge, Å
    return Structure(Lattice([[-a, a, a], [a, -a, a], [a, a, -a]]), ["Fe"], [[0, 0, 0]])


@pytest.fixture
def perovskite() -> Structure:
    """Cubic SrTiO3 perovskite (5 sites)."""
    return Structure.from_spacegroup(
        "Pm-3m",
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0]],
    )


@pytest.fixture
def disordered() -> Structure:
    """A rock-salt cell whose cation site is half Fe, half Ni, with O anions."""
    return Structure.from_spacegroup(
        "Fm-3m",
        Lattice.cubic(4.2),
        [{"Fe": 0.5, "Ni": 0.5}, "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5]],
    )


@pytest.fixture
def small_structures(nacl, fe2o3, bcc_fe, perovskite):
    return [nacl, fe2o3, bcc_fe, perovskite]
