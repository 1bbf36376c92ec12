"""Networks for tables: an MLP over numeric inputs and learned category embeddings (the default),
and the FT-Transformer (Gorishniy et al., 2021, "Revisiting Deep Learning Models for Tabular
Data"). Both take the raw inputs of :mod:`torchstages.tables.schema` and return logits (or one
standardised value for regression): imputation, missing indicators and scaling happen inside, in
:class:`TableInput`, with the train statistics as buffers, so the exported graph needs no
preprocessing beyond mapping category strings to indices.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from torchstages.errors import UserError
from torchstages.models.mlp import MLPSpec, hidden_layers
from torchstages.models.transfer import SpecWithTransfer

__all__ = [
    "FTTransformerSpec",
    "LinearMember",
    "TableInput",
    "TableMLP",
    "FTTransformer",
    "embedding_size",
]


class FTTransformerSpec(SpecWithTransfer):
    name: Literal["ft_transformer"] = "ft_transformer"
    d_token: int = Field(64, ge=8, description="width of each feature token")
    n_blocks: int = Field(2, ge=1, description="transformer blocks")
    n_heads: int = Field(8, ge=1, description="attention heads (must divide d_token)")
    ffn_factor: float = Field(
        4 / 3, gt=0, description="feed-forward width as a multiple of d_token"
    )
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout after attention and feed-forward")


def embedding_size(cardinality: int) -> int:
    """fastai's rule of thumb: grows like n^0.56, capped at 50."""
    return min(50, round(1.6 * cardinality**0.56))


class TableInput(nn.Module):
    """Raw numeric inputs -> imputed, standardised values plus missing-value indicators.

    (N, F) float with NaN -> (N, F + I): NaN becomes the train median, every column is scaled with
    the train mean/std (computed after imputation), and the I columns that had missing values in
    train get a 0/1 indicator.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        super().__init__()
        cols = schema["numeric"]
        self.register_buffer(
            "median", torch.tensor([c["median"] for c in cols], dtype=torch.float32)
        )
        self.register_buffer("mean", torch.tensor([c["mean"] for c in cols], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([c["std"] for c in cols], dtype=torch.float32))
        self.indicators = [j for j, c in enumerate(cols) if c["indicator"]]
        self.width = len(cols) + len(self.indicators)

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        missing = torch.isnan(numeric)
        filled = torch.where(missing, self.median, numeric)
        scaled = (filled - self.mean) / self.std
        if not self.indicators:
            return scaled
        return torch.cat([scaled, missing[:, self.indicators].to(scaled.dtype)], dim=1)


def _cardinalities(schema: dict[str, Any]) -> list[int]:
    return [len(c["categories"]) + 2 for c in schema["categorical"]]  # + missing, other


def _category_offsets(cardinalities: list[int]) -> torch.Tensor:
    """Where each categorical column's rows start in one table that stacks all their categories."""
    return torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)


