"""Networks for texts: token ids (N, T) int64 and true lengths (N,) in, logits out.

- ``lstm`` / ``gru``: embedding -> (bi)LSTM or GRU -> last hidden state or masked mean/max pooling ->
  linear (the seed's ``SequenceModel``, done right: packed sequences, so padding costs nothing and
  never reaches the pooled features).
- ``textcnn``: parallel 1-D convolutions, max over time with the padding masked (Kim, 2014).
- ``transformer``: a small pre-norm encoder with a key padding mask and learned positions.

Every model gives the same logits whatever ``max_len`` a text is padded to; the ONNX export runs
the recurrent model on the padded batch (ONNX has no packed sequences) with the backward
direction reversed within each text's length, which equals the packed result (the export stage
checks it on the whole test split). Id 0 is padding (a zero vector), id 1 an unknown token.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from torchstages.errors import UserError
from torchstages.models.recurrent import RecurrentSpec
from torchstages.models.transfer import SpecWithTransfer

__all__ = [
    "TextCNNSpec",
    "TextTransformerSpec",
    "TextSpec",
    "TextLSTM",
    "TextCNN",
    "TextTransformer",
    "read_vectors",
    "TEXT_BUILDERS",
    "load_vectors",
]

log = logging.getLogger(__name__)
PAD = 0


class _TextSpecBase(SpecWithTransfer):
    embedding_dim: int = Field(32, ge=2, description="width of each token's embedding")
    dropout: float = Field(
        0.3, ge=0, lt=1, description="dropout on the embeddings and before the head"
    )
    vectors: str | None = Field(
        None,
        description="pretrained word vectors: a local GloVe/fastText text file (word then "
        "embedding_dim numbers per line); vocabulary words found there start from their vector",
    )


class TextCNNSpec(_TextSpecBase):
    name: Literal["textcnn"] = "textcnn"
    # one width by default: on SMS spam [2, 3, 4] scored a little higher on val (macro F1 0.976
    # against 0.968) at twice the train time (bench/RESULTS.md)
    kernel_sizes: list[PositiveInt] = Field(
        [3], min_length=1, description="n-gram widths, one Conv1d each (e.g. [2, 3, 4])"
    )
    channels: int = Field(32, ge=1, description="filters per kernel size")


class TextTransformerSpec(_TextSpecBase):
    name: Literal["transformer"] = "transformer"
    layers: int = Field(2, ge=1, description="encoder blocks")
    heads: int = Field(4, ge=1, description="attention heads (must divide embedding_dim)")
    ffn: int = Field(64, ge=1, description="feed-forward width")


TextSpec = RecurrentSpec | TextCNNSpec | TextTransformerSpec


def _lengths(lengths: torch.Tensor) -> torch.Tensor:
    # a text with no token (nothing left after tokenising) is read as one padding token
    return lengths.clamp(min=1)


def _mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N, T) True at the text's own positions."""
    positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
    return positions < lengths.unsqueeze(1)


