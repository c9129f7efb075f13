"""Tests of crystal graph construction (crysatom_featurizers.graphs)."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from crysatom_featurizers.graphs import (
    CGCNN_GRAPH,
    CrystalGraphTransformer,
    GraphBatch,
    GraphSettings,
    IsolatedSiteError,
    PackedField,
    PackedGraphs,
    gaussian_centers,
    normalize_species_weights,
    pack_graphs,
    prime_structure_caches,
    register_packed_field,
    site_occupancies,
    structure_to_graph,
    structures_to_graphs,
)

TOL = 1e-5  # Å, distance tolerance for float32 storage
TIE = 1e-3  # Å, distances closer than this count as ties (symmetric cells, rounded coordinates)


def test_graph_settings_are_the_cgcnn_defaults_everywhere():
    import dataclasses
    import inspect

    from crysatom_featurizers.estimators import CGCNNRegressor
    from crysatom_featurizers.nn import CGCNN, GaussianExpansion

    assert CGCNN_GRAPH == GraphSettings(8.0, 12, 0.2, 0.2)
    assert CGCNN_GRAPH.num_gaussians == 41 == len(CGCNN_GRAPH.centers())
    with pytest.raises(dataclasses.FrozenInstanceError):
        CGCNN_GRAPH.radius = 6.0
    for bad in (
        {"radius": 0.0},
        {"max_neighbors": 0},
        {"gaussian_step": -1},
        {"gaussian_width": 0},
    ):
        with pytest.raises(ValueError):
            GraphSettings(**bad)
    for fn in (structure_to_graph, structures_to_graphs):
        assert inspect.signature(fn).parameters["settings"].default is CGCNN_GRAPH
    params = inspect.signature(CrystalGraphTransformer).parameters
    assert params["radius"].default == CGCNN_GRAPH.radius
    assert params["gaussian_width"].default == CGCNN_GRAPH.gaussian_width
    assert CrystalGraphTransformer().settings() == CGCNN_GRAPH
    est = CGCNNRegressor()
    assert (est.radius, est.max_neighbors) == (CGCNN_GRAPH.radius, CGCNN_GRAPH.max_neighbors)
    assert GaussianExpansion().num_gaussians == CGCNN_GRAPH.num_gaussians
    assert CGCNN("cgcnn").distance_expansion.width == CGCNN_GRAPH.gaussian_width


def test_functions_take_graph_settings(nacl):
    settings = GraphSettings(radius=6.0, max_neighbors=8, gaussian_step=0.5, gaussian_width=0.5)
    given = structure_to_graph(nacl, settings)
    spelled = structure_to_graph(
        nacl, radius=6.0, max_neighbors=8, gaussian_step=0.5, gaussian_width=0.5
    )
    for key in ("edge_index", "edge_dist", "edge_attr"):
        assert torch.equal(getattr(given, key), getattr(spelled, key)), key
    assert given.edge_attr.shape[1] == settings.num_gaussians == 13
    (many,) = structures_to_graphs([nacl], settings)
    assert torch.equal(many.edge_index, given.edge_index)
    with pytest.raises(TypeError, match="must be a GraphSettings"):
        structure_to_graph(nacl, 6.0)
    with pytest.raises(TypeError, match="unknown graph setting"):
        structures_to_graphs([nacl], stop=6.0)
    assert CGCNN_GRAPH.replace(radius=6.0) == GraphSettings(6.0, 12, 0.2, 0.2)
    assert GraphSettings.from_dict({**settings.as_dict(), "checksum": "x"}) == settings
    with pytest.raises(ValueError, match="radius must be a positive finite number"):
        CGCNN_GRAPH.replace(radius=-1.0)


def test_graph_settings_and_estimator_parameters_load_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; from crysatom_featurizers.graphs import CGCNN_GRAPH; "
        "from crysatom_featurizers.estimators import CGCNNRegressor; "
        "CGCNNRegressor().get_params(); sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_transformer_output_is_not_tabular(small_structures):
    """A list of graphs has no columns: no feature names and no set_output, as scikit-learn
    expects of a transformer with non-tabular output."""
    transformer = CrystalGraphTransformer()
    assert not hasattr(transformer, "get_feature_names_out")
    assert not hasattr(transformer, "set_output")
    graphs = transformer.fit_transform(small_structures[:2])
    assert isinstance(graphs, list) and len(graphs) == 2


def reference_neighbors(structure: Structure, radius: float = 8.0, max_neighbors: int = 12):
    """CGCNN-style reference: get_all_neighbors, Python sort by distance, truncate."""
    out = []
    for neighbors in structure.get_all_neighbors(radius):
        ranked = sorted(neighbors, key=lambda n: n.nn_distance)
        out.append(([(n.index, n.nn_distance) for n in ranked[:max_neighbors]], ranked))
    return out


def assert_matches_reference(structure: Structure, radius: float = 8.0, max_neighbors: int = 12):
    graph = structure_to_graph(structure, radius=radius, max_neighbors=max_neighbors)
    src, dst = graph.edge_index.numpy()
    dist = graph.edge_dist.numpy().astype(np.float64)
    reference = reference_neighbors(structure, radius, max_neighbors)
    assert graph.num_nodes == len(structure)
    for centre, (kept, full) in enumerate(reference):
        mask = dst == centre
        ours_j, ours_d = src[mask], dist[mask]
        # Same number of edges, ascending distances equal to the reference's.
        assert len(ours_j) == len(kept)
        assert np.all(np.diff(ours_d) >= -TOL)
        np.testing.assert_allclose(ours_d, [d for _, d in kept], atol=TOL)
        # Neighbour identity: exact below the truncation distance; at the boundary (ties) every
        # chosen neighbour must be one the reference has at that distance.
        cutoff = kept[-1][1]
        strict_ours = Counter(int(j) for j, d in zip(ours_j, ours_d) if d < cutoff - TIE)
        strict_ref = Counter(int(j) for j, d in kept if d < cutoff - TIE)
        assert strict_ours == strict_ref
        at_cutoff = Counter(int(n.index) for n in full if abs(n.nn_distance - cutoff) <= TIE)
        ours_at_cutoff = Counter(int(j) for j, d in zip(ours_j, ours_d) if abs(d - cutoff) <= TIE)
        assert all(at_cutoff[j] >= c for j, c in ours_at_cutoff.items())


@pytest.mark.parametrize("name", ["nacl", "fe2o3", "bcc_fe", "perovskite"])
def test_neighbours_match_reference(name, request):
    assert_matches_reference(request.getfixturevalue(name))


@pytest.mark.parametrize("margin", [0.3, 1.0, 100.0])
def test_two_stage_search_matches_reference(fe2o3, monkeypatch, margin):
    # The first search radius shrinks with the margin; small margins force the second,
    # full-radius search for many sites, large ones make the first search use the full radius.
    import crysatom_featurizers.graphs.build as graphs_module

    monkeypatch.setattr(graphs_module, "_SEARCH_MARGIN", margin)
    assert_matches_reference(fe2o3)
    assert_matches_reference(fe2o3, radius=5.0, max_neighbors=20)


def test_cell_with_vacuum_matches_reference():
    # A dense cluster plus a lone atom in a mostly empty cell: uneven density. The first,
    # shorter search (about 12.9 Å here) misses the Au atom's neighbours (13.2 Å away), so
    # they come from the second search at the full radius.
    species = ["Cu"] * 8 + ["Au"]
    coords = [[x, y, z] for x in (0, 0.12) for y in (0, 0.12) for z in (0, 0.12)] + [[0.5] * 3]
    structure = Structure(Lattice.cubic(20.0), species, coords)
    assert_matches_reference(structure, radius=14.0, max_neighbors=4)
    graph = structure_to_graph(structure, radius=14.0, max_neighbors=4)
    assert torch.all(graph.edge_dist[graph.edge_index[1] == 8] > 13.0)


def test_neighbours_match_reference_small_radius_and_k(fe2o3):
    assert_matches_reference(fe2o3, radius=4.0, max_neighbors=5)


@pytest.mark.slow
@pytest.mark.shared_data
def test_neighbours_match_reference_jarvis(jarvis_small):
    for structure in jarvis_small["structure"].iloc[:40]:
        assert_matches_reference(structure)


def test_reference_check_can_fail(nacl):
    graph = structure_to_graph(nacl)
    reference = reference_neighbors(nacl)
    # Dropping the nearest neighbour of site 0 must be detected by the comparison.
    ours = graph.edge_dist[graph.edge_index[1] == 0].numpy()
    ref = np.array([d for _, d in reference[0][0]])
    assert not np.allclose(np.r_[ours[1:], 99.0], ref, atol=TOL)


def test_all_pairs_match_get_neighbor_list(fe2o3):
    graph = structure_to_graph(fe2o3, radius=6.0, max_neighbors=None)
    centres, neighbours, _, distances = fe2o3.get_neighbor_list(6.0)
    ours = sorted(zip(graph.edge_index[1].tolist(), graph.edge_index[0].tolist()))
    assert ours == sorted(zip(centres.tolist(), neighbours.tolist()))
    np.testing.assert_allclose(np.sort(graph.edge_dist.numpy()), np.sort(distances), atol=TOL)


def test_input_structure_not_modified(fe2o3):
    import joblib

    before = joblib.hash(fe2o3)
    structures_to_graphs([fe2o3])
    assert joblib.hash(fe2o3) == before  # keeps joblib / Pipeline(memory=...) caches valid
    fe2o3.cart_coords  # noqa: B018 - pymatgen caches Cartesian coordinates on the sites
    assert joblib.hash(fe2o3) != before  # so the check above can fail


def test_bcc_single_site_many_images(bcc_fe):
    graph = structure_to_graph(bcc_fe)
    assert graph.num_nodes == 1
    assert graph.edge_index.shape == (2, 12)
    assert torch.all(graph.edge_index == 0)  # all edges are images of the one site
    a = 2.87
    expected = np.r_[np.full(8, a * np.sqrt(3) / 2), np.full(4, a)]
    np.testing.assert_allclose(graph.edge_dist.numpy(), expected, atol=1e-4)
    # Without truncation: every image within 8 Å.
    full = structure_to_graph(bcc_fe, max_neighbors=None)
    n_images = len(bcc_fe.get_neighbor_list(8.0)[0])
    assert full.edge_index.shape[1] == n_images > 100


def test_large_supercell(nacl):
    supercell = nacl * (4, 4, 4)  # 512 sites
    graph = structure_to_graph(supercell)
    assert graph.num_nodes == 512
    assert graph.edge_index.shape == (2, 512 * 12)
    counts = torch.bincount(graph.edge_index[1], minlength=512)
    assert torch.all(counts == 12)
    # Rock salt: 6 nearest neighbours at a/2, then 6 of the 12 at a/sqrt(2).
    d = graph.edge_dist.view(512, 12).numpy()
    np.testing.assert_allclose(d[:, :6], 5.69 / 2, atol=1e-4)
    np.testing.assert_allclose(d[:, 6:], 5.69 / np.sqrt(2), atol=1e-4)
    # Nearest neighbours are the other species.
    z = graph.z
    src, dst = graph.edge_index
    nearest = graph.edge_dist < 3.0
    assert torch.all(z[src[nearest]] != z[dst[nearest]])


def test_edges_grouped_by_centre_and_sorted(fe2o3):
    graph = structure_to_graph(fe2o3)
    dst = graph.edge_index[1].numpy()
    assert np.all(np.diff(dst) >= 0)
    d = graph.edge_dist.numpy()
    same = np.diff(dst) == 0
    assert np.all(np.diff(d)[same] >= 0)


def test_gaussian_expansion(nacl):
    graph = structure_to_graph(nacl)
    centres = gaussian_centers(0.0, 8.0, 0.2)
    assert len(centres) == 41 and centres[-1] == pytest.approx(8.0)
    expected = np.exp(-((graph.edge_dist.numpy()[:, None] - centres) ** 2) / 0.2**2)
    assert graph.edge_attr.dtype == torch.float32
    np.testing.assert_allclose(graph.edge_attr.numpy(), expected, atol=1e-6)
    other = structure_to_graph(nacl, radius=6.0, gaussian_step=0.5, gaussian_width=0.5)
    assert other.edge_attr.shape[1] == 13
    assert "edge_attr" not in structure_to_graph(nacl, expand_edges=False)


def test_ordered_species_fields(perovskite):
    graph = structure_to_graph(perovskite)
    assert graph.z.tolist() == [38, 22, 8, 8, 8]
    assert torch.equal(graph.species_z, graph.z)
    assert torch.equal(graph.species_site_index, torch.arange(5))
    assert torch.all(graph.species_weight == 1.0)


def test_disordered_site_weights(disordered):
    graph = structure_to_graph(disordered)
    assert graph.num_nodes == 8
    assert graph.species_z.numel() == 12  # 4 mixed sites x 2 species + 4 O sites
    for site in range(4):
        entries = graph.species_site_index == site
        assert sorted(graph.species_z[entries].tolist()) == [26, 28]
        assert torch.allclose(graph.species_weight[entries], torch.tensor([0.5, 0.5]))
    assert torch.allclose(site_occupancies(graph), torch.ones(8))
    assert set(graph.z[:4].tolist()) <= {26, 28}


def test_vacancy_weights_kept_and_normalized():
    structure = Structure(
        Lattice.cubic(4.2), [{"Fe": 0.3, "Ni": 0.3}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    graph = structure_to_graph(structure)
    np.testing.assert_allclose(site_occupancies(graph).numpy(), [0.6, 1.0], atol=1e-6)
    normalized = normalize_species_weights(graph)
    np.testing.assert_allclose(site_occupancies(normalized).numpy(), [1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(graph.species_weight.numpy()[:2], [0.3, 0.3], atol=1e-6)


def test_isolated_site_raises():
    lone = Structure(Lattice.cubic(20.0), ["Cu"], [[0, 0, 0]])
    with pytest.raises(IsolatedSiteError, match=r"site 0 .*radius=8.0.*larger radius"):
        structure_to_graph(lone, radius=8.0)
    assert issubclass(IsolatedSiteError, ValueError)
    graph = structure_to_graph(lone, radius=8.0, allow_isolated=True)
    assert graph.num_nodes == 1 and graph.edge_index.shape == (2, 0)
    assert graph.edge_attr.shape == (0, 41)
    # A larger radius reaches the periodic images.
    assert structure_to_graph(lone, radius=20.5).edge_index.shape[1] == 6


def test_partly_isolated_site_named():
    # Two sites 1 Å apart in a 30 Å box and one far away from both.
    s = Structure(Lattice.cubic(30.0), ["H", "H", "He"], [[0, 0, 0], [1 / 30, 0, 0], [0.5] * 3])
    with pytest.raises(ValueError, match=r"site 2 \(He\)"):
        structure_to_graph(s, radius=5.0)


def test_structures_to_graphs_inputs(small_structures):
    graphs = structures_to_graphs(small_structures)
    assert [g.num_nodes for g in graphs] == [len(s) for s in small_structures]
    series = pd.Series(small_structures, index=list("abcd"))
    frame = pd.DataFrame({"structure": small_structures, "y": range(4)})
    for other in (structures_to_graphs(series), structures_to_graphs(frame)):
        assert all(torch.equal(a.edge_index, b.edge_index) for a, b in zip(graphs, other))
    with pytest.raises(ValueError, match="'structure' column"):
        structures_to_graphs(pd.DataFrame({"s": small_structures}))
    with pytest.raises(TypeError, match="single Structure"):
        structures_to_graphs(small_structures[0])


def test_errors_name_the_row(nacl):
    with pytest.raises(TypeError, match=r"index 1.*str"):
        structures_to_graphs([nacl, "NaCl"])
    with pytest.raises(TypeError, match=r"index 'b'.*Composition"):
        structures_to_graphs(pd.Series([nacl, nacl.composition], index=["a", "b"]))
    lone = Structure(Lattice.cubic(20.0), ["Cu"], [[0, 0, 0]])
    with pytest.raises(IsolatedSiteError, match=r"row 'x'.*site 0.*larger radius"):
        structures_to_graphs(pd.Series([nacl, lone], index=["w", "x"]))


def test_parallel_and_progress_match_serial(small_structures, capsys):
    import joblib

    serial = structures_to_graphs(small_structures * 2)
    # Threads exercise the chunking and ordering without the start-up cost of processes.
    with joblib.parallel_config(backend="threading"):
        parallel = structures_to_graphs(small_structures * 2, n_jobs=2)
    shown = structures_to_graphs(small_structures, progress=True)
    assert "graphs" in capsys.readouterr().err
    for a, b in zip(serial, parallel + shown):
        assert torch.equal(a.edge_index, b.edge_index)
        assert torch.equal(a.edge_attr, b.edge_attr)


def test_batching_offsets_species_site_index(disordered, nacl):
    from torch_geometric.loader import DataLoader

    graphs = structures_to_graphs([disordered, nacl, disordered])
    batch = next(iter(DataLoader(graphs, batch_size=3)))
    assert batch.num_graphs == 3 and batch.num_nodes == 24
    assert batch.species_site_index.numel() == 12 + 8 + 12
    expected = torch.cat(
        [graphs[0].species_site_index, graphs[1].species_site_index + 8]
        + [graphs[2].species_site_index + 16]
    )
    assert torch.equal(batch.species_site_index, expected)
    assert torch.equal(batch.edge_index[:, 96:192], graphs[1].edge_index + 8)


def test_transformer_sklearn_contract(small_structures):
    transformer = CrystalGraphTransformer(radius=6.0, max_neighbors=8)
    assert transformer.fit(small_structures) is transformer
    check_is_fitted(transformer)
    assert transformer.n_edge_features_ == 31
    graphs = transformer.transform(small_structures)
    assert len(graphs) == 4 and graphs[0].edge_attr.shape[1] == 31
    assert max(torch.bincount(g.edge_index[1]).max() for g in graphs) == 8
    copy = clone(transformer).set_params(max_neighbors=4)
    assert copy.get_params()["radius"] == 6.0 and copy.max_neighbors == 4
    restored = pickle.loads(pickle.dumps(transformer))
    again = restored.fit_transform(small_structures)
    assert all(torch.equal(a.edge_attr, b.edge_attr) for a, b in zip(graphs, again))


class _CountingTransformer(CrystalGraphTransformer):
    calls = 0

    def transform(self, X):
        type(self).calls += 1
        return super().transform(X)


class _Sink:
    """Final pipeline step that accepts the graphs."""

    def fit(self, X, y=None):
        self.n_ = len(X)
        return self

    def get_params(self, deep=True):
        return {}


def test_pipeline_memory_cache_hit(small_structures, tmp_path):
    prime_structure_caches(small_structures)
    pipe = Pipeline([("graphs", _CountingTransformer()), ("sink", _Sink())], memory=str(tmp_path))
    _CountingTransformer.calls = 0
    pipe.fit(small_structures)
    assert _CountingTransformer.calls == 1
    clone(pipe).fit(small_structures)
    assert _CountingTransformer.calls == 1  # served from the cache
    pipe.set_params(graphs__radius=7.0).fit(small_structures)
    assert _CountingTransformer.calls == 2  # new parameters, new entry


def test_joblib_memory_cache_hit(small_structures, tmp_path):
    import joblib

    memory = joblib.Memory(str(tmp_path), verbose=0)
    cached = memory.cache(structures_to_graphs)
    assert prime_structure_caches(small_structures) is small_structures
    first = cached(small_structures)
    assert cached.check_call_in_cache(small_structures)
    second = cached(small_structures)
    assert all(torch.equal(a.edge_attr, b.edge_attr) for a, b in zip(first, second))


def test_prime_structure_caches_stabilises_hash(fe2o3):
    import joblib

    unprimed = joblib.hash(fe2o3)
    prime_structure_caches([fe2o3])
    primed = joblib.hash(fe2o3)
    assert primed != unprimed  # pymatgen filled its caches
    repr(fe2o3), str(fe2o3), fe2o3.cart_coords, structure_to_graph(fe2o3)
    assert joblib.hash(fe2o3) == primed


def test_packed_batch_matches_pyg_batch(request):
    """PackedGraphs.batch gathers any subset in any order exactly as PyG's Batch collates it."""
    from torch_geometric.data import Batch

    structures = [request.getfixturevalue(n) for n in ("nacl", "fe2o3", "bcc_fe", "perovskite")]
    disordered = structures[0].copy()
    disordered.replace(0, {"Na": 0.5, "K": 0.5})
    graphs = structures_to_graphs([*structures, disordered], expand_edges=False)
    packed = PackedGraphs.from_graphs(graphs, rows=[10, 11, 12, 13, 14])
    order = [3, 0, 4, 1]
    ours = packed.batch(torch.tensor(order))
    ref = Batch.from_data_list([graphs[i] for i in order])
    for key in ("z", "species_z", "species_site_index", "edge_index", "batch", "ptr"):
        assert torch.equal(getattr(ours, key), getattr(ref, key).long()), key
    torch.testing.assert_close(ours.species_weight, ref.species_weight.float())
    torch.testing.assert_close(ours.edge_dist, ref.edge_dist.float())
    assert ours.rows.tolist() == [13, 10, 14, 11]
    assert ours.num_graphs == 4 and ours.num_nodes == int(ref.num_nodes)
    assert packed.batch(np.array([], dtype=int)).num_graphs == 0
    with pytest.raises(ValueError, match="missing"):
        PackedGraphs({"rows": torch.zeros(1)})
    # the transformer's output batches the same way, without PyG's collation
    whole = GraphBatch.from_graphs(
        CrystalGraphTransformer(expand_edges=False).transform(structures)
    )
    ref = Batch.from_data_list(graphs[:4])
    for key in ("z", "species_z", "species_site_index", "edge_index", "batch", "ptr"):
        assert torch.equal(getattr(whole, key), getattr(ref, key).long()), key
    torch.testing.assert_close(whole.edge_dist, ref.edge_dist.float())


