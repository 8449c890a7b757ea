"""MedicalLSTM: shapes and the seed's forward semantics."""

from __future__ import annotations

import torch

from monitor.model.lstm import MedicalLSTM


def test_output_shape_is_batch_by_output_size() -> None:
    """A (B, window, input) batch gives (B, output) predictions."""
    model = MedicalLSTM(input_size=3, hidden_size=7, num_layers=2, output_size=4)
    out = model(torch.randn(5, 11, 3))
    assert out.shape == (5, 4)


def test_forward_is_linear_on_last_step_of_zero_state_lstm() -> None:
    """forward == fc(lstm(x, zero h0/c0)[:, -1]), as the seed defines it."""
    torch.manual_seed(1)
    model = MedicalLSTM(input_size=2, hidden_size=6, num_layers=2, output_size=2).eval()
    x = torch.randn(4, 9, 2)
    zeros = torch.zeros(2, 4, 6)
    with torch.no_grad():
        seq, _ = model.lstm(x, (zeros, zeros))
        manual = model.fc(seq[:, -1, :])
        # nn.LSTM's own default initial state is zero too: the same numbers again.
        default_state, _ = model.lstm(x)
        assert torch.equal(model(x), manual)
        assert torch.allclose(manual, model.fc(default_state[:, -1, :]))


def test_windows_are_scored_independently() -> None:
    """A window's prediction does not depend on the other windows in the batch."""
    torch.manual_seed(2)
    model = MedicalLSTM(1, 5, 1, 1).eval()
    x = torch.randn(6, 10, 1)
    with torch.no_grad():
        batched = model(x)
        single = torch.cat([model(x[i : i + 1]) for i in range(6)])
    assert torch.allclose(batched, single, atol=1e-6)


def test_state_dict_keys_are_the_seed_layout() -> None:
    """Parameters are lstm.* per layer and fc.weight / fc.bias, nothing else."""
    keys = set(MedicalLSTM(1, 4, 2, 1).state_dict())
    expected = {
        f"lstm.{k}_l{i}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") for i in (0, 1)
    } | {"fc.weight", "fc.bias"}
    assert keys == expected
