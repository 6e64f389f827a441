"""Training throughput: Lightning against a plain PyTorch loop of the same model, and inference.

Both loops train the same :class:`training.network.PriceNetwork` (through the same
:class:`training.lightning_module.PriceModule` losses) on the same seeded windows with the same
optimiser, batch size and epochs, in the same process, after one warm-up epoch each; the order
alternates over ``--repeats`` and the best time of each counts. The Lightning trainer is set up
as ``marketlake train`` sets it up (CPU, no logger, no checkpointing; the progress bar off so the
terminal does not count). Inference is :meth:`PricePredictor.predict_windows` in eval mode.

    python benchmarks/training.py                    # table
    python benchmarks/training.py --json             # JSON on stdout
    python benchmarks/training.py --samples 4096 --epochs 1   # quick

Target: ``ratio`` = lightning / plain samples per second >= 0.85.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import warnings

import bench_env  # noqa: F401  (first: import path and tool homes)
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

TARGET_RATIO = 0.85


def make_data(samples: int, length: int, features: int, horizons: int, seed: int) -> TensorDataset:
    """Seeded standard-normal windows with returns and directions that depend on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, length, features)).astype(np.float32)
    signal = x[:, -3:, :4].mean(axis=(1, 2))
    returns = (signal[:, None] + 0.5 * rng.normal(size=(samples, horizons))).astype(np.float32)
    return TensorDataset(
        torch.from_numpy(x), torch.from_numpy(returns), torch.from_numpy((returns > 0) * 1.0)
    )


def plain_epochs(module: torch.nn.Module, loader: DataLoader, epochs: int) -> float:
    """Train with a hand-written loop; returns the seconds taken."""
    optimiser = module.configure_optimizers()
    module.train()
    start = time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            optimiser.zero_grad(set_to_none=True)
            loss, _ = module._losses(batch)
            loss.backward()
            optimiser.step()
    return time.perf_counter() - start


def lightning_epochs(module: torch.nn.Module, loader: DataLoader, epochs: int) -> float:
    """Train with ``lightning.Trainer.fit``; returns the seconds taken by ``fit``."""
    import lightning as L

    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=tempfile.mkdtemp(prefix="marketlake-bench-"),
    )
    start = time.perf_counter()
    trainer.fit(module, loader)
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> dict[str, float]:
    from training.config import TrainConfig
    from training.lightning_module import PriceModule
    from training.predictor import PriceModelBundle, PricePredictor

    torch.set_num_threads(args.threads)
    config = TrainConfig(
        sequence_length=args.length, hidden_size=args.hidden, batch_size=args.batch_size
    )
    data = make_data(args.samples, args.length, args.features, len(config.horizons), args.seed)

    def loader() -> DataLoader:
        generator = torch.Generator().manual_seed(args.seed)
        return DataLoader(data, batch_size=args.batch_size, shuffle=True, generator=generator)

    def fresh() -> PriceModule:
        torch.manual_seed(args.seed)
        return PriceModule(args.features, config)

    plain_epochs(fresh(), loader(), 1)  # warm-up
    lightning_epochs(fresh(), loader(), 1)
    plain_times, lightning_times = [], []
    for repeat in range(args.repeats):
        order = ("plain", "lightning") if repeat % 2 == 0 else ("lightning", "plain")
        for which in order:
            if which == "plain":
                plain_times.append(plain_epochs(fresh(), loader(), args.epochs))
            else:
                lightning_times.append(lightning_epochs(fresh(), loader(), args.epochs))
    trained = args.samples * args.epochs
    plain = trained / min(plain_times)
    lightning = trained / min(lightning_times)

    module = fresh()
    state = {k: v.detach().numpy().copy() for k, v in module.network.state_dict().items()}
    predictor = PricePredictor(
        PriceModelBundle(
            features=[f"f{i}" for i in range(args.features)],
            horizons=list(config.horizons),
            sequence_length=args.length,
            hidden_size=args.hidden,
            num_layers=1,
            dropout=config.dropout,
            feature_mean=np.zeros(args.features),
            feature_std=np.ones(args.features),
            target_std=np.ones(len(config.horizons)),
            state=state,
        )
    )
    windows = data.tensors[0].numpy()
    predictor.predict_windows(windows[:1024])  # warm-up
    start = time.perf_counter()
    predictor.predict_windows(windows, batch_size=args.inference_batch)
    inference = len(windows) / (time.perf_counter() - start)
    return {
        "lightning_samples_per_s": lightning,
        "plain_samples_per_s": plain,
        "ratio": lightning / plain,
        "target_ratio": TARGET_RATIO,
        "inference_samples_per_s": inference,
        "samples": args.samples,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "sequence_length": args.length,
        "features": args.features,
        "hidden_size": args.hidden,
        "threads": args.threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--length", type=int, default=48, help="window length (hours)")
    parser.add_argument("--features", type=int, default=48)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--inference-batch", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{'lightning samples/s':<24}{result['lightning_samples_per_s']:>12,.0f}")
    print(f"{'plain samples/s':<24}{result['plain_samples_per_s']:>12,.0f}")
    status = "ok" if result["ratio"] >= TARGET_RATIO else "below target"
    print(f"{'ratio':<24}{result['ratio']:>12.3f}  (target >= {TARGET_RATIO}: {status})")
    print(f"{'inference samples/s':<24}{result['inference_samples_per_s']:>12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
