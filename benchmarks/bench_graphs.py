"""Crystal graph construction: ``structures_to_graphs`` against the CGCNN-style reference.

The reference builds each graph the way the CGCNN and CrysAtom data loaders do: for every
structure, ``Structure.get_all_neighbors(radius)``, a Python sort of each site's neighbours
by distance, truncation to ``max_neighbors`` (padding short lists as CGCNN does), a numpy
Gaussian expansion of the distances and conversion to torch tensors. Both start from parsed
pymatgen Structures (no CIF parsing) and run in the same process, alternating, and the
median of the repeats is reported.

Usage::

    python benchmarks/bench_graphs.py [--n 1000] [--repeats 3] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from crysatom_featurizers.graphs import structures_to_graphs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jarvis_dft_3d_2021.json.gz"
RADIUS = 8.0  # Å, CGCNN default
MAX_NEIGHBORS = 12  # CGCNN default
STEP = WIDTH = 0.2  # Å, Gaussian centres 0, 0.2, ..., 8 (41) and width


def reference_graph(structure, radius=RADIUS, max_neighbors=MAX_NEIGHBORS, step=STEP, width=WIDTH):
    """CGCNN-style reference graph of one structure (per-site Python sort and truncate)."""
    centres = np.arange(0.0, radius + step, step)
    atom_z = [site.specie.Z for site in structure]
    all_neighbors = structure.get_all_neighbors(radius, include_index=True)
    all_neighbors = [sorted(neighbors, key=lambda n: n[1]) for neighbors in all_neighbors]
    nbr_fea_idx, nbr_fea = [], []
    for neighbors in all_neighbors:
        if len(neighbors) < max_neighbors:  # CGCNN pads with index 0 at distance radius + 1
            nbr_fea_idx.append([n[2] for n in neighbors] + [0] * (max_neighbors - len(neighbors)))
            nbr_fea.append(
                [n[1] for n in neighbors] + [radius + 1.0] * (max_neighbors - len(neighbors))
            )
        else:
            nbr_fea_idx.append([n[2] for n in neighbors[:max_neighbors]])
            nbr_fea.append([n[1] for n in neighbors[:max_neighbors]])
    nbr_fea_idx = np.array(nbr_fea_idx)
    nbr_fea = np.array(nbr_fea)
    nbr_fea = np.exp(-((nbr_fea[..., np.newaxis] - centres) ** 2) / width**2)
    return (
        torch.LongTensor(atom_z),
        torch.Tensor(nbr_fea),
        torch.LongTensor(nbr_fea_idx),
    )


def run_reference(structures):
    return [reference_graph(s) for s in structures]


def run_ours(structures):
    return structures_to_graphs(structures, radius=RADIUS, max_neighbors=MAX_NEIGHBORS)


def cpu_info() -> dict:
    info = {"processor": platform.processor(), "machine": platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info["os_cpu_count"] = os.cpu_count()
    info["affinity"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    info["torch_threads"] = torch.get_num_threads()
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="number of JARVIS structures")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()

    from matminer.utils.io import load_dataframe_from_json

    t0 = time.perf_counter()
    frame = load_dataframe_from_json(str(args.data), pbar=False)
    structures = list(frame["structure"].iloc[: args.n])
    load_s = time.perf_counter() - t0
    n_sites = np.array([len(s) for s in structures])

    # Warm-up (imports, caches), then agreement check: same Gaussian edge features per site.
    checked = 0
    for g, (z, nbr_fea, _) in zip(run_ours(structures[:100]), run_reference(structures[:100])):
        assert torch.equal(g.z, z)
        if g.edge_index.shape[1] == g.num_nodes * MAX_NEIGHBORS:
            ours = g.edge_attr.view(g.num_nodes, MAX_NEIGHBORS, -1)
            torch.testing.assert_close(ours, nbr_fea, atol=1e-4, rtol=0)
            checked += 1
    assert checked > 50, checked

    load_before = os.getloadavg()
    times = {"reference": [], "ours": []}
    for _ in range(args.repeats):
        for name, fn in (("reference", run_reference), ("ours", run_ours)):
            t = time.perf_counter()
            fn(structures)
            times[name].append(time.perf_counter() - t)
    load_after = os.getloadavg()

    median = {name: statistics.median(values) for name, values in times.items()}
    rate = {name: len(structures) / value for name, value in median.items()}
    result = {
        "benchmark": "crystal graph construction (radius 8 Å, 12 neighbours, 41 Gaussians)",
        "n_structures": len(structures),
        "sites_mean": float(n_sites.mean()),
        "sites_max": int(n_sites.max()),
        "repeats": args.repeats,
        "times_s": times,
        "median_s": median,
        "structures_per_s": rate,
        "speedup": median["reference"] / median["ours"],
        "target_speedup": 15.0,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "cpu": cpu_info(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "pymatgen": __import__("pymatgen.core").core.__version__,
        },
        "data": args.data.name,
        "data_load_s": load_s,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graphs.json").write_text(json.dumps(result, indent=2))
    table = [
        "| method | median time (s) | structures/s |",
        "|---|---|---|",
        f"| CGCNN-style reference (get_all_neighbors + sort) | {median['reference']:.3f} "
        f"| {rate['reference']:.0f} |",
        f"| structures_to_graphs | {median['ours']:.3f} | {rate['ours']:.0f} |",
        "",
        f"speed-up: {result['speedup']:.1f}x (target >= 15x); "
        f"{len(structures)} JARVIS structures, {n_sites.mean():.1f} sites on average; "
        f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} "
        f"on {result['cpu']['affinity']} CPU(s)",
    ]
    print("\n".join(table))


if __name__ == "__main__":
    main()
