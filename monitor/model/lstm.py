"""`MedicalLSTM`: the seed tutorial's architecture, unchanged (section 2.3).

An LSTM over the window (batch first) started from zero hidden and cell states, and one
linear layer on the last time step's output. Multivariate: ``input_size`` vitals in,
``output_size`` one-step-ahead predictions out.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "MedicalLSTM",
]


class MedicalLSTM(nn.Module):
    """LSTM + Linear one-step-ahead predictor, exactly as the seed defines it.

    Args:
        input_size: Number of input features per time step.
        hidden_size: LSTM hidden state size.
        num_layers: Number of stacked LSTM layers.
        output_size: Number of predicted values.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, output_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict the next sample from windows.

        Args:
            x: Windows, shape ``(batch, window, input_size)``.

        Returns:
            Predictions, shape ``(batch, output_size)``.
        """
        # Zero initial states on the input's device, as the seed does: every window is
        # scored on its own, with no state carried over from another batch.
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, device=x.device)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size, device=x.device)
        out, _ = self.lstm(x, (h0, c0))
        result: torch.Tensor = self.fc(out[:, -1, :])
        return result
