"""CPU cost per window of the predictor's stages, torch beside ONNX Runtime, in one run.

For each batch size: preprocessing (the obvious numpy passes it replaced, and
`Preprocess.inputs`), the forward pass (torch's LSTM, ONNX Runtime's), and the whole
`Predictor.predict` with each backend. Everything runs in this one thread with one thread
for torch, ONNX Runtime and the BLAS, as in the daemon. The stages take turns, a short burst
each, so a busy machine slows them alike; the figure is the median burst's CPU time per
window. It asserts nothing:

    python bench/inference.py [--sizes 64 256 1024] [--seconds 4] [--model DIR]
"""

from __future__ import annotations

import os

# One thread, set before numpy and torch are imported (docs/architecture.md).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import onnxruntime
import torch

from monitor.model.architectures.medical_lstm import lstm_graph
from monitor.model.features import (
    Preprocess,
    normalise,
    pool_window,
    window_offset,
    with_flags,
)
from monitor.model.onnx_backend import OnnxForward
from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from simulators.signals import draw_patients, generate


def obvious_inputs(prep: Preprocess, windows: np.ndarray) -> np.ndarray:
    """The preprocessing before the single matrix product: offset, centre, pool, normalise
    (the value columns; `Preprocess.values_inputs` is its matrix form)."""
    offset = window_offset(windows, prep.centring)
    centred = windows - offset[:, None, :] if prep.centring != "none" else windows
    return normalise(pool_window(centred, prep.recent, prep.block), prep.mean, prep.std)


def simulated_windows(features: list[str], window: int, n: int) -> np.ndarray:
    """`n` float32 windows cut from 8 simulated patients, columns in `features` order."""
    per = -(-n // 8)
    out = []
    for profile in draw_patients(8, seed=11):
        _, noisy = generate(
            profile, np.arange(window + per, dtype=np.float64), np.random.default_rng(11)
        )
        series = noisy[:, [profile.names.index(f) for f in features]]
        out += [series[i : i + window] for i in range(per)]
    return np.asarray(out[:n], dtype=np.float32)


def interleaved(stages: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Median CPU seconds per call of each stage, the stages taking turns for `seconds`."""
    for run in stages.values():
        run()  # warm-up: allocations, ONNX Runtime's first-run set-up
    # Calls per burst: about 5 ms of the slowest stage.
    cost = {}
    for name, run in stages.items():
        t0 = time.process_time()
        run()
        cost[name] = max(time.process_time() - t0, 1e-5)
    calls = {name: max(1, round(0.005 / c)) for name, c in cost.items()}
    samples: dict[str, list[float]] = {name: [] for name in stages}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(samples[next(iter(stages))]) < 5:
        for name, run in stages.items():
            t0 = time.process_time()
            for _ in range(calls[name]):
                run()
            samples[name].append((time.process_time() - t0) / calls[name])
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    """Parse arguments and print one block per batch size."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--seconds", type=float, default=4.0, help="per batch size")
    ap.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = args.model or default_model_path()
    by_torch = Predictor(load_model(path), "cpu", "torch")
    by_ort = Predictor(load_model(path), "cpu", "onnxruntime")
    card, prep = by_torch.card, by_torch.preprocess
    onnx_forward = OnnxForward.from_graph(lstm_graph(by_torch.model))
    width = len(card.features) * (2 if card.observed_mask else 1)
    steps = prep.inputs(np.zeros((1, card.window, width), np.float32))[0].shape[1]
    print(
        f"model {card.model_version[:12]} (window {card.window} -> {steps} LSTM steps, hidden "
        f"{card.hyperparameters.hidden_size}, {card.hyperparameters.num_layers} layer(s)); "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}; one thread; "
        f"CPU microseconds per window (median of interleaved bursts, {args.seconds:g} s per size)"
    )
    for size in args.sizes:
        windows = simulated_windows(by_torch.features, card.window, size)
        if card.observed_mask:  # every vital observed: flags of 1 after the values
            windows = with_flags(windows)
        x, _ = prep.inputs(windows)
        tensor = torch.from_numpy(x)

        def torch_forward(t: torch.Tensor = tensor) -> object:
            with torch.inference_mode():
                return by_torch.model(t)

        values = windows[:, :, : len(card.features)]
        stages: dict[str, Callable[[], object]] = {
            "preprocess, obvious numpy": lambda v=values: obvious_inputs(prep, v),
            "preprocess, values_inputs": lambda v=values: prep.values_inputs(v),
            "preprocess, Preprocess.inputs": lambda w=windows: prep.inputs(w),
            "forward, torch": torch_forward,
            "forward, onnxruntime": lambda x=x: onnx_forward(x),
            "predict, torch": lambda w=windows: by_torch.predict(w),
            "predict, onnxruntime": lambda w=windows: by_ort.predict(w),
        }
        us = {k: v / size * 1e6 for k, v in interleaved(stages, args.seconds).items()}
        print(f"batch {size}:")
        for name, value in us.items():
            print(f"  {name:31s} {value:7.2f} us")
        print(
            f"  ratios: preprocess obvious/inputs "
            f"{us['preprocess, obvious numpy'] / us['preprocess, values_inputs']:.2f}x, "
            f"forward torch/onnxruntime "
            f"{us['forward, torch'] / us['forward, onnxruntime']:.2f}x, "
            f"predict torch/onnxruntime "
            f"{us['predict, torch'] / us['predict, onnxruntime']:.2f}x "
            f"({1e6 / us['predict, onnxruntime']:,.0f} vs {1e6 / us['predict, torch']:,.0f} windows/s)"
        )


if __name__ == "__main__":
    main()
