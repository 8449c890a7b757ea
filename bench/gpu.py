"""Batched inference by batch size on CUDA (and the CPU beside it), for a lent GPU machine.

Prints one line per batch size: windows/s and milliseconds per forward on each device (the
CPU with both backends, ONNX Runtime being the CPU default; CUDA with torch), with the GPU's
name. It asserts nothing. Run it as one prepared step:

    python bench/gpu.py --sizes 1 8 64 256 1024 4096 --repeat 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from monitor.model.features import with_flags
from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model


def measure(predictor: Predictor, windows: np.ndarray, repeat: int) -> float:
    """Seconds per forward (median of `repeat`), synchronising CUDA around each call."""
    predictor.predict(windows)  # warm-up: kernels, allocator
    times = []
    for _ in range(repeat):
        if predictor.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        predictor.predict(windows)
        if predictor.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    """Parse arguments and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 64, 256, 1024, 4096])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    path = args.model or default_model_path()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"torch {torch.__version__}; GPU: {name}; model {path}")
    predictors = {
        f"{d}/{backend}": Predictor(load_model(path), d, backend)
        for d in devices
        for backend in (["onnxruntime", "torch"] if d == "cpu" else ["torch"])
    }
    card = predictors["cpu/torch"].card
    mean = np.asarray(card.normalisation.mean, dtype=np.float32)
    rng = np.random.default_rng(0)
    for size in args.sizes:
        windows = (mean + rng.standard_normal((size, card.window, len(mean)))).astype(np.float32)
        if card.observed_mask:  # every vital observed: flags of 1 after the values
            windows = with_flags(windows)
        cells = []
        for device, predictor in predictors.items():
            seconds = measure(predictor, windows, args.repeat)
            cells.append(f"{device}: {size / seconds:12,.0f} windows/s {seconds * 1e3:8.3f} ms")
        print(f"batch {size:5d}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
