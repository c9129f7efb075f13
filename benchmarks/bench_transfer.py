"""Cost of transfer from the pretrained encoder: fine-tuning and distillation against vanilla.

Task: JARVIS-DFT formation energy (eV/atom) of the same 1,000 crystals (drawn with seed 123)
for every mode, CPU, one torch thread, batch 32, ``CGCNNRegressor.fit`` with a fixed number
of epochs and 100 of the crystals as validation:

* ``vanilla``: CGCNN on the ``cgcnn`` features, 64-wide, 3 convolutions;
* ``distill``: the same student, trained with CrysGNN's loss against the frozen shipped
  ``crysatom`` encoder (200-wide, 5 convolutions); the teacher's node embeddings are
  computed once per fit (reported separately as ``setup``);
* ``finetune``: the shipped encoder itself (200 x 5) with a new head, all trained.

Each fit runs in a forked child, so its peak resident memory is its own; the modes alternate
over ``--repeats`` rounds. Reported: s/epoch (median over epochs 2..E, train + validation),
the one-time setup (graphs and, for distillation, the teacher pass), the peak RSS increase
during ``fit`` (MB), and ratios to vanilla.

Usage::

    python benchmarks/bench_transfer.py [--n 1000] [--epochs 3] [--repeats 3]
        [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cgcnn_fit import load_jarvis, loadavg  # noqa: E402

MODES = {
    "vanilla": dict(embedding="cgcnn", atom_fea_len=64, n_conv=3),
    "distill": dict(embedding="cgcnn", atom_fea_len=64, n_conv=3, distill="crysatom"),
    "finetune": dict(finetune="crysatom"),
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _child(mode: str, graphs, y, n_val: int, epochs: int, queue) -> None:
    from crysatom_featurizers.estimators import CGCNNRegressor

    before = _peak_rss_mb()
    model = CGCNNRegressor(
        **MODES[mode],
        epochs=epochs,
        batch_size=32,
        validation_fraction=None,
        random_state=0,
        n_threads=1,
        device="cpu",
    )
    t0 = time.perf_counter()
    model.fit(graphs[n_val:], y[n_val:], X_val=graphs[:n_val], y_val=y[:n_val])
    total = time.perf_counter() - t0
    times = model.history_["time_s"].tolist()
    queue.put(
        {
            "mode": mode,
            "epoch_s": statistics.median(times[1:]) if len(times) > 1 else times[0],
            "setup_s": float(model.timings_["graphs_s"]),
            "fit_s": total,
            "peak_rss_increase_mb": _peak_rss_mb() - before,
            "parameters": int(sum(p.numel() for p in model.model_.parameters())),
        }
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)

    from crysatom_featurizers.graphs import CrystalGraphTransformer

    structures, y, _ = load_jarvis(args.n, 123)
    graphs = CrystalGraphTransformer().fit_transform(structures)
    n_val = max(1, args.n // 10)
    start_load = loadavg()
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    ctx = mp.get_context("fork")
    for _ in range(args.repeats):
        for mode in MODES:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(mode, graphs, y, n_val, args.epochs, queue))
            proc.start()
            result = queue.get()
            proc.join()
            runs[mode].append(result)
            print(json.dumps(result), flush=True)

    def med(mode: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[mode]))

    summary = {
        mode: {
            key: med(mode, key)
            for key in ("epoch_s", "setup_s", "fit_s", "peak_rss_increase_mb", "parameters")
        }
        for mode in MODES
    }
    for mode in MODES:
        summary[mode]["epoch_ratio_to_vanilla"] = (
            summary[mode]["epoch_s"] / summary["vanilla"]["epoch_s"]
        )
        summary[mode]["memory_ratio_to_vanilla"] = summary[mode]["peak_rss_increase_mb"] / max(
            summary["vanilla"]["peak_rss_increase_mb"], 1e-9
        )
    result = {
        "task": f"JARVIS formation energy, {args.n} crystals ({args.n - n_val} train, "
        f"{n_val} validation), seed-123 sample",
        "mean_sites": float(np.mean([len(s) for s in structures])),
        "epochs": args.epochs,
        "repeats": args.repeats,
        "batch_size": 32,
        "torch_threads": 1,
        "cpu": platform.processor() or platform.machine(),
        "os_cpu_count": os.cpu_count(),
        "loadavg": {"start": start_load, "end": loadavg()},
        "modes": {m: {k: v for k, v in MODES[m].items()} for m in MODES},
        "summary": summary,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transfer.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Transfer cost: fine-tuning and distillation against vanilla CGCNN",
        "",
        f"{result['task']}, {result['mean_sites']:.1f} sites on average; CPU, 1 torch thread, "
        f"batch 32; median of {args.repeats} alternating runs (s/epoch: median of epochs "
        f"2..{args.epochs}); load average at start {start_load}, at the end "
        f"{result['loadavg']['end']} on {os.cpu_count()} CPUs.",
        "",
        "| mode | model | parameters | s/epoch | vs vanilla | one-time setup, s | peak RSS "
        "increase, MB | vs vanilla |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    described = {
        "vanilla": "64 x 3, cgcnn features",
        "distill": "64 x 3 student + 200 x 5 teacher",
        "finetune": "200 x 5 encoder + new head",
    }
    for mode, s in summary.items():
        lines.append(
            f"| {mode} | {described[mode]} | {int(s['parameters']):,} | {s['epoch_s']:.2f} | "
            f"{s['epoch_ratio_to_vanilla']:.2f}x | {s['setup_s']:.1f} | "
            f"{s['peak_rss_increase_mb']:.0f} | {s['memory_ratio_to_vanilla']:.2f}x |"
        )
    (args.out / "transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
