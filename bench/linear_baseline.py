"""Reference for the default recipe: the best *linear* one-step predictor on the same inputs.

A least-squares autoregressive fit per vital, pooled over the default recipe's training
patients, on exactly the input the LSTM sees (each window minus its mean, the oldest samples
as block means), scored on the same unseen test patients. It tells how close the LSTM comes
to what a linear filter of the same history can do (prints figures; asserts nothing).

    python bench/linear_baseline.py                     # the recipe's 8 test patients
    python bench/linear_baseline.py --test-patients 32
"""

from __future__ import annotations

import argparse

import numpy as np

from monitor.model.features import pool_window, window_offset
from monitor.training.data import cut_windows
from monitor.training.recipes import DEFAULT
from monitor.training.simulated import simulated_patients


def _inputs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offset = window_offset(x, "window_mean")
    pooled = pool_window(x - offset[:, None, :], DEFAULT.pool_recent, DEFAULT.pool_block)
    return pooled, offset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-patients", type=int, default=DEFAULT.test_patients)
    args = parser.parse_args()
    r = DEFAULT
    data = simulated_patients(r.patients, r.val_patients, args.test_patients, r.seconds, r.seed)
    train = cut_windows(data.train, r.window, len(data.features), r.train_stride)
    test = cut_windows(data.test, r.window, len(data.features))
    assert test.clean_y is not None
    x_tr, off_tr = _inputs(train.x)
    x_te, off_te = _inputs(test.x)
    print(f"linear AR on the default recipe's input, {args.test_patients} test patients")
    print(f"{'feature':12s} {'/noise':>8s} {'/persist':>9s}")
    for j, name in enumerate(data.features):
        a = np.c_[x_tr[:, :, j], np.ones(len(x_tr))]
        coef = np.linalg.lstsq(a, train.y[:, j] - off_tr[:, j], rcond=None)[0]
        pred = np.c_[x_te[:, :, j], np.ones(len(x_te))] @ coef + off_te[:, j]
        rmse = np.sqrt(np.mean((pred - test.y[:, j]) ** 2))
        floor = np.sqrt(np.mean((test.clean_y[:, j] - test.y[:, j]) ** 2))
        persist = np.sqrt(np.mean((test.x[:, -1, j] - test.y[:, j]) ** 2))
        print(f"{name:12s} {rmse / floor:8.4f} {rmse / persist:9.3f}")


if __name__ == "__main__":
    main()
