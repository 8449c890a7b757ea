"""ONNX Runtime backend: the same predictions as torch, chosen on the CPU, refused on CUDA.

Tolerance. Both backends run the same float32 weights in a different order of operations
(their own GEMM blocking and tanh/sigmoid kernels). Measured on the shipped model, their
normalised outputs differ by at most 7e-7 on simulated windows and 2.4e-6 on the random
walks below. The tests allow 1e-5 in the normalised output (4x the worst measured) and, in
raw units, that times the normalisation std plus 2 float32 spacings of the value (a raw
prediction near 100 is a float32 with spacing 7.6e-6; measured, the raw differences reach
40 % of this bound). What it means for alerts: 1e-5 std moves a z against the card's
residual sigma by at most 2.4e-5 for the shipped model (heart rate: std 4.32, residual
sigma 1.79), against a raise threshold of 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from monitor.model.architectures.medical_lstm import lstm_graph
from monitor.model.card import ModelCard, Normalisation, Pooling
from monitor.model.lstm import MedicalLSTM
from monitor.model.onnx_backend import MAX_BATCH, SCAN_INPUT, OnnxForward
from monitor.model.onnx_export import INPUT, OUTPUT
from monitor.model.predictor import Predictor, resolve_backend
from monitor.model.store import default_model_path, load_model, save_model
from simulators.signals import draw_patients, generate
from tests.model.factory import FEATURES, make_card, tiny_model

#: Allowed difference of the normalised outputs (see the module docstring).
NORMALISED_TOL = 1e-5
#: Float32 spacing relative to the value: 2 ** -23; two of them.
RAW_RTOL = 2 * 2.0**-23


def _assert_agree(torch_pred: Predictor, ort_pred: Predictor, windows: np.ndarray) -> None:
    """Normalised outputs within NORMALISED_TOL, raw predictions within its image."""
    x, _ = torch_pred.preprocess.inputs(windows)
    with torch.inference_mode():
        expected = torch_pred.model(torch.from_numpy(x)).numpy()
    got = OnnxForward.from_graph(lstm_graph(torch_pred.model))(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=NORMALISED_TOL)
    a, b = ort_pred.predict(windows), torch_pred.predict(windows)
    assert a.dtype == b.dtype == np.float32
    assert a.shape == b.shape == (len(windows), len(ort_pred.features))
    std = np.asarray(ort_pred.card.normalisation.std)
    bound = NORMALISED_TOL * std + RAW_RTOL * np.abs(b)
    excess = np.abs(a.astype(np.float64) - b) / bound
    assert excess.max() <= 1.0, f"worst difference {excess.max():.2f} x the bound"


def _pair(path: Path, card: ModelCard, model: MedicalLSTM) -> tuple[Predictor, Predictor]:
    save_model(path, model, card)
    return Predictor(load_model(path), "cpu", "torch"), Predictor(
        load_model(path), "cpu", "onnxruntime"
    )


def _simulated(features: list[str], window: int, n: int, seed: int = 3) -> np.ndarray:
    """`n` float32 windows cut from simulated patients, columns in `features` order."""
    out = []
    for profile in draw_patients(4, seed):
        t = np.arange(window + n // 4, dtype=np.float64)
        _, noisy = generate(profile, t, np.random.default_rng(seed))
        cols = [profile.names.index(f) for f in features]
        series = noisy[:, cols]
        out += [series[i : i + window] for i in range(n // 4)]
    return np.asarray(out, dtype=np.float32)


def _random(card: ModelCard, n: int, levels: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Random walks around random levels: out of the training distribution on purpose."""
    rng = np.random.default_rng(1)
    base = levels + rng.uniform(-1, 1, (n, 1, len(levels))) * 3 * spread
    steps = rng.standard_normal((n, card.window, len(levels))) * spread
    return (base + np.cumsum(steps, axis=1) / 4).astype(np.float32)


@pytest.fixture(scope="module")
def shipped() -> tuple[Predictor, Predictor]:
    """The shipped model on both backends."""
    path = default_model_path()
    return Predictor(load_model(path), "cpu", "torch"), Predictor(
        load_model(path), "cpu", "onnxruntime"
    )