def _with_edge_pairs(graph, prefix: str):
    """A copy of ``graph`` with consecutive edge pairs and a number per pair (a stand-in for a
    line graph and its bond-angle cosines)."""
    out = graph.clone()
    e = int(graph.edge_index.shape[1])
    setattr(out, f"{prefix}_index", torch.stack([torch.arange(e - 1), torch.arange(1, e)]))
    setattr(out, f"{prefix}_cos", torch.linspace(-1.0, 1.0, e - 1))
    return out


def test_registered_fields_pack_and_batch_with_their_offsets(nacl, fe2o3, bcc_fe):
    index = register_packed_field(
        PackedField("pairs_test_index", "pairs_test", torch.int32, torch.long, "edges", axis=1)
    )
    register_packed_field(PackedField("pairs_test_cos", "pairs_test", torch.float32, torch.float32))
    assert register_packed_field(index) is index  # the same field again: a no-op
    graphs = [
        _with_edge_pairs(g, "pairs_test")
        for g in structures_to_graphs([nacl, fe2o3, bcc_fe], expand_edges=False)
    ]
    packed = PackedGraphs.from_graphs(graphs)
    assert packed.tensors["pairs_test_index"].dtype == torch.int32
    assert packed.tensors["num_pairs_test"].tolist() == [g.edge_index.shape[1] - 1 for g in graphs]
    batch = packed.to("cpu").batch([2, 0])
    first = graphs[2].edge_index.shape[1]
    expected = torch.cat([graphs[2].pairs_test_index, graphs[0].pairs_test_index + first], dim=1)
    assert torch.equal(batch.pairs_test_index, expected)
    assert torch.equal(
        batch.pairs_test_cos, torch.cat([graphs[2].pairs_test_cos, graphs[0].pairs_test_cos])
    )
    # the pairs point at the batch's own edges
    assert int(batch.pairs_test_index.max()) < batch.num_edges
    assert torch.equal(batch.to("cpu").pairs_test_index, expected)
    # graphs without the field pack as before; only some graphs with it is an error
    plain = structures_to_graphs([nacl], expand_edges=False)
    assert "pairs_test_index" not in pack_graphs(plain)
    with pytest.raises(ValueError, match="graph 1 lacks 'pairs_test_index'"):
        pack_graphs([graphs[0], plain[0]])
    with pytest.raises(ValueError, match="core field"):
        register_packed_field(PackedField("edge_dist", "edges", torch.float16, torch.float32))
    with pytest.raises(ValueError, match="already registered"):
        register_packed_field(
            PackedField("pairs_test_cos", "pairs_test", torch.float16, torch.float32)
        )
    with pytest.raises(ValueError, match="unknown segment"):
        register_packed_field(PackedField("x_test", "x", torch.int32, torch.long, "nowhere"))
    with pytest.raises(AttributeError):
        batch.not_a_field  # noqa: B018


def test_two_atoms_at_one_point_are_refused_by_name():
    from pymatgen.core import Lattice, Structure

    from crysatom_featurizers.graphs import structure_to_graph

    for second in ([0, 0, 0], [1e-5, 0, 0], [1.0, 0, 0]):  # the same point, 0.04 mÅ, an image
        s = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], second])
        with pytest.raises(ValueError, match=r"sites 0 \(Na\) and 1 \(Cl\) are 0.000 Å apart"):
            structure_to_graph(s)
    structure_to_graph(Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
