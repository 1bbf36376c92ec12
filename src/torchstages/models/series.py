"""Networks for time series forecasting: a window (N, lookback, features) of scaled values in,
the next ``horizon`` scaled target values out, all at once (a direct multi-step head, no
feeding forecasts back in).

Every network predicts the change from the window's last target value: its output is added to
that value, so a network whose head is zero is the naive forecast ("tomorrow equals today") and
learns what improves on it. With ``relative`` inputs (``build_dataset.series.level``) it also
sees the window's target relative to that last value: the shape of the recent past, not its
level, so a trending series whose test range lies above anything seen in training looks familiar.
The window MLP adds a linear path on the scaled target steps (see :class:`WindowMLP`).
Scaling happens outside, in the data and in the exported graph.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, PositiveInt
from torch import nn

from torchstages.models.mlp import MLPSpec, check_single, hidden_layers
from torchstages.models.recurrent import RecurrentSpec
from torchstages.models.transfer import SpecWithTransfer

__all__ = ["TCNSpec", "Recurrent", "TCN", "WindowMLP"]


class TCNSpec(SpecWithTransfer):
    name: Literal["tcn"] = "tcn"
    channels: list[PositiveInt] = Field(
        [32, 32, 32], description="channels of each residual block; block i dilates by 2^i"
    )
    kernel_size: int = Field(3, ge=2, description="convolution width in steps")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout inside each block")


class _Forecaster(nn.Module):
    """``features`` (N, L, F) -> ``head`` -> (N, horizon) changes, added to the last target value
    (plus the ``linear`` path's, where a network has one)."""

    head_name = "head"
    relative = False  # set by build_series_model from the data's meta

    def __init__(self) -> None:
        super().__init__()
        # (N, L) -> (N, H) on the target's steps, or None; an instance attribute: a class-level
        # None would shadow the submodule that nn.Module keeps in _modules
        self.linear: nn.Module | None = None

    def features(self, window: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, window: torch.Tensor) -> torch.Tensor:  # (N, L, F) -> (N, H)
        last = window[:, -1:, :1]  # (N, 1, 1): the target's last value
        target = window[:, :, 0]  # (N, L) scaled, before the shift below
        if self.relative:
            window = torch.cat([window[:, :, :1] - last, window[:, :, 1:]], dim=2)
        out = self.head(self.features(window)) + last[:, 0]
        if self.linear is not None:
            out = out + self.linear(target)
        return out


class Recurrent(_Forecaster):
    """The seed's LSTM (or a GRU): the last hidden state -> Linear -> horizon values."""

    def __init__(self, spec: RecurrentSpec, features: int, lookback: int, horizon: int) -> None:
        super().__init__()
        spec = spec.for_series()
        cell = nn.LSTM if spec.name == "lstm" else nn.GRU
        inner = spec.dropout if spec.layers > 1 else 0.0
        self.rnn = cell(features, spec.hidden, spec.layers, batch_first=True, dropout=inner)
        self.dropout = nn.Dropout(spec.dropout)
        self.head = nn.Linear(spec.hidden, horizon)

    def features(self, window: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(window)  # (N, L, hidden)
        return self.dropout(out[:, -1])


class WindowMLP(_Forecaster):
    """The flattened window (N, L x F) -> hidden layers -> horizon values, beside a linear map
    of the target's L scaled steps to the H forecasts (as DLinear, Zeng et al. 2023: a linear
    model on lags is hard to beat on short series; the MLP learns what it misses). The linear
    path sees the scaled values themselves, not the relative ones: relative inputs can only
    express forecasts whose lag weights sum to one, never a pull back towards the train mean
    (sunspots' cycles). It starts at zero: an untrained network is the naive forecast plus
    the MLP's. Chosen on the val ranges of bench/series.py (bench/RESULTS.md)."""

    def __init__(self, spec: MLPSpec, features: int, lookback: int, horizon: int) -> None:
        super().__init__()
        check_single(spec, "series")
        layers, width = hidden_layers(spec, lookback * features)
        self.body = nn.Sequential(nn.Flatten(), *layers)
        self.head = nn.Linear(width, horizon)
        self.linear = nn.Linear(lookback, horizon)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def features(self, window: torch.Tensor) -> torch.Tensor:
        return self.body(window)


class _CausalBlock(nn.Module):
    """Two dilated causal convolutions (left padding only: step t sees steps <= t) + residual."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv1 = nn.Conv1d(c_in, c_out, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(c_out, c_out, kernel, dilation=dilation)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, C, L) -> (N, C_out, L)
        y = self.dropout(torch.relu(self.conv1(nn.functional.pad(x, (self.pad, 0)))))
        y = self.dropout(torch.relu(self.conv2(nn.functional.pad(y, (self.pad, 0)))))
        return torch.relu(y + self.skip(x))


class TCN(_Forecaster):
    """Temporal convolutional network (Bai et al., 2018): causal dilated residual blocks; the
    last step's channels -> Linear -> horizon values."""

    def __init__(self, spec: TCNSpec, features: int, lookback: int, horizon: int) -> None:
        super().__init__()
        blocks, width = [], features
        for i, channels in enumerate(spec.channels):
            blocks.append(_CausalBlock(width, channels, spec.kernel_size, 2**i, spec.dropout))
            width = channels
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(width, horizon)

    def features(self, window: torch.Tensor) -> torch.Tensor:
        return self.blocks(window.transpose(1, 2))[:, :, -1]  # (N, C, L) -> (N, C) at step L
