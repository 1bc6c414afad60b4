"""Adapters for real datasets: local jsonl files or ``datasets.load_dataset`` by name.

Formats (one JSON object per line; a malformed line is a UserError naming file and line):

* ``gsm8k``  — ``{"question": str, "answer": "...worked solution... #### 1,234"}``
* ``math``   — ``{"problem": str, "solution": "... \\boxed{3/4} ..."}``
* ``mc``     — ARC style: ``{"question": str | {"stem": str, "choices": [...]},
  "choices": {"text": [...], "label": [...]} | [{"text", "label"}], "answerKey": "B"}``
* ``pairs``  — ``{"prompt": str, "chosen": str, "rejected": str}`` or chat messages:
  ``{"chosen": [{"role": "user", ...}, {"role": "assistant", ...}], "rejected": [...]}``

    load_items("data/gsm8k_test.jsonl", "gsm8k") -> list[Item]   # verified by get_domain(...)
    load_items("hf:openai/gsm8k:main", "gsm8k", split="test")     # via datasets.load_dataset
    load_pairs("prefs.jsonl") -> list[Pair]
    VERIFIER_DOMAIN["gsm8k"] == "arith"                           # which verifier scores them
"""

from ptlab.trainer.data.adapters import (
    FORMATS,
    VERIFIER_DOMAIN,
    load_items,
    load_pairs,
    read_rows,
)

__all__ = ["FORMATS", "VERIFIER_DOMAIN", "load_items", "load_pairs", "read_rows"]
