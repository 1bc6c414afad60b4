"""Offline trainer benchmarks: step overhead, DPO vs TRL, reference cache, peak memory.

    .venv/bin/python benchmarks/bench_trainer.py            # all; writes results/trainer.json

1. step: our DPO and SFT step (the offline recipe, everything it does per step) vs a bare
   PyTorch loop on the same model, batches and loss (target ≤ 1.05×).
2. trl-dpo: a DPO run through our recipe vs TRL ``DPOTrainer`` on the same random Qwen2,
   data order, batch, steps, fp32, no gradient checkpointing (TRL defaults bf16 and
   checkpointing on: both set off), constant LR, same AdamW; whole-run and per-step ratios
   (target ≤ 0.75×); cross-check: both final models give the same DPO loss on a held-out
   batch within 1e-4.
3. refcache: a 5-algorithm offline study at one scale: reference forward passes (1× vs 5×).
4. rss: peak RSS of a DPO run with a warm reference cache vs TRL ``DPOTrainer`` (two models)
   on a model of the 16M zoo shape (s4: hidden 384, 9 layers; randomly initialised because
   building the pretrained zoo model takes too long here; memory does not depend on weights).
Per-step time = median of the intervals between consecutive step ends (set-up excluded).
Ours and theirs are interleaved in one process and repeated; medians are reported.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

STEPS = int(os.environ.get("BENCH_STEPS", 12))  # a loaded machine may need fewer
REPEATS = int(os.environ.get("BENCH_REPEATS", 5))  # medians over repeats: the machine is noisy
BATCH, LR, BETA = 8, 1e-4, 0.1
RESULTS = Path(__file__).parent / "results" / "trainer.json"
SMALL = {"hidden": 128, "layers": 4, "heads": 4, "intermediate": 512}  # ~1M parameters
S4 = {"hidden": 384, "layers": 9, "heads": 6, "intermediate": 1152}  # the 16M zoo shape


def intervals(marks: list[float]) -> list[float]:
    """Durations between consecutive step ends."""
    return [b - a for a, b in itertools.pairwise(marks)]


def make_model(root: Path, shape: dict[str, int]) -> str:
    from transformers import AutoTokenizer

    from ptlab.trainer.modeling import save_random_model
    from ptlab.trainer.zoo.build import cache_root, ensure_tokenizer

    tok = AutoTokenizer.from_pretrained(ensure_tokenizer(cache_root()))
    return save_random_model(root, tok, **shape)


def spec_of(model: str, algorithm: str, steps: int) -> Any:
    from ptlab.api.models import PostTrainingRunSpec

    return PostTrainingRunSpec.model_validate({
        "algorithm": {"name": algorithm, "params": {"beta": BETA} if algorithm != "sft" else {}},
        "model": {"path": model},
        "data": {"domain": "arith", "train_size": 256},
        "training": {"budget": {"steps": steps}, "batch_size": BATCH, "lr": LR, "max_len": 256,
                     "schedule": "constant", "checkpoint_every": 10_000, "max_grad_norm": 1.0},
    })


def ours(model: str, algorithm: str, steps: int, cache: Path) -> tuple[float, list[float], Any]:
    """(whole-run seconds, per-step intervals, trained model) of the offline recipe, no eval."""
    import ptlab.algorithms as algorithms
    from ptlab.trainer import distributed
    from ptlab.trainer.observability import Reporter
    from ptlab.trainer.recipes import offline
    from ptlab.trainer.recipes.common import RunContext

    os.environ["PTLAB_CACHE"] = str(cache)
    marks: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        reporter = Reporter(Path(out), labels={"run": "bench", "algorithm": algorithm})
        original = reporter.log_step

        def log_step(*args: Any) -> None:
            original(*args)
            marks.append(time.perf_counter())

        reporter.log_step = log_step  # type: ignore[method-assign]
        ctx = RunContext(spec_of(model, algorithm, steps), algorithms.get(algorithm),
                         algorithms.resolve_params(algorithm, {"beta": BETA} if algorithm != "sft" else {}),
                         Path(out), distributed.DistInfo(), reporter)
        start = time.perf_counter()
        outcome = offline.train(ctx)
        elapsed = time.perf_counter() - start
        reporter.close()
    return elapsed, intervals(marks), outcome.model


def bare(model_dir: str, algorithm: str, steps: int, cache: Path) -> list[float]:
    """Per-step intervals of a hand-written loop: same batches, loss, optimizer, clipping."""
    import torch.nn.functional as F

    from ptlab.trainer import modeling
    from ptlab.trainer.batching import encode_record, pad, scatter_completion
    from ptlab.trainer.recipes.common import DataOrder
    from ptlab.trainer.recipes.offline import cached_reference, offline_records

    spec = spec_of(model_dir, algorithm, steps)
    kind = "single" if algorithm == "sft" else "paired"
    tok = modeling.load_tokenizer(model_dir)
    examples = [encode_record(tok, r, kind, 256) for r in offline_records(spec, kind)]
    modeling.configure_determinism(0)
    model = modeling.load_model(model_dir)
    os.environ["PTLAB_CACHE"] = str(cache)
    ref = cached_reference(spec, model, examples, tok.pad_token_id)[0] if kind == "paired" else None
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    order = DataOrder(len(examples), 0)
    model.train()
    marks = []
    for _ in range(steps):
        idx = order.take(BATCH)
        if kind == "paired":
            both = pad([examples[i]["chosen"] for i in idx] + [examples[i]["rejected"] for i in idx], tok.pad_token_id)
            logps = (modeling.token_logps(model, both.ids, both.attn) * both.mask).sum(-1)
            assert ref is not None
            ref_sum = torch.cat([scatter_completion([ref["chosen"][i] for i in idx], both.mask[:BATCH]),
                                 scatter_completion([ref["rejected"][i] for i in idx], both.mask[BATCH:])]).sum(-1)
            h = logps - ref_sum
            loss = -F.logsigmoid(BETA * (h[:BATCH] - h[BATCH:])).mean()
        else:
            batch = pad([examples[i]["completion"] for i in idx], tok.pad_token_id)
            logps = modeling.token_logps(model, batch.ids, batch.attn)
            loss = -(logps * batch.mask).sum() / batch.mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss)
        marks.append(time.perf_counter())
    return intervals(marks)


def trl_dpo(model_dir: str, steps: int) -> tuple[float, list[float], Any]:
    """(whole-run seconds, per-step intervals, trained model) of TRL DPOTrainer, same data order."""
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from ptlab.trainer.chat import format_prompt
    from ptlab.trainer.recipes.common import DataOrder
    from ptlab.trainer.recipes.offline import offline_records

    tok = AutoTokenizer.from_pretrained(model_dir)
    records = offline_records(spec_of(model_dir, "dpo", steps), "paired")
    order = DataOrder(len(records), 0)
    rows = [records[i] for _ in range(steps) for i in order.take(BATCH)]  # our consumption order
    data = Dataset.from_list([{"prompt": format_prompt(tok, r["prompt"]), "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in rows])
    marks: list[float] = []

    class Marks(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            marks.append(time.perf_counter())

    class InOrder(DPOTrainer):
        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> SequentialSampler:
            return SequentialSampler(self.train_dataset)

    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(
            output_dir=out, max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=LR,
            lr_scheduler_type="constant", beta=BETA, loss_type=["sigmoid"], max_length=256,
            bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[], save_strategy="no",
            logging_steps=10_000, seed=0, max_grad_norm=1.0, weight_decay=0.0, optim="adamw_torch",
            dataloader_num_workers=0, disable_tqdm=True, precompute_ref_log_probs=False,
        )
        start = time.perf_counter()
        trainer = InOrder(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32),
                          args=config, train_dataset=data, processing_class=tok, callbacks=[Marks()])
        trainer.train()
        elapsed = time.perf_counter() - start
    return elapsed, intervals(marks), trainer.model


def heldout_dpo_loss(model: Any, model_dir: str) -> float:
    """DPO loss (β=0.1, reference = the initial model) of ``model`` on 16 eval-split pairs."""
    import torch.nn.functional as F

    from ptlab.trainer import modeling
    from ptlab.trainer.batching import encode_record, pad
    from ptlab.trainer.domains import get_domain

    tok = modeling.load_tokenizer(model_dir)
    dom = get_domain("arith")
    pairs = dom.given_pairs(dom.items("eval", 16, seed=0))
    ex = [encode_record(tok, {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}, "paired", 256)
          for p in pairs]
    both = pad([e["chosen"] for e in ex] + [e["rejected"] for e in ex], tok.pad_token_id)
    with torch.no_grad():
        ref = modeling.load_model(model_dir)
        h = ((modeling.token_logps(model.eval(), both.ids, both.attn)
              - modeling.token_logps(ref, both.ids, both.attn)) * both.mask).sum(-1)
    return float(-F.logsigmoid(BETA * (h[:16] - h[16:])).mean())


def row(name: str, ours_s: float, baseline: str, base_s: float, target: float | None, details: dict) -> dict:
    return {"name": name, "ours_s": ours_s, "baseline": baseline, "baseline_s": base_s,
            "ratio": ours_s / base_s if base_s else None, "target": target, "details": details}


def bench_step(model: str, root: Path) -> list[dict]:
    out = []
    for algorithm in ("dpo", "sft"):
        cache = root / f"cache-{algorithm}"
        ours(model, algorithm, 2, cache)  # warm the reference cache and code paths
        ours_steps: list[float] = []
        bare_steps: list[float] = []
        for _ in range(REPEATS):
            ours_steps += ours(model, algorithm, STEPS, cache)[1]
            bare_steps += bare(model, algorithm, STEPS, cache)
        o, b = statistics.median(ours_steps), statistics.median(bare_steps)
        out.append(row(f"{algorithm}_step_vs_bare_loop", o, "bare PyTorch loop", b, 1.05,
                       {"steps": STEPS, "repeats": REPEATS, "batch": BATCH, "dtype": "float32",
                        "gradient_checkpointing": False, "model_params": "~1M random Qwen2",
                        "threads": torch.get_num_threads()}))
    return out


def bench_trl(model: str, root: Path) -> list[dict]:
    runs_ours, runs_warm, runs_trl, steps_ours, steps_trl, losses = [], [], [], [], [], []
    for i in range(REPEATS):
        t_ours, s_ours, m_ours = ours(model, "dpo", STEPS, root / f"cold-{i}")  # cold cache
        t_trl, s_trl, m_trl = trl_dpo(model, STEPS)
        runs_warm.append(ours(model, "dpo", STEPS, root / f"cold-{i}")[0])  # the study's other runs
        runs_ours.append(t_ours)
        runs_trl.append(t_trl)
        steps_ours += s_ours
        steps_trl += s_trl
        losses.append((heldout_dpo_loss(m_ours, model), heldout_dpo_loss(m_trl, model)))
    details = {"steps": STEPS, "repeats": REPEATS, "batch": BATCH, "lr": LR, "beta": BETA,
               "dtype": "float32", "gradient_checkpointing": False, "bf16": False,
               "trl_precompute_ref_log_probs": False, "ours_reference_cache": "cold (computed in the run)",
               "heldout_loss_ours_trl": losses[-1],
               "heldout_loss_abs_diff": abs(losses[-1][0] - losses[-1][1])}
    warm = {**details, "ours_reference_cache": "warm (another run of the study computed it)"}
    return [
        row("dpo_run_vs_trl", statistics.median(runs_ours), "TRL DPOTrainer", statistics.median(runs_trl), 0.75, details),
        row("dpo_run_warm_cache_vs_trl", statistics.median(runs_warm), "TRL DPOTrainer",
            statistics.median(runs_trl), 0.75, warm),
        row("dpo_step_vs_trl", statistics.median(steps_ours), "TRL DPOTrainer",
            statistics.median(steps_trl), 0.75, details),
    ]


def bench_refcache(model: str, root: Path) -> list[dict]:
    from ptlab.trainer import refcache

    names = ["dpo", "ipo", "cdpo", "robust_dpo", "hinge"]
    before = refcache.STATS["forward_passes"]
    start = time.perf_counter()
    per_run = []
    for name in names:
        b = refcache.STATS["forward_passes"]
        ours(model, name, 1, root / "study-cache")
        per_run.append(refcache.STATS["forward_passes"] - b)
    total = refcache.STATS["forward_passes"] - before
    one = per_run[0]
    return [{"name": "refcache_5_algorithm_study_reference_forwards", "ours_s": float(total),
             "baseline": "one reference pass per run (5 runs)", "baseline_s": float(5 * one),
             "ratio": total / (5 * one), "target": 0.2,
             "details": {"algorithms": names, "forwards_per_run": per_run,
                         "unit": "reference forward passes (not seconds)",
                         "wall_s": time.perf_counter() - start}}]


def rss_child(mode: str, model: str, cache: str) -> None:
    """Child process: one DPO run (ours with the cache in ``cache``, or TRL's), or only the
    imports both need (``imports``); prints its own peak RSS in KiB as the last line."""
    if mode == "ours":
        ours(model, "dpo", 3, Path(cache))
    elif mode == "trl":
        trl_dpo(model, 3)
    else:
        import transformers  # noqa: F401
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss_mb(mode: str, model: str, cache: Path) -> float:
    done = subprocess.run([sys.executable, __file__, "rss-child", mode, model, str(cache)], check=True,
                          capture_output=True, text=True, timeout=1800)
    return int(done.stdout.strip().splitlines()[-1]) / 1024


def bench_rss(root: Path) -> list[dict]:
    model = make_model(root / "s4-shape", S4)
    cache = root / "rss-cache"
    peak_rss_mb("ours", model, cache)  # warm the reference cache
    ours_mb, trl_mb = peak_rss_mb("ours", model, cache), peak_rss_mb("trl", model, cache)
    imports_mb = peak_rss_mb("imports", model, cache)
    return [row("dpo_peak_rss_warm_cache_vs_trl", ours_mb, "TRL DPOTrainer (policy + reference)", trl_mb, 0.7,
                {"unit": "MiB peak RSS (not seconds)", "model": "random init of zoo s4 shape (~17M params)",
                 "steps": 3, "batch": BATCH, "dtype": "float32",
                 "torch_transformers_import_mib": round(imports_mb, 1),
                 "above_imports_ratio": round((ours_mb - imports_mb) / (trl_mb - imports_mb), 3)})]


def main(which: list[str]) -> None:
    results: list[dict] = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_model(root / "small", SMALL)
        new: list[dict] = []
        if "step" in which:
            new += bench_step(model, root)
        if "trl" in which:
            new += bench_trl(model, root)
        if "refcache" in which:
            new += bench_refcache(model, root)
        if "rss" in which:
            new += bench_rss(root)
    names = {r["name"] for r in new}
    results = [r for r in results if r["name"] not in names] + new
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for r in new:
        print(f"{r['name']}: ours {r['ours_s']:.4g} vs {r['baseline']} {r['baseline_s']:.4g} "
              f"→ ratio {r['ratio']:.3f} (target {r['target']})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["rss-child"]:
        rss_child(*sys.argv[2:5])
    else:
        main(sys.argv[1:] or ["step", "trl", "refcache", "rss"])
