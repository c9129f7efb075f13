"""Short learning-rate check on the cached corpus: the paper's Adam lr 0.03 against 0.001.

``python -m training.lr_check --config cpu --dim 50 --steps 12`` trains the same initial model
for a few steps with each learning rate on the first batches of the config's graph cache and
writes the per-step losses to ``training/results/lr_check.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from training.augment import augment_salt
from training.config import PretrainConfig
from training.model import CrysAtomPretrainer
from training.pretrain import REPO_ROOT, epoch_batches, prepare_cache, resolve_corpus


def run(cfg: PretrainConfig, lrs: list[float], steps: int) -> dict:
    frame, info, checksum = resolve_corpus(cfg)
    cache = prepare_cache(cfg, frame, info, checksum)
    plan = epoch_batches(cache.shard_sizes, cfg.batch_size, cfg.seed, 0, cfg.min_batch)[:steps]
    shards = {s: cache.load_shard(s) for s in {s for s, _ in plan}}
    out = {"config": cfg.to_dict(), "steps": steps, "runs": {}}
    for lr in lrs:
        torch.manual_seed(cfg.seed)
        model = CrysAtomPretrainer(cfg)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        t0 = time.time()
        for step, (s, idx) in enumerate(plan):
            res = model(shards[s].batch(idx), augment_salt(cfg.seed, 0))
            fr = res["fr_sum"] / res["fr_count"]
            cr = res["cr_sum"] / res["cr_weight"]
            ssl = model.ssl_loss(res["z1"], res["z2"])
            loss = cfg.alpha * fr + cfg.beta * cr + cfg.gamma * ssl
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(
                {
                    "step": step,
                    "loss": float(loss.detach()),
                    "fr": float(fr.detach()),
                    "cr": float(cr.detach()),
                    "ssl": float(ssl.detach()),
                }
            )
            print(lr, losses[-1], flush=True)
        out["runs"][str(lr)] = {
            "losses": losses,
            "wall_s": round(time.time() - t0, 1),
            "finite": bool(np.isfinite([x["loss"] for x in losses]).all()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="cpu")
    p.add_argument("--dim", type=int, default=50)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--lrs", type=float, nargs="+", default=[0.03, 0.001])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--output", default=str(REPO_ROOT / "training/results/lr_check.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = PretrainConfig.from_yaml(args.config, dim=args.dim, progress=False)
    result = run(cfg, args.lrs, args.steps)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
