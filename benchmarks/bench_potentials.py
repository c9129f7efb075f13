"""Speed of the universal-potential structure featurizer against the potential's own batched
inference, and of a second (cached) pass.

Run from the repository root (needs ``../shared/data`` and the ``[potentials]`` extra)::

    python benchmarks/bench_potentials.py [--n 1000] [--repeats 3] [--models chgnet,sevennet]

On the same ``--n`` JARVIS crystals (random sample, seed 0, of those both potentials can
evaluate), one torch thread, batch 16, in one process and in turn (reference, ours cold, ours
warm; ``--repeats`` times):

* reference, CHGNet: ``CHGNet.predict_structure(structures, task="e", return_atom_feas=True,
  return_crystal_feas=True, batch_size=16)``, the cheapest call that returns the features;
* reference, SevenNet: its own graphs (``unlabeled_atoms_to_graph``) batched with
  torch-geometric through the SevenNet-0 model;
* ours cold: ``UniversalPotentialStructureFeaturizer(model).featurize_many`` after
  ``clear_cache()`` (site statistics and crystal vector: the potential's graphs, forward pass,
  statistics);
* ours warm: the same call again (every crystal in the cache).

Medians of wall and CPU time; results go to ``benchmarks/results/potentials.json`` and
``potentials.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
JARVIS = REPO.parent / "shared" / "data" / "jarvis_dft_3d_2021.json.gz"
RESULTS = REPO / "benchmarks" / "results"


def chgnet_reference(structures):
    from chgnet.model import CHGNet

    model = CHGNet.load(verbose=False)
    model.eval()

    def run():
        return model.predict_structure(
            structures, task="e", return_atom_feas=True, return_crystal_feas=True, batch_size=16
        )

    return run


def sevennet_reference(structures):
    import sevenn._keys as keys
    import sevenn.util
    from pymatgen.io.ase import AseAtomsAdaptor
    from sevenn.atom_graph_data import AtomGraphData
    from sevenn.train.dataload import unlabeled_atoms_to_graph
    from torch_geometric.data import Batch

    checkpoint = sevenn.util.load_checkpoint("7net-0")
    model = checkpoint.build_model()
    model.set_is_batch_data(True)
    model.eval()
    cutoff = checkpoint.config[keys.CUTOFF]

    def run():
        graphs = [
            AtomGraphData.from_numpy_dict(
                unlabeled_atoms_to_graph(AseAtomsAdaptor.get_atoms(s), cutoff)
            )
            for s in structures
        ]
        out = []
        for start in range(0, len(graphs), 16):
            output = model(Batch.from_data_list(graphs[start : start + 16]))
            out.append(output["x"].detach())
        return out

    return run


def timed(function) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - start_cpu


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="chgnet,sevennet")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import torch
    from matminer.utils.io import load_dataframe_from_json

    from crysatom_featurizers.featurizers import UniversalPotentialStructureFeaturizer
    from crysatom_featurizers.potentials import clear_cache, get_potential

    torch.set_num_threads(1)
    frame = load_dataframe_from_json(JARVIS, pbar=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(frame))
    models = args.models.split(",")
    structures = []
    for i in order:  # crystals every potential can evaluate (no isolated atoms, known elements)
        s = frame["structure"].iloc[int(i)]
        try:
            for m in models:
                potential = get_potential(m)
                potential.check(s)
                potential._prepare(s)
        except ValueError:
            continue
        structures.append(s)
        if len(structures) == args.n:
            break
    references = {"chgnet": chgnet_reference, "sevennet": sevennet_reference}
    report = {
        "n_crystals": len(structures),
        "mean_sites": float(np.mean([len(s) for s in structures])),
        "torch_threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "models": {},
    }
    for model in models:
        reference = references[model](structures)
        featurizer = UniversalPotentialStructureFeaturizer(model, n_jobs=1)

        def ours(featurizer=featurizer):
            return featurizer.featurize_many(structures)

        reference()  # warm-up: lazy imports, first allocations
        clear_cache()
        ours()
        runs = {"reference": [], "ours_cold": [], "ours_warm": []}
        for _ in range(args.repeats):
            runs["reference"].append(timed(reference))
            clear_cache()
            runs["ours_cold"].append(timed(ours))
            runs["ours_warm"].append(timed(ours))
        med = {
            k: {
                "wall_s": statistics.median(w for w, _ in v),
                "cpu_s": statistics.median(c for _, c in v),
                "runs": v,
            }
            for k, v in runs.items()
        }
        med["ratios"] = {
            "cold_over_reference_wall": med["ours_cold"]["wall_s"] / med["reference"]["wall_s"],
            "cold_over_reference_cpu": med["ours_cold"]["cpu_s"] / med["reference"]["cpu_s"],
            "cold_over_warm_wall": med["ours_cold"]["wall_s"] / med["ours_warm"]["wall_s"],
            "cold_over_warm_cpu": med["ours_cold"]["cpu_s"] / med["ours_warm"]["cpu_s"],
        }
        report["models"][model] = med
        print(model, json.dumps(med["ratios"]))
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    report["load_average_end"] = load
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "potentials.json").write_text(json.dumps(report, indent=1))
    lines = [
        "# Universal-potential featurizer benchmark",
        "",
        f"{report['n_crystals']} JARVIS crystals ({report['mean_sites']:.1f} sites on average), "
        f"one torch thread, batch 16, median of {args.repeats} interleaved runs in one process; "
        f"load average at the end {' '.join(load)} (2 cores, shared with other work: the CPU "
        "time is the steadier figure). SevenNet's own model always runs its force and stress "
        "output (a backward pass); the featurizer skips it unless stress features are asked for.",
        "",
        "| model | reference wall (s) | ours cold wall (s) | ours warm wall (s) | cold / reference "
        "(wall, CPU) | cold / warm (wall, CPU) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for model, med in report["models"].items():
        r = med["ratios"]
        lines.append(
            f"| {model} | {med['reference']['wall_s']:.1f} | {med['ours_cold']['wall_s']:.1f} | "
            f"{med['ours_warm']['wall_s']:.3f} | {r['cold_over_reference_wall']:.2f}, "
            f"{r['cold_over_reference_cpu']:.2f} | {r['cold_over_warm_wall']:.0f}, "
            f"{r['cold_over_warm_cpu']:.0f} |"
        )
    (RESULTS / "potentials.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
