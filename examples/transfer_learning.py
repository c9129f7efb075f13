"""
Three ways to use CrysAtom pretraining in a CGCNN
=================================================

Run from the repository root (offline, under a minute)::

    python examples/transfer_learning.py                       # built-in toy task
    python examples/transfer_learning.py --plot parity.png
    python examples/transfer_learning.py --data ../shared/data/jarvis_dft_3d_2021.json.gz \\
        --target formation_energy_peratom --units eV/atom --transfer distill

The three models, trained on the same 300 crystals with early stopping on the same
validation crystals and scored on the same test crystals:

1. ``vanilla``: CGCNN on CGCNN's own element features (``embedding="cgcnn"``);
2. ``vectors``: CGCNN on the CrysAtom element vectors (``embedding="crysatom"``);
3. ``transfer``: the pretrained CrysAtom encoder itself, fine-tuned with a new head
   (``finetune="crysatom"``, CrysXPP-style), or with ``--transfer distill`` a CGCNN trained
   with CrysGNN's distillation loss against the frozen encoder (``distill="crysatom"``).

Without ``--data`` the task is the volume per atom (Å³/atom) of 420 strained copies of the 14
example crystals that ship with the package: it needs no download and shows the API, but is
far too easy to say anything about pretraining. The learning curves of the documentation's results answer that
on JARVIS and Materials Project data. ``CRYSATOM_EXAMPLE_EPOCHS`` overrides the maximum number
of epochs (the smoke tests use 2).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from crysatom_featurizers.datasets import load_example_structures
from crysatom_featurizers.estimators import CGCNNRegressor
from crysatom_featurizers.graphs import CrystalGraphTransformer

N_TRAIN, N_VAL, N_TEST = 300, 60, 60


def strained_examples(n: int, seed: int = 0):
    """``n`` copies of the example crystals, each with a random strain of up to ±6 %."""
    rng = np.random.default_rng(seed)
    base = list(load_example_structures()["structure"])
    structures = []
    for i in range(n):
        s = base[i % len(base)].copy()
        strain = rng.uniform(-0.06, 0.06, size=3)
        s.apply_strain(strain)
        structures.append(s)
    return structures, np.array([s.volume / len(s) for s in structures])


def load_task(args: argparse.Namespace):
    """Structures, targets, and a name with units."""
    n = N_TRAIN + N_VAL + N_TEST
    if args.data is None:
        structures, y = strained_examples(n)
        return structures, y, "volume per atom", "Å³/atom"
    from matminer.utils.io import load_dataframe_from_json

    frame = load_dataframe_from_json(args.data, pbar=False).dropna(subset=[args.target])
    frame = frame.sample(n=min(n, len(frame)), random_state=0)
    return list(frame["structure"]), frame[args.target].to_numpy(float), args.target, args.units


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="matminer .json(.gz) with structures")
    parser.add_argument("--target", default="formation_energy_peratom", help="target column")
    parser.add_argument("--units", default=None, help="units of the target, for the plots")
    parser.add_argument("--transfer", choices=["finetune", "distill"], default="finetune")
    parser.add_argument("--plot", default=None, help="write the three parity plots here (.png)")
    args = parser.parse_args(argv)
    epochs = int(os.environ.get("CRYSATOM_EXAMPLE_EPOCHS", "40"))

    structures, y, name, units = load_task(args)
    # Graphs once, shared by the three models (the estimators also take Structures directly).
    graphs = CrystalGraphTransformer().fit_transform(structures)
    n_val = min(N_VAL, len(y) // 5)
    n_train = min(N_TRAIN, len(y) - 2 * n_val)
    train, val, test = (
        slice(0, n_train),
        slice(n_train, n_train + n_val),
        slice(n_train + n_val, len(y)),
    )
    common = dict(epochs=epochs, patience=10, batch_size=32, random_state=0, n_threads=1)
    transfer = {"finetune": dict(finetune="crysatom"), "distill": dict(distill="crysatom")}
    models = {
        "vanilla": CGCNNRegressor("cgcnn", **common),
        "vectors": CGCNNRegressor("crysatom", **common),
        f"transfer ({args.transfer})": CGCNNRegressor(**transfer[args.transfer], **common),
    }
    scores, predictions = {}, {}
    print(
        f"{name}: {n_train} training, {n_val} validation, {len(y) - n_train - n_val} test crystals"
    )
    for label, model in models.items():
        t0 = time.perf_counter()
        model.fit(graphs[train], y[train], X_val=graphs[val], y_val=y[val])
        predictions[label] = model.predict(graphs[test])
        scores[label] = float(np.mean(np.abs(predictions[label] - y[test])))
        print(
            f"  {label:<22} test MAE {scores[label]:.4g} {units or ''}  "
            f"(best epoch {model.best_epoch_} of {model.n_iter_}, {time.perf_counter() - t0:.1f} s)"
        )
    import matplotlib.pyplot as plt

    from crysatom_featurizers.plotting import plot_parity

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), layout="constrained")
    for ax, (label, pred) in zip(axes, predictions.items()):
        plot_parity(y[test], pred, ax=ax, units=units, label=name, title=label)
    if args.plot:
        from crysatom_featurizers.io import save_figure

        save_figure(fig, args.plot)
        print(f"parity plots: {args.plot}")
    return scores


if __name__ == "__main__":
    main()