class _Embedded(nn.Module):
    """Embedding (padding id 0 is a fixed zero vector) and dropout, shared by every text model."""

    def __init__(self, spec: _TextSpecBase, vocab_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, spec.embedding_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(spec.dropout)


class TextLSTM(_Embedded):
    """Recurrent layers built per direction: the backward one reads each text reversed within
    its own length, so packed (training, evaluation) and padded (ONNX) runs agree."""

    def __init__(self, spec: RecurrentSpec, info: dict[str, Any], outputs: int) -> None:
        spec = spec.for_texts()
        super().__init__(spec, info["vocab_size"])
        rnn = nn.LSTM if spec.name == "lstm" else nn.GRU
        directions = 2 if spec.bidirectional else 1
        self.layers = nn.ModuleList()
        width = spec.embedding_dim
        for _ in range(spec.layers):
            self.layers.append(
                nn.ModuleList(rnn(width, spec.hidden, batch_first=True) for _ in range(directions))
            )
            width = spec.hidden * directions
        self.pooling = spec.pooling
        self.between = nn.Dropout(spec.dropout if spec.layers > 1 else 0.0)
        self.head = nn.Linear(width, outputs)
        self.head_name = "head"
        self.packed = True  # False: run on the padded batch (the ONNX export)

    def _run(self, rnn: nn.Module, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return rnn(x)[0]  # positions past the length hold garbage; every reader masks them
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = rnn(packed)
        return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = _lengths(lengths)
        mask = _mask(tokens, lengths)  # (N, T)
        positions = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0)
        # index t reads position length-1-t inside the text, itself outside: a reversal per text
        reverse = torch.where(mask, lengths.unsqueeze(1) - 1 - positions, positions)
        x = self.dropout(self.embedding(tokens))  # (N, T, E)
        for i, directions in enumerate(self.layers):
            outs = [self._run(directions[0], x, lengths)]
            if len(directions) == 2:
                backward = self._run(directions[1], _gather(x, reverse), lengths)
                outs.append(_gather(backward, reverse))  # back into reading order
            x = torch.cat(outs, dim=2)  # (N, T, H * directions)
            if i + 1 < len(self.layers):
                x = self.between(x)
        return self.head(self.dropout(self._pool(x, mask, lengths)))

    def _pool(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "last":
            # forward: the state after the last token; backward: after reading back to the first
            last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, x.shape[2])
            state = x.gather(1, last)[:, 0]
            if len(self.layers[-1]) == 1:
                return state
            half = x.shape[2] // 2
            return torch.cat([state[:, :half], x[:, 0, half:]], dim=1)
        return _masked_pool(x, mask, self.pooling)


def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[n, index[n, t], :] for (N, T, C) x and (N, T) index."""
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


def _masked_pool(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Mean or max over the positions where ``mask`` is True: (N, T, C) -> (N, C)."""
    keep = mask.unsqueeze(-1)
    if how == "max":
        return x.masked_fill(~keep, float("-inf")).amax(dim=1)
    return (x * keep).sum(dim=1) / keep.sum(dim=1).to(x.dtype)


class TextCNN(_Embedded):
    """One Conv1d per kernel size over the embeddings, ReLU, max over the positions whose window
    touches the text (wide convolution: texts shorter than a kernel work too)."""

    def __init__(self, spec: TextCNNSpec, info: dict[str, Any], outputs: int) -> None:
        super().__init__(spec, info["vocab_size"])
        self.convs = nn.ModuleList(
            nn.Conv1d(spec.embedding_dim, spec.channels, k, padding=k - 1)
            for k in spec.kernel_sizes
        )
        self.kernel_sizes = list(spec.kernel_sizes)
        self.head = nn.Linear(spec.channels * len(spec.kernel_sizes), outputs)
        self.head_name = "head"

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = _lengths(lengths)
        x = self.dropout(self.embedding(tokens)).transpose(1, 2)  # (N, E, T)
        pooled = []
        for conv, k in zip(self.convs, self.kernel_sizes, strict=True):
            out = F.relu(conv(x)).transpose(1, 2)  # (N, T + k - 1, C)
            # output j reads inputs j-k+1..j: it touches the text while j < length + k - 1;
            # later windows see only padding, whose zeros must not win the max
            valid = _mask(out[:, :, 0], lengths + k - 1)
            pooled.append(_masked_pool(out, valid, "max"))
        return self.head(self.dropout(torch.cat(pooled, dim=1)))


class _EncoderBlock(nn.Module):
    """Pre-norm self-attention + feed-forward; padding keys masked out of every attention row."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"embedding_dim {d} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape  # keys: (N, 1, 1, T) True where a key may be attended to
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads).unbind(2)
        att = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=keys
        )  # (N, heads, T, d / heads)
        x = x + self.dropout(self.proj(att.transpose(1, 2).reshape(n, t, d)))
        return x + self.dropout(self.ffn(self.norm2(x)))


class TextTransformer(_Embedded):
    """Token + learned position embeddings -> encoder blocks -> masked mean -> linear."""

    def __init__(self, spec: TextTransformerSpec, info: dict[str, Any], outputs: int) -> None:
        super().__init__(spec, info["vocab_size"])
        d = spec.embedding_dim
        self.positions = nn.Embedding(info["max_len"], d)
        self.blocks = nn.ModuleList(
            _EncoderBlock(d, spec.heads, spec.ffn, spec.dropout) for _ in range(spec.layers)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, outputs)
        self.head_name = "head"

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = _mask(tokens, _lengths(lengths))  # (N, T)
        where = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.dropout(self.embedding(tokens) + self.positions(where))
        keys = mask[:, None, None, :]
        for block in self.blocks:
            x = block(x, keys)
        return self.head(self.dropout(_masked_pool(self.norm(x), mask, "mean")))


TEXT_BUILDERS: dict[str, type[nn.Module]] = {
    "lstm": TextLSTM,
    "gru": TextLSTM,
    "textcnn": TextCNN,
    "transformer": TextTransformer,
}


def read_vectors(path: Path, vocab: list[str], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(len(vocab), dim) vectors of the vocabulary words found in a GloVe/fastText text file and
    a (len(vocab),) bool of which were found. A fastText header line ("count dim") is skipped."""
    if path.is_dir():
        raise UserError(f"train.model.vectors: {path}: is a folder; give the .txt or .vec file")
    if not path.is_file():
        raise UserError(f"train.model.vectors: {path}: file not found")
    index = {word: i for i, word in enumerate(vocab)}
    vectors = torch.zeros(len(vocab), dim)
    found = torch.zeros(len(vocab), dtype=torch.bool)
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            word, _, rest = line.rstrip("\n").partition(" ")
            i = index.get(word)
            if i is None or found[i]:
                continue
            values = rest.split()
            if len(values) != dim:
                if number == 1 and len(values) == 1:
                    continue  # fastText's "count dim" header
                raise UserError(
                    f"train.model.vectors: {path}, line {number}: {len(values)} numbers, but "
                    f"train.model.embedding_dim is {dim}"
                )
            vectors[i] = torch.tensor([float(v) for v in values])
            found[i] = True
    return vectors, found


def load_vectors(model: nn.Module, spec: TextSpec, vocab: list[str]) -> dict[str, int]:
    """Copy the vectors file's rows into the embedding; returns the words found and looked for."""
    assert spec.vectors is not None
    vectors, found = read_vectors(Path(spec.vectors), vocab, spec.embedding_dim)
    found[PAD] = False  # padding stays the zero vector
    with torch.no_grad():
        model.embedding.weight[found] = vectors[found]
    words = len(vocab) - 2  # padding and unknown are not words
    log.info(
        "train: %d of %d vocabulary words found in %s (the rest start random)",
        int(found.sum()),
        words,
        spec.vectors,
    )
    return {"found": int(found.sum()), "words": words}
