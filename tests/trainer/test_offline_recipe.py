"""The offline recipe: loss normalisation under gradient accumulation, LoRA reference,
the chat template shared with evaluation, and every offline registry entry training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import ptlab.algorithms as algorithms
from ptlab.trainer import modeling, run
from ptlab.trainer.batching import encode_record
from ptlab.trainer.chat import format_prompt
from ptlab.trainer.observability import read_jsonl
from tests.trainer.conftest import curve

OFFLINE = [
    s.name
    for s in algorithms.entries()
    if s.family not in ("online-rl", "online-pref", "advantage") and not s.needs_rollouts
]


def test_training_prompt_is_exactly_the_evaluation_prompt(tiny_model: str) -> None:
    tok = modeling.load_tokenizer(tiny_model)
    prompt = "Sam has 3 boxes of 4 pens. How many pens?"
    seq = encode_record(
        tok, {"prompt": prompt, "completion": "3 * 4 = 12. Answer: 12"}, "single", 256
    )["completion"]
    evaluated = tok(format_prompt(tok, prompt), add_special_tokens=False)["input_ids"]
    assert list(seq.input_ids[: seq.prompt_len]) == evaluated
    assert seq.input_ids[-1] == tok.eos_token_id
    assert tok.decode(seq.input_ids[seq.prompt_len : -1]) == "3 * 4 = 12. Answer: 12"


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["sft", "dpo"])
def test_gradient_accumulation_does_not_change_the_loss(
    algorithm: str, tiny_model: str, spec_for, tmp_path: Path
) -> None:
    """One batch of 4 = 2 micro-batches of 2 = 4 of 1: same global-mean loss and updates.

    Token-mean SFT is the case a per-micro-batch mean gets wrong (micro-batches hold different
    numbers of tokens), so equality here means the normalisation is global.
    """
    curves = []
    for accum in (1, 2, 4):
        spec = spec_for(tiny_model, algorithm, training={"grad_accum": accum})
        run.train(spec, tmp_path / f"a{accum}")
        curves.append(read_jsonl(tmp_path / f"a{accum}" / "metrics.jsonl"))
    for other in curves[1:]:
        for a, b in zip(curves[0], other, strict=True):
            assert math.isclose(a["loss"], b["loss"], rel_tol=0, abs_tol=2e-6), (
                a["loss"],
                b["loss"],
            )
            assert math.isclose(a["grad_norm"], b["grad_norm"], rel_tol=1e-4)


@pytest.mark.slow
def test_lora_reference_is_the_adapter_disabled_policy(
    tiny_model: str, spec_for, tmp_path: Path
) -> None:
    lora = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    spec = spec_for(
        tiny_model, "dpo", model={"path": tiny_model, "lora": lora}, training={"lr": 1e-2}
    )
    result = run.train(spec, tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    # at step 1 the policy equals its reference (adapters start at zero): DPO loss is exactly ln 2
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-7)
    assert rows[0]["rewards/margins"] == 0.0
    assert rows[-1]["rewards/margins"] != 0.0
    assert result["reference_forward_passes"] == 4  # computed from the policy itself, once
    assert (tmp_path / "run" / "model" / "adapter_config.json").exists()


def _heldout(model_dir: str, base_dir: str) -> dict[str, float]:
    """Held-out 'rewards' on eval-split items: mean per-token log-prob of the worked solution,
    and the mean log-prob margin of chosen over rejected (sequence sums) of eval pairs."""
    from ptlab.trainer.domains import get_domain
    from ptlab.trainer.recipes.offline import build_batch

    tok = modeling.load_tokenizer(base_dir)
    if (Path(model_dir) / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(modeling.load_model(base_dir), model_dir)
    else:
        model = modeling.load_model(model_dir)
    model.eval()
    domain = get_domain("arith")
    items = domain.items("eval", 32, seed=0)
    pairs = domain.given_pairs(items, seed=0)
    rows = [
        encode_record(
            tok, {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}, "paired", 256
        )
        for p in pairs
    ]
    with torch.no_grad():
        batch, _, _ = build_batch("paired", model, rows, [], None, [], tok.pad_token_id)
    solution = (batch.policy_chosen_logps.sum(-1) / batch.chosen_mask.sum(-1)).mean()
    margin = (batch.policy_chosen_logps.sum(-1) - batch.policy_rejected_logps.sum(-1)).mean()
    return {"solution_logp": float(solution), "margin": float(margin)}


def _general_accuracy(model_dir: str, base_dir: str) -> dict[str, float]:
    """Held-out greedy accuracy on 96 eval-split ``general`` items (deterministic)."""
    from ptlab.trainer.domains import get_domain
    from ptlab.trainer.evaluation import evaluate

    domain = get_domain("general")
    model = modeling.load_model(model_dir)
    result = evaluate(model, modeling.load_tokenizer(base_dir), domain, domain.items("eval", 96),
                      max_new_tokens=32)
    return {"accuracy": result["accuracy"]}


# algorithm: (held-out quantity that must rise, learning rate, data). The s1 zoo model was
# pretrained on the same worked solutions, so SFT is measured where it still has room (general:
# greedy accuracy below chance, 0.17 -> 0.26). KTO sees both halves of a given pair in one batch
# (recipe's prompt groups); shuffled by row it lowered the margin (3.51 -> 3.10).
ARITH = {"domain": "arith", "train_size": 128}
GENERAL = {"domain": "general", "train_size": 256}
LEARNS = {
    "sft": ("accuracy", 1e-3, GENERAL),
    "dpo": ("margin", 2e-3, ARITH),
    "ipo": ("margin", 2e-3, ARITH),
    "robust_dpo": ("margin", 2e-3, ARITH),
    "kto": ("margin", 2e-4, ARITH),
    "simpo": ("margin", 2e-3, ARITH),
}


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", sorted(LEARNS))
def test_each_family_learns_on_the_smallest_zoo_model(
    algorithm: str, zoo_s1: str, spec_for, tmp_path: Path
) -> None:
    key, lr, data = LEARNS[algorithm]
    spec = spec_for(
        zoo_s1,
        algorithm,
        data=data,
        training={
            "budget": {"steps": 16},
            "batch_size": 8,
            "lr": lr,
            "max_len": 256,
            "checkpoint_every": 100,
            "seed": 0,
        },
        rollout={"num_generations": 8, "max_new_tokens": 32, "temperature": 1.0},
        eval={"items": 16, "max_new_tokens": 32},
    )
    result = run.train(spec, tmp_path / "run")
    assert result["status"] == "succeeded"
    measure = _general_accuracy if key == "accuracy" else _heldout
    before = measure(zoo_s1, zoo_s1)
    after = measure(str(tmp_path / "run" / "model"), zoo_s1)
    assert after[key] > before[key] + 0.05, (algorithm, before, after)


@pytest.mark.slow
def test_every_offline_entry_trains_two_steps(
    tiny_model: str, tiny_teacher: str, spec_for, tmp_path: Path
) -> None:
    """Registry-wide: each offline entry takes 2 real optimizer steps through the recipe."""
    failures = {}
    for name in OFFLINE:
        entry = algorithms.get(name)
        spec = spec_for(
            tiny_model,
            name,
            data={"domain": "arith", "train_size": 8},
            training={"budget": {"steps": 2}, "batch_size": 2, "checkpoint_every": 10},
            eval={"items": 2, "max_new_tokens": 4},
        )
        if entry.needs_teacher:
            spec["reference"] = {"path": tiny_teacher}
        try:
            result = run.train(spec, tmp_path / name)
        except Exception as err:  # collect every failing entry, not only the first
            failures[name] = f"{type(err).__name__}: {err}"
            continue
        rows = curve(read_jsonl(tmp_path / name / "metrics.jsonl"))
        if result["status"] != "succeeded" or [r["step"] for r in rows] != [1, 2]:
            failures[name] = f"status {result['status']}, steps {[r['step'] for r in rows]}"
        elif not all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows):
            failures[name] = f"loss/grad {[(r['loss'], r['grad_norm']) for r in rows]}"
    assert not failures, failures
    assert len(OFFLINE) >= 40


@pytest.mark.slow
def test_a_local_pairs_file_trains_dpo(tiny_model: str, spec_for, tmp_path: Path) -> None:
    import json

    rows = [
        {
            "prompt": f"What is {i} + 1?",
            "chosen": f"{i} + 1 = {i + 1}. Answer: {i + 1}",
            "rejected": f"{i} + 1 = {i + 2}. Answer: {i + 2}",
        }
        for i in range(8)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = spec_for(
        tiny_model,
        "dpo",
        data={"domain": "arith", "train_size": 8, "source": {"format": "pairs", "path": str(path)}},
        training={"budget": {"steps": 2}},
    )
    result = run.train(spec, tmp_path / "run")
    assert result["status"] == "succeeded"
    # 8 chosen + 8 rejected sequences, one reference forward per 16-sequence batch and name
    assert result["reference_forward_passes"] == 2
    assert result["train_tokens"] == sum(
        r["train_tokens"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1:]
    )
