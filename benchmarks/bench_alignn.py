"""ALIGNN against CGCNN on CPU: graph preparation, seconds per epoch and peak memory.

Task: JARVIS-DFT formation energy (eV/atom) of 1,000 crystals drawn with seed 123 (elements
covered by CGCNN's features), 900 to train and 100 to validate, CGCNN's features as input
for every model. Each model is fitted for a few epochs in its own child process, one after
the other on the same crystals and the same number of torch threads, so that each peak
memory (the child's maximum resident set) belongs to one model:

* ``cgcnn``: :class:`CGCNNRegressor` with its defaults (64 wide, 3 convolutions);
* ``alignn-cpu``: :class:`ALIGNNRegressor` with ``preset="cpu"`` (64 wide, 1 + 1);
* ``alignn-cpu-2+2``: the same width with 2 + 2 layers (a candidate for the CPU preset);
* ``alignn-paper``: :class:`ALIGNNRegressor` with ``preset="paper"`` (256 wide, 4 + 4).

Measured per model: the graph preparation of ``fit`` (neighbour search, packing, and for ALIGNN
bond vectors and the line graph), the median time of epochs 2..E, the parameter count, the
size of the line graph, the child's resident memory before ``fit`` and at its peak. The load
average is recorded; a busy machine slows every model alike.

Usage::

    python benchmarks/bench_alignn.py [--threads 1] [--batch-size 64] [--epochs 4]
        [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jarvis_dft_3d_2021.json.gz"
TARGET = "formation_energy_peratom"  # eV/atom
SEED = 123
N_STRUCTURES, N_TRAIN = 1000, 900
MODELS = {
    "cgcnn": ("CGCNNRegressor", {}),
    "alignn-cpu": ("ALIGNNRegressor", {"preset": "cpu"}),
    "alignn-cpu-2+2": ("ALIGNNRegressor", {"preset": "cpu", "alignn_layers": 2, "gcn_layers": 2}),
    "alignn-paper": ("ALIGNNRegressor", {"preset": "paper"}),
}


def _status_mib(field: str) -> float:
    """A memory line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def reset_peak() -> bool:
    """Reset this process's peak resident set (Linux ``clear_refs``); False where it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """Peak resident set since :func:`reset_peak` (or since start), MiB."""
    try:
        return _status_mib("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def draw_crystals(path: Path, n: int, seed: int) -> list[dict]:
    """``n`` JARVIS rows (structure dict and target) with elements that CGCNN's features
    cover, drawn with ``seed``."""
    from pymatgen.core import Structure

    from crysatom_featurizers.embeddings import load

    covered = set(load("cgcnn").symbols)
    with gzip.open(DATA, "rt") as fh:
        table = json.load(fh)
    columns = table["columns"]
    col_s, col_y = columns.index("structure"), columns.index(TARGET)
    order = np.random.default_rng(seed).permutation(len(table["data"]))
    rows = []
    for i in order:
        record = table["data"][i]
        structure = Structure.from_dict(record[col_s])
        if {e.symbol for e in structure.composition} <= covered and record[col_y] is not None:
            rows.append({"structure": record[col_s], "y": float(record[col_y])})
        if len(rows) == n:
            break
    path.write_text(json.dumps(rows))
    return rows


def run_one(name: str, data: Path, threads: int, batch_size: int, epochs: int) -> dict:
    """Fit one model in this process and report its costs (the child's side)."""
    from pymatgen.core import Structure

    from crysatom_featurizers import estimators

    rows = json.loads(data.read_text())
    X = [Structure.from_dict(r["structure"]) for r in rows]
    y = np.array([r["y"] for r in rows])
    cls_name, params = MODELS[name]
    est = getattr(estimators, cls_name)(
        embedding="cgcnn",
        epochs=epochs,
        batch_size=batch_size,
        n_threads=threads,
        random_state=SEED,
        **params,
    )
    before = _status_mib("VmRSS")
    peak_reset = reset_peak()
    t0 = time.perf_counter()
    est.fit(X[:N_TRAIN], y[:N_TRAIN], X_val=X[N_TRAIN:], y_val=y[N_TRAIN:])
    total = time.perf_counter() - t0
    packed, _ = est._pack(X[:N_TRAIN], est.model_.embedding.covered.numpy(), "cgcnn", for_fit=False)
    times = est.history_["time_s"].to_numpy()
    return {
        "model": name,
        "estimator": cls_name,
        "params": params,
        "parameters": int(sum(p.numel() for p in est.model_.parameters())),
        "graphs_s": round(float(est.timings_["graphs_s"]), 3),
        "s_per_epoch": round(float(statistics.median(times[1:] if len(times) > 1 else times)), 3),
        "epoch_times_s": [round(float(t), 3) for t in times],
        "fit_s": round(total, 2),
        "val_mae_last": float(est.history_["val_mae"].iloc[-1]),
        "edges": int(packed.num_edges.sum()),
        "triplets": int(packed.tensors["num_triplets"].sum())
        if "num_triplets" in packed.tensors
        else None,
        "rss_before_fit_mib": round(before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_of_fit_only": peak_reset,
        "torch_threads": threads,
    }


def markdown(report: dict) -> str:
    base = next(r for r in report["models"] if r["model"] == "cgcnn")
    lines = [
        f"# ALIGNN and CGCNN on CPU: {report['n_train']} JARVIS crystals (formation energy)",
        "",
        f"{report['cpu']}, {report['threads']} torch thread(s), batch {report['batch_size']}, "
        f"{report['epochs']} epochs per model (median of epochs 2..{report['epochs']}); load "
        f"average {report['loadavg_before']} before, {report['loadavg_after']} after.",
        "",
        "| model | parameters | graphs + line graph (s) | s/epoch | × CGCNN | peak memory of the "
        "fit (MiB) | above the loaded crystals (MiB) | bonds | bond pairs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["models"]:
        ratio = r["s_per_epoch"] / base["s_per_epoch"]
        pairs = "" if r["triplets"] is None else f"{r['triplets']:,}"
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {r['graphs_s']:.1f} | {r['s_per_epoch']:.2f} "
            f"| {ratio:.1f} | {r['peak_rss_mib']:.0f} | "
            f"{r['peak_rss_mib'] - r['rss_before_fit_mib']:.0f} | {r['edges']:,} | {pairs} |"
        )
    lines += [
        "",
        "Bonds and bond pairs of the training crystals (CGCNN's directed 12-nearest graph; "
        "ALIGNN's undirected one with ties). Peak memory: the child process's maximum resident "
        "set during the fit (the interpreter, torch and the parsed crystals included, "
        f"{base['rss_before_fit_mib']:.0f} MiB before the CGCNN fit).",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child: one model
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        result = run_one(args.one, args.data, args.threads, args.batch_size, args.epochs)
        print(json.dumps(result))
        return result
    if not DATA.exists():
        raise SystemExit(f"shared data not found: {DATA}")
    load_before = [round(v, 2) for v in os.getloadavg()]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "crystals.json"
        draw_crystals(data, N_STRUCTURES, SEED)
        for name in args.models.split(","):
            cmd = [sys.executable, __file__, "--one", name, "--data", str(data)]
            cmd += ["--threads", str(args.threads), "--batch-size", str(args.batch_size)]
            cmd += ["--epochs", str(args.epochs)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from training.provenance import cpu_model

    report = {
        "benchmark": "alignn_cpu",
        "n_train": N_TRAIN,
        "n_val": N_STRUCTURES - N_TRAIN,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "cpu": cpu_model(),
        "platform": platform.platform(),
        "loadavg_before": load_before,
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "models": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "alignn.json").write_text(json.dumps(report, indent=1))
    (args.out / "alignn.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