def _flagged(windows: np.ndarray, seen: float, seed: int = 5) -> np.ndarray:
    """The shipped model's input (it takes observed flags): each vital observed at a step
    with probability `seen`, a missing one carried forward as the window store does."""
    rng = np.random.default_rng(seed)
    flags = rng.random(windows.shape) < seen
    flags[:, 0] = True  # a carried value needs a first one
    index = np.where(flags, np.arange(windows.shape[1])[None, :, None], 0)
    carried = np.take_along_axis(windows, np.maximum.accumulate(index, axis=1), axis=1)
    return np.concatenate([carried, flags.astype(np.float32)], axis=2)


def test_shipped_model_agrees_on_simulated_windows(shipped: tuple[Predictor, Predictor]) -> None:
    """1,024 windows of 4 simulated patients, every vital observed and about half of them:
    ONNX Runtime predicts what torch predicts."""
    torch_pred, ort_pred = shipped
    assert torch_pred.card.observed_mask
    windows = _simulated(torch_pred.features, torch_pred.window, 1024)
    for seen in (1.0, 0.5):
        _assert_agree(torch_pred, ort_pred, _flagged(windows, seen))


def test_shipped_model_agrees_on_random_windows(shipped: tuple[Predictor, Predictor]) -> None:
    """Random walks around random levels, batch sizes 1, 64 and 700."""
    torch_pred, ort_pred = shipped
    levels = np.array([80.0, 96.0, 16.0, 120.0, 75.0, 37.0])
    spread = np.array([6.0, 1.5, 2.5, 8.0, 6.0, 0.3])
    for n in (1, 64, 700):
        windows = _random(torch_pred.card, n, levels, spread)
        _assert_agree(torch_pred, ort_pred, _flagged(windows, 0.7, seed=n))


@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize(
    ("centring", "pooling"),
    [
        ("none", None),
        ("none", Pooling(recent=4, block=4)),
        ("window_mean", None),
        ("window_mean", Pooling(recent=4, block=4)),
    ],
)
def test_small_models_agree(
    tmp_path: Path, layers: int, centring: str, pooling: Pooling | None
) -> None:
    """Factory models of 1 to 3 layers, centred or not, pooled or not: same predictions."""
    centred = centring == "window_mean"
    norm = Normalisation(
        mean=[0.0, 0.0] if centred else [80.0, 97.0],
        std=[3.0, 0.8] if centred else [10.0, 1.5],
        centring="window_mean" if centred else "none",
    )
    card = make_card(hidden=8, layers=layers, window=12).model_copy(
        update={"normalisation": norm, "pooling": pooling}
    )
    torch_pred, ort_pred = _pair(tmp_path, card, tiny_model(seed=layers, hidden=8, layers=layers))
    _assert_agree(torch_pred, ort_pred, _simulated(FEATURES, 12, 256))
    levels, spread = np.array([80.0, 97.0]), np.array([5.0, 1.0])
    _assert_agree(torch_pred, ort_pred, _random(card, 300, levels, spread))


def test_auto_on_cpu_is_onnxruntime(shipped: tuple[Predictor, Predictor]) -> None:
    """backend="auto" on the CPU picks ONNX Runtime; "torch" forces torch."""
    loaded = load_model(default_model_path())
    assert Predictor(loaded, "cpu").backend == "onnxruntime"
    assert Predictor(loaded, "cpu", "auto").backend == "onnxruntime"
    assert Predictor(loaded, "cpu", "torch").backend == "torch"
    assert shipped[1].backend == "onnxruntime"


