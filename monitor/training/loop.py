"""The seeded training loop: Adam on MSE, shuffled mini-batches, per-epoch mean loss."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from monitor.training.recipes import Schedule


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one epoch, exactly as ``DataLoader(shuffle=True, drop_last=True)``.

    Each epoch's DataLoader iterator first draws a base seed for its workers from the
    generator, then `RandomSampler` draws ``torch.randperm(n, generator=generator)``; the
    sampler, run to its end, draws one more (empty) slice of a second permutation. All
    three draws are reproduced so the batches are the seed's, epoch after epoch. The last
    incomplete batch is dropped. When there are fewer than `batch_size` windows, one
    batch holds them all.
    """
    torch.empty((), dtype=torch.int64).random_(generator=generator)
    order = torch.randperm(n, generator=generator)
    torch.randperm(n, generator=generator)
    if n < batch_size:
        return [order]
    return [order[i : i + batch_size] for i in range(0, n - batch_size + 1, batch_size)]


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    schedule: Schedule,
    seed: int,
    weight: torch.Tensor | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train `model` in place and return the mean training loss of each epoch.

    The loss of an epoch is the mean of its batch losses, as the seed reports it.

    Args:
        model: The model, on the same device as `x` and `y`.
        x: Normalised inputs ``(N, window, F)``.
        y: Normalised targets ``(N, F)``.
        epochs: Number of passes.
        batch_size: Windows per step.
        lr: Adam learning rate (peak for ``cosine``).
        schedule: ``constant`` or ``cosine`` (per-step decay to 0).
        seed: Seeds the shuffling generator.
        weight: Optional per-target loss weights ``(N, F)`` (0 leaves a target out); the
            loss is then the weighted mean squared error. None: plain MSE (the seed).
        on_epoch: Called with (epoch number from 1, mean loss) after each epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = max(1, x.shape[0] // batch_size)
    total = max(1, epochs * steps_per_epoch)

    def factor(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * step / total)) if schedule == "cosine" else 1.0

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    criterion = nn.MSELoss()
    losses: list[float] = []
    model.train()
    for epoch in range(epochs):
        total_loss = 0.0
        batches = epoch_batches(x.shape[0], batch_size, generator)
        for idx in batches:
            idx = idx.to(x.device)
            optimizer.zero_grad()
            if weight is None:
                loss = criterion(model(x[idx]), y[idx])
            else:
                w = weight[idx]
                loss = (w * (model(x[idx]) - y[idx]) ** 2).sum() / w.sum()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total_loss += loss.item()
        losses.append(total_loss / len(batches))
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    model.eval()
    return losses
