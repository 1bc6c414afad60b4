"""Tokenisation of (prompt, completion) records with THE chat template, masks and padding.

A record is a plain dict; which keys it has depends on the entry's ``input_kind``:
    single   {prompt, completion}                 (SFT, distillation)
    paired   {prompt, chosen, rejected[, margin]}  (DPO family, reward models: ``scores``)
    unpaired {prompt, completion, label}          (KTO/BCO; label True = desirable)
Each record becomes named sequences (``completion`` | ``chosen``/``rejected`` | ``kl``), each a
:class:`ptlab.trainer.chat.Encoded` (THE chat template, shared with evaluation). Collation right-pads to (B, T) and marks
completion tokens in ``mask``; per-token log-probs use the same layout (see modeling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ptlab.trainer.chat import Encoded, encode_prompt_completion

SEQUENCE_NAMES: dict[str, tuple[str, ...]] = {
    "single": ("completion",),
    "paired": ("chosen", "rejected"),
    "scores": ("chosen", "rejected"),
    "unpaired": ("completion",),
}


@dataclass(frozen=True)
class Padded:
    """A right-padded batch of sequences: ids/attn/mask (B, T); mask = completion tokens."""

    ids: Tensor
    attn: Tensor
    mask: Tensor

    @property
    def n_tokens(self) -> int:
        """Non-padding tokens (prompt + completion): what one forward pass processes."""
        return int(self.attn.sum())


def encode_record(
    tokenizer: Any, record: Mapping[str, Any], input_kind: str, max_len: int
) -> dict[str, Encoded]:
    """Named sequences of one record for ``input_kind`` (see module docstring)."""
    prompt = record["prompt"]
    names = SEQUENCE_NAMES[input_kind]
    out = {name: encode_prompt_completion(tokenizer, prompt, record[name], max_len) for name in names}
    if "kl_completion" in record:
        out["kl"] = encode_prompt_completion(tokenizer, prompt, record["kl_completion"], max_len)
    return out


def with_kl_pairs(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Attach a mismatched completion for KTO's KL reference point z0: the completion of the
    next record whose prompt differs (pairs split into two records share a prompt).

    The pairing is fixed at dataset level, so its reference log-probs are cacheable like any
    other sequence.
    """
    n = len(records)
    out = []
    for i, r in enumerate(records):
        j = next((k % n for k in range(i + 1, i + n) if records[k % n]["prompt"] != r["prompt"]), (i + 1) % n)
        out.append({**r, "kl_completion": records[j]["completion"]})
    return out


def pad(seqs: Sequence[Encoded], pad_id: int, length: int | None = None) -> Padded:
    """Right-pad sequences to ``length`` (default: the longest) as a :class:`Padded` batch."""
    width = length or max(len(s.input_ids) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.float32)
    for row, s in enumerate(seqs):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids, dtype=torch.long)
        attn[row, :n] = 1
        mask[row, s.prompt_len : n] = 1.0
    return Padded(ids, attn, mask)


def scatter_completion(values: Sequence[Tensor], mask: Tensor) -> Tensor:
    """Place per-sequence completion values (1-D, one per row) at the mask positions (B, T)."""
    out = torch.zeros(mask.shape, dtype=torch.float32)
    for row, v in enumerate(values):
        out[row, mask[row].bool()] = v.float()
    return out


def completion_values(logps: Tensor, mask: Tensor) -> list[Tensor]:
    """Inverse of :func:`scatter_completion`: each row's values at its completion positions."""
    return [logps[row, mask[row].bool()].detach().clone() for row in range(logps.shape[0])]


def token_ids_digest(examples: Sequence[Mapping[str, Encoded]]) -> str:
    """SHA-256 of every sequence's ids and completion start: the tokenised data's identity."""
    import hashlib

    digest = hashlib.sha256()
    for ex in examples:
        for name in sorted(ex):
            seq = ex[name]
            digest.update(f"{name}:{seq.prompt_len}:".encode())
            digest.update(torch.tensor(seq.input_ids, dtype=torch.int64).numpy().tobytes())
    return digest.hexdigest()[:16]