class LinearMember(nn.Module):
    """A linear model over the same raw inputs: [scaled numerics | missing indicators] @ W plus,
    per categorical column, one learned row per category (a one-hot column each) and a bias.

    Its weights are fitted by L-BFGS on the train rows before the network trains
    (:mod:`torchstages.tables.linear`), never by the optimizer, so they are buffers: DDP, EMA
    and the optimizer leave them alone, and every epoch's validation scores the average that
    is shipped. Until fitted it is inactive and the model is the network alone.
    """

    def __init__(self, width: int, cardinalities: list[int], outputs: int) -> None:
        super().__init__()
        self.cardinalities = cardinalities
        self.register_buffer("weight", torch.zeros(width, outputs))
        self.register_buffer("bias", torch.zeros(outputs))
        self.register_buffer("category_weight", torch.zeros(sum(cardinalities), outputs))
        offsets = _category_offsets(cardinalities)
        self.register_buffer("category_offsets", offsets, persistent=False)
        self.register_buffer("fitted", torch.zeros(()))
        self.active = False
        # weights loaded from a file say whether they were fitted
        self.register_load_state_dict_post_hook(
            lambda module, _: setattr(module, "active", bool(module.fitted))
        )

    def load_fit(
        self, weight: torch.Tensor, category_weight: torch.Tensor, bias: torch.Tensor
    ) -> None:
        """Take fitted coefficients: (W, outputs) for the scaled inputs, (the sum of the
        cardinalities, outputs) for the one-hot categories column by column, (outputs,)."""
        self.weight.copy_(weight)
        self.category_weight.copy_(category_weight)
        self.bias.copy_(bias)
        self.fitted.fill_(1)
        self.active = True

    def forward(self, scaled: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        out = scaled @ self.weight + self.bias
        if self.cardinalities:
            out = out + self.category_weight[categorical + self.category_offsets].sum(1)
        return out


class TableMLP(nn.Module):
    """[scaled numerics | category embeddings] -> [Linear -> (BatchNorm) -> act -> Dropout]* -> Linear.

    With ``spec.ensemble`` k > 1 it is TabM-mini (Gorishniy et al., 2024, "TabM: Advancing
    tabular deep learning with parameter-efficient ensembling"): k members share the embeddings
    and the hidden layers; member i multiplies the input by its own vector r_i (random signs at
    initialisation) and has its own head. In training the forward returns every member's output,
    (N, k, outputs), and each member is trained on its own loss (the loop flattens the members
    into the batch); in evaluation, and so in the export, it returns their average as (N, outputs):
    the mean regression value, or for classes the log of the mean probabilities (softmax of it
    gives the averaged probabilities back).

    With ``spec.linear_weight`` a > 0, evaluation averages that with a :class:`LinearMember`
    once it is fitted: (1 - a) x network + a x linear, in probabilities for classes (returned as
    their log) or in standardised values for a regression.
    """

    def __init__(self, spec: MLPSpec, schema: dict[str, Any], outputs: int) -> None:
        super().__init__()
        self.inputs = TableInput(schema)
        names = [c["name"] for c in schema["categorical"]]
        unknown = sorted(set(spec.embedding_dims) - set(names))
        if unknown:  # a typo, or a numeric column, would silently keep the default size
            raise UserError(
                f"train.model.embedding_dims: {unknown[0]!r} is not a categorical column of this "
                f"table (categorical: {names or 'none'})"
            )
        cardinalities = _cardinalities(schema)
        self.embeddings = nn.ModuleList(
            nn.Embedding(n, spec.embedding_dims.get(name, embedding_size(n)))
            for name, n in zip(names, cardinalities, strict=True)
        )
        width = self.inputs.width + sum(e.embedding_dim for e in self.embeddings)
        self.k = max(spec.ensemble, 1)
        self.regression = outputs == 1  # one output: a standardised value; else logits
        if self.k > 1:
            signs = torch.randint(0, 2, (self.k, width), dtype=torch.float32) * 2 - 1
            self.adapter = nn.Parameter(signs)  # (k, W): r_i
        layers, width = hidden_layers(spec, width)
        self.body = nn.Sequential(*layers)
        self.head: nn.Module = (
            nn.Linear(width, outputs) if self.k == 1 else _EnsembleHead(self.k, width, outputs)
        )
        self.head_name = "head"
        # computed from the train rows, never copied from pretrained weights
        self.fitted_to_data = ("inputs.", "linear.")
        self.linear_weight = 0.0 if spec.linear_weight == "auto" else float(spec.linear_weight)
        self.linear = (
            LinearMember(self.inputs.width, cardinalities, outputs) if self.linear_weight else None
        )

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        # (N, F) float, (N, C) int64 -> (N, outputs); an ensemble in training: (N, k, outputs)
        scaled = self.inputs(numeric)
        parts = [scaled] + [emb(categorical[:, j]) for j, emb in enumerate(self.embeddings)]
        x = torch.cat(parts, dim=1)  # (N, W)
        if self.k == 1:
            out = self.head(self.body(x))
        else:
            n = x.shape[0]
            # (N, k, W) -> (N * k, W): one batch through the shared layers (BatchNorm included)
            hidden = self.body((x.unsqueeze(1) * self.adapter).flatten(0, 1))
            out = self.head(hidden.view(n, self.k, -1))  # (N, k, outputs)
            if self.training:
                return out
            if self.regression:
                out = out.mean(1)
            else:
                out = torch.logsumexp(F.log_softmax(out, dim=-1), dim=1) - math.log(self.k)
        if self.training or self.linear is None or not self.linear.active:
            return out
        a, linear = self.linear_weight, self.linear(scaled, categorical)
        if self.regression:
            return (1 - a) * out + a * linear
        if a == 1:
            return F.log_softmax(linear, dim=-1)
        # log((1 - a) p_network + a p_linear), stable in log space
        return torch.logaddexp(
            math.log(1 - a) + F.log_softmax(out, dim=-1),
            math.log(a) + F.log_softmax(linear, dim=-1),
        )


class _EnsembleHead(nn.Module):
    """k Linear heads, one per member, as one batched product: (N, k, H) -> (N, k, outputs)."""

    def __init__(self, k: int, width: int, outputs: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(width)  # nn.Linear's initialisation, per member
        self.weight = nn.Parameter(torch.empty(k, width, outputs).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(k, outputs).uniform_(-bound, bound))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.einsum("nkh,kho->nko", hidden, self.weight) + self.bias


class _Block(nn.Module):
    """Pre-norm transformer block; attention through scaled_dot_product_attention (exports cleanly)."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_token {d} is not divisible by n_heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        # ReGLU feed-forward, as in the paper
        self.ffn_in, self.ffn_out = nn.Linear(d, 2 * ffn), nn.Linear(ffn, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, T, d)
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        )
        x = x + self.dropout(self.proj(att.transpose(1, 2).reshape(n, t, d)))
        a, b = self.ffn_in(self.norm2(x)).chunk(2, dim=-1)
        return x + self.dropout(self.ffn_out(a * F.relu(b)))


class FTTransformer(nn.Module):
    """Each feature becomes a token (numeric: value x weight + bias; categorical: an embedding),
    a [CLS] token is prepended, and the head reads the [CLS] token after the blocks."""

    def __init__(self, spec: FTTransformerSpec, schema: dict[str, Any], outputs: int) -> None:
        super().__init__()
        d = spec.d_token
        self.inputs = TableInput(schema)
        k = self.inputs.width
        bound = 1 / math.sqrt(d)
        self.num_weight = nn.Parameter(torch.empty(k, d).uniform_(-bound, bound))
        self.num_bias = nn.Parameter(torch.empty(k, d).uniform_(-bound, bound))
        cards = _cardinalities(schema)
        self.register_buffer("cat_offsets", _category_offsets(cards))
        self.cat_embedding = nn.Embedding(max(sum(cards), 1), d)
        self.cls = nn.Parameter(torch.empty(1, 1, d).uniform_(-bound, bound))
        ffn = max(1, int(d * spec.ffn_factor))
        self.blocks = nn.Sequential(
            *(_Block(d, spec.n_heads, ffn, spec.dropout) for _ in range(spec.n_blocks))
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, outputs)
        self.head_name = "head"
        # computed from the train rows, never copied from pretrained weights
        self.fitted_to_data = ("inputs.", "cat_offsets")
        self.n_categorical = len(cards)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        values = self.inputs(numeric)  # (N, K)
        tokens = [values.unsqueeze(-1) * self.num_weight + self.num_bias]  # (N, K, d)
        if self.n_categorical:
            tokens.append(self.cat_embedding(categorical + self.cat_offsets))  # (N, C, d)
        x = torch.cat([self.cls.expand(values.shape[0], -1, -1), *tokens], dim=1)
        x = self.blocks(x)
        return self.head(F.relu(self.norm(x[:, 0])))
