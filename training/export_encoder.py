"""Export the trained encoder of a pretraining run as a weights-only encoder file.

The encoder is the input map (92 CGCNN features -> hidden size) and the convolutions of the
run's :class:`~training.model.CrysAtomPretrainer`; the reconstruction and projection heads are
left out. The file (:func:`crysatom_featurizers.nn.save_encoder`) records the run's config,
corpus, epochs, losses, hardware, wall time and training commit, taken from the checkpoint and
the run's ``summary.json``.

Usage::

    python -m training.export_encoder --run training/runs/cpu_d200 \\
        --out crysatom_featurizers/nn/data/crysatom_encoder_200.pt
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from crysatom_featurizers.nn import save_encoder
from crysatom_featurizers.nn.pretrained import file_sha256
from training.config import PretrainConfig
from training.model import CrysAtomPretrainer
from training.provenance import cpu_model, git_commit, package_version

#: Keys of ``summary.json`` copied into the encoder's metadata.
SUMMARY_KEYS = (
    "corpus",
    "corpus_names",
    "corpus_size",
    "corpus_checksum",
    "seed",
    "epochs_run",
    "stopped_by_time_budget",
    "final_losses",
    "hardware",
    "train_wall_time_s",
    "training_git_commit",
    "created",
    "vectors_path",
)


def export_encoder(run_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """Write the encoder of ``run_dir/checkpoint.pt`` to ``out``; returns its metadata.

    Raises
    ------
    FileNotFoundError
        If the run has no checkpoint.
    """
    run_dir = Path(run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if not ckpt_path.exists():
        raise FileNotFoundError(f"no checkpoint at {ckpt_path}; train the run first")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    cfg = PretrainConfig.from_dict(ckpt["config"])
    model = CrysAtomPretrainer(cfg)
    model.load_state_dict(ckpt["model"])
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if "corpus" not in summary:  # a run stopped before its summary: describe the corpus here
        from training.pretrain import resolve_corpus

        frame, info, checksum = resolve_corpus(cfg)
        size = len(frame) if frame is not None else info.get("size")
        summary.update(corpus=info, corpus_checksum=checksum, corpus_size=size)
    metadata: dict[str, Any] = {
        "source": "CrysAtom pretraining (training/pretrain.py), encoder exported by "
        "training/export_encoder.py",
        "description": f"CrysAtom CGCNN encoder, {cfg.dim}-dim, {cfg.num_layers} convolutions, "
        f"config {cfg.name!r}, SSL {cfg.ssl}",
        "input_embedding": cfg.input_embedding,
        "graph": {
            "radius": cfg.radius,
            "max_neighbors": cfg.max_neighbors,
            "gaussian_step": cfg.gaussian_step,
            "gaussian_width": cfg.gaussian_width,
        },
        "config": cfg.to_dict(),
        "epochs_in_checkpoint": int(ckpt["epoch"]),
        "checkpoint_git_commit": ckpt.get("git_commit"),
        "train_wall_time_s": round(float(ckpt.get("train_wall_s", 0.0)), 1),
        "loss_history": [
            {k: h.get(k) for k in ("epoch", "loss", "fr", "cr", "ssl")} for h in ckpt["history"]
        ],
        # the run's own record when it has one; else the machine that exports it
        "hardware": {"cpu": cpu_model(), "torch_threads": cfg.threads, "recorded_at": "export"},
        **{k: summary[k] for k in SUMMARY_KEYS if k in summary},
        "export_git_commit": git_commit(),
        "package_version": package_version(),
        "exported": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "license": "MIT (trained on JARVIS-DFT (NIST) and Materials Project (CC-BY 4.0) "
        "structures)",
    }
    save_encoder(model.encoder, out, metadata)
    print(f"{out}: SHA-256 {file_sha256(out)}; pin it in SHIPPED_ENCODER_SHA256 when it ships")
    return metadata


def record_selection(path: str | Path, selection: dict[str, Any]) -> dict[str, Any]:
    """Store how the encoder in ``path`` was chosen (candidates, scores, choice) in its
    metadata as ``selection``; the weights and their checksum stay as they are."""
    from crysatom_featurizers.nn import load_encoder

    encoder, metadata = load_encoder(path)
    metadata = {k: v for k, v in metadata.items() if k != "checksum"}
    metadata["selection"] = selection
    save_encoder(encoder, path, metadata)
    print(f"{path}: SHA-256 {file_sha256(path)}; pin it in SHIPPED_ENCODER_SHA256 when it ships")
    return metadata


def upgrade_format(path: str | Path) -> dict[str, Any]:
    """Write the encoder file ``path`` again in the current format (its weights, architecture
    and metadata unchanged), recording the format and SHA-256 it had; a format-1 file gains
    the content checksum that covers its architecture and metadata."""
    import torch

    from crysatom_featurizers.nn import load_encoder

    before = int(torch.load(path, map_location="cpu", weights_only=True)["format_version"])
    digest = file_sha256(path)
    encoder, metadata = load_encoder(path)
    metadata = {k: v for k, v in metadata.items() if k not in ("checksum", "content_checksum")}
    metadata.setdefault("upgraded_from", []).append({"format_version": before, "sha256": digest})
    save_encoder(encoder, path, metadata)
    print(f"{path}: SHA-256 {file_sha256(path)}; pin it in SHIPPED_ENCODER_SHA256 when it ships")
    return metadata


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.export_encoder", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--run", help="pretraining run folder (checkpoint.pt)")
    parser.add_argument("--out", required=True, help="encoder file to write (.pt)")
    parser.add_argument(
        "--selection",
        default=None,
        help="JSON file: how the encoder was chosen; stored in the metadata of --out (without "
        "--run, the existing file is annotated and its weights kept)",
    )
    parser.add_argument(
        "--upgrade",
        action="store_true",
        help="write the existing --out again in the current format (weights and metadata kept)",
    )
    args = parser.parse_args(argv)
    if args.upgrade:
        upgrade_format(args.out)
        return 0
    if args.run is None and args.selection is None:
        parser.error("give --run (export) or --selection (annotate), or both")
    if args.run is not None:
        metadata = export_encoder(args.run, args.out)
        print(
            f"wrote {args.out}: {metadata['description']}, epochs "
            f"{metadata['epochs_in_checkpoint']}"
        )
    if args.selection is not None:
        record_selection(args.out, json.loads(Path(args.selection).read_text()))
        print(f"recorded the selection of {args.selection} in {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