def test_auto_without_onnxruntime_is_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where onnxruntime is not installed, "auto" falls back to torch; forcing it fails."""
    monkeypatch.setattr("monitor.model.predictor._onnxruntime_installed", lambda: False)
    assert resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="onnxruntime is not installed"):
        resolve_backend("onnxruntime", "cpu")


def test_backend_on_cuda() -> None:
    """On CUDA, "auto" is torch and "onnxruntime" is refused, naming the device."""
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("auto", "cuda:1") == "torch"
    assert resolve_backend("torch", "cuda") == "torch"
    with pytest.raises(ValueError, match=r"CPU only, not on device 'cuda:0'"):
        resolve_backend("onnxruntime", "cuda:0")


def test_predictor_refuses_onnxruntime_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """Predictor(device="cuda", backend="onnxruntime") raises before touching the GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ValueError, match="use backend 'torch'"):
        Predictor(load_model(default_model_path()), "cuda", "onnxruntime")


def test_unknown_backend_is_refused() -> None:
    """A misspelt backend is a ValueError listing the choices."""
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        resolve_backend("onnx", "cpu")


def test_empty_batch_and_wrong_shape(shipped: tuple[Predictor, Predictor]) -> None:
    """ONNX Runtime: no windows give (0, F); a wrong window is the same ValueError as torch's."""
    _, ort_pred = shipped
    # The shipped model takes 12 columns: 6 vitals, then their observed flags.
    assert ort_pred.predict(np.zeros((0, 120, 12), dtype=np.float32)).shape == (0, 6)
    with pytest.raises(ValueError, match=r"\(B, 120, 12\)"):
        ort_pred.predict(np.zeros((2, 119, 12), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(B, 120, 12\)"):
        ort_pred.predict(np.zeros((2, 120, 6), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(B, 120, 12\)"):
        ort_pred.predict(np.zeros((120, 12), dtype=np.float32))


def test_graph_is_built_in_memory(tmp_path: Path) -> None:
    """The model directory is unchanged: no ONNX file, the same version."""
    card = save_model(tmp_path, tiny_model(), make_card())
    before = sorted(p.name for p in tmp_path.iterdir())
    predictor = Predictor(load_model(tmp_path), "cpu", "onnxruntime")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert predictor.card.model_version == card.model_version


def test_graph_stacks_one_lstm_per_layer() -> None:
    """Three torch layers become three ONNX LSTM nodes, then one Gemm."""
    ops = [n.op_type for n in lstm_graph(tiny_model(layers=3)).graph.node]
    assert ops.count("LSTM") == 3
    assert ops[-1] == "Gemm"


def test_unsupported_lstm_is_refused() -> None:
    """A bidirectional LSTM (not what MedicalLSTM builds) is refused, not mistranslated."""
    model = tiny_model()
    model.lstm = torch.nn.LSTM(2, 8, 1, batch_first=True, bidirectional=True)
    with pytest.raises(ValueError, match="unidirectional"):
        lstm_graph(model)


@pytest.mark.parametrize("layers", [1, 3])
def test_a_large_batch_runs_as_pieces_in_one_run_bit_for_bit(layers: int) -> None:
    """Past `MAX_BATCH` windows, the pieces run in one session run (`pieces_graph`, plus one
    run for the rest): the outputs are exactly those of one run per piece."""
    lstm = OnnxForward.from_graph(lstm_graph(tiny_model(layers=layers)))
    runs: list[int] = []
    scan = lstm._pieces

    class Counted:
        def run(self, *args: Any, **kwargs: Any) -> Any:
            runs.append(args[1][SCAN_INPUT].shape[0])
            return scan.run(*args, **kwargs)

    lstm._pieces = Counted()  # type: ignore[assignment]
    rng = np.random.default_rng(layers)
    x = rng.normal(size=(3 * MAX_BATCH + 37, 11, len(FEATURES))).astype(np.float32)
    for n in (1, MAX_BATCH - 1, MAX_BATCH, MAX_BATCH + 1, 2 * MAX_BATCH, 3 * MAX_BATCH + 37):
        expected = np.concatenate(
            [lstm._session.run([OUTPUT], {INPUT: x[i : min(n, i + MAX_BATCH)]})[0]
             for i in range(0, n, MAX_BATCH)]
        )  # fmt: skip
        got = lstm(x[:n])
        assert got.shape == (n, len(FEATURES))
        assert np.array_equal(got, expected)
    assert runs == [2, 3]  # only the batches of two pieces or more
