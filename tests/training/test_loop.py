"""The seeded training loop: it learns, it is reproducible, it shuffles like the seed."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from monitor.model.features import make_windows
from monitor.model.lstm import MedicalLSTM
from monitor.training.loop import epoch_batches, fit


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    t = np.arange(0, 30, 0.1)
    rng = np.random.default_rng(0)
    series = (np.sin(t) + 0.1 * rng.standard_normal(t.shape)).reshape(-1, 1)
    x, y = make_windows(series.astype(np.float32), 8)
    return torch.from_numpy(x), torch.from_numpy(y)


def _train(seed: int) -> tuple[MedicalLSTM, list[float]]:
    x, y = _data()
    torch.manual_seed(seed)
    model = MedicalLSTM(1, 8, 1, 1)
    losses = fit(model, x, y, epochs=6, batch_size=16, lr=1e-2, schedule="constant", seed=seed)
    return model, losses


def test_training_lowers_the_loss() -> None:
    """Six epochs on a noisy sine cut the mean loss to under a third of the first epoch's."""
    _, losses = _train(0)
    assert len(losses) == 6
    assert losses[-1] < losses[0] / 3


def test_same_seed_gives_identical_weights() -> None:
    """Two runs with the same seed and data give bit-identical weights and losses."""
    a, loss_a = _train(5)
    b, loss_b = _train(5)
    assert loss_a == loss_b
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb
        assert torch.equal(va, vb)


def test_other_seed_gives_other_weights() -> None:
    """A different seed changes the weights (the seed is really used)."""
    a, _ = _train(1)
    b, _ = _train(2)
    assert not torch.equal(a.fc.weight, b.fc.weight)


def test_batches_match_the_seed_dataloader() -> None:
    """epoch_batches yields DataLoader(shuffle=True, drop_last=True, generator)'s batches."""
    n, size = 70, 32
    ours = epoch_batches(n, size, torch.Generator().manual_seed(9))
    loader = DataLoader(
        TensorDataset(torch.arange(n)),
        batch_size=size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(9),
    )
    theirs = [batch[0] for batch in loader]
    assert len(ours) == 2
    assert [b.tolist() for b in ours] == [b.tolist() for b in theirs]


def test_batches_match_the_seed_dataloader_over_epochs() -> None:
    """Three epochs in a row stay in step with the DataLoader sharing one generator."""
    n, size = 50, 16
    ours_gen = torch.Generator().manual_seed(3)
    ours = [b.tolist() for _ in range(3) for b in epoch_batches(n, size, ours_gen)]
    loader = DataLoader(
        TensorDataset(torch.arange(n)),
        batch_size=size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(3),
    )
    theirs = [batch[0].tolist() for _ in range(3) for batch in loader]
    assert len(ours) == 9
    assert ours == theirs


def test_zero_weight_targets_do_not_train() -> None:
    """A target with loss weight 0 has no effect: any values there give identical weights."""
    x, y = _data()
    x2 = torch.cat([x, x], dim=2)
    weight = torch.ones(y.shape[0], 2)
    weight[::3, 1] = 0.0
    runs = []
    for junk in (0.0, 1000.0):
        y2 = torch.cat([y, y], dim=1)
        y2[::3, 1] += junk
        torch.manual_seed(0)
        model = MedicalLSTM(2, 8, 1, 2)
        fit(
            model,
            x2,
            y2,
            epochs=2,
            batch_size=16,
            lr=1e-2,
            schedule="constant",
            seed=0,
            weight=weight,
        )
        runs.append(model.state_dict())
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key
