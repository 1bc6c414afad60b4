"""Processes and the optimisation engine: single process, DDP, or DeepSpeed ZeRO 0–3.

Under ZeRO-3 every rank holds a shard of each parameter: code that reads weights outside the
engine's forward (moving references, vLLM weight syncs, the final evaluation on rank 0) does so
inside :meth:`Engine.gathered` or on the plain model :meth:`Engine.export` returns, and HF
``generate`` runs with ``synced_gpus`` (:attr:`Engine.sharded`) so that ranks generating
different lengths still run the same number of forward passes.

Launch with ``torchrun --nproc_per_node=K -m ptlab.cli.main train RUN.yaml`` (or the
``ptlab`` script). Each rank sees the whole global batch and trains its slice of it; losses
are normalised by the global batch's denominator, so K processes follow the same loss curve as
one (within float reassociation). Only rank 0 writes files. On CPU the backend is gloo and
DeepSpeed uses ``torch_adam``; :func:`finish` destroys the process group (rank 1 aborts
otherwise).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ptlab.api.models import DeepSpeedSpec, ResourcesSpec, TrainingSpec
from ptlab.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init() -> DistInfo:
    """Join the torchrun job described by the environment (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    info = DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return info


def finish() -> None:
    """Leave the job cleanly (``destroy_process_group``)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_sum(value: Tensor) -> Tensor:
    """Sum a tensor over ranks (a copy; the input is untouched)."""
    out = value.detach().clone()
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def lr_lambda(training: TrainingSpec, total_steps: int) -> Any:
    """Multiplier of the peak LR at step s: linear warmup, then constant/linear/cosine to 0."""
    warmup, schedule = training.warmup_steps, training.schedule

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        if schedule == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class Engine:
    """Optimizer + schedule around a model; subclasses differ in how gradients are combined.

    ``backward(share)`` takes this micro-batch's share of the *global* mean loss; the engine
    rescales it for its gradient averaging. ``step()`` clips, steps and returns the gradient
    norm; a non-finite norm skips the update (the recipe then stops the run).
    """

    sharded = False
    """Parameters are partitioned across ranks (ZeRO-3)."""

    def __init__(self, model: nn.Module, training: TrainingSpec, total_steps: int, info: DistInfo):
        self.module = model
        self.model: nn.Module = model
        self.info = info
        self.training = training
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=training.lr, weight_decay=training.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda(training, total_steps)
        )

    def backward(self, share: Tensor) -> None:
        (share * self.info.world_size).backward()

    def step(self) -> float:
        params = [p for p in self.module.parameters() if p.requires_grad]
        norm = float(torch.nn.utils.clip_grad_norm_(params, self.training.max_grad_norm))
        if math.isfinite(norm):
            self.optimizer.step()
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def gathered(self) -> contextlib.AbstractContextManager[nn.Module]:
        """The module with every parameter whole, for reading (a collective under ZeRO-3)."""
        return contextlib.nullcontext(self.module)

    def export(self, rebuild: Callable[[], nn.Module]) -> nn.Module:
        """The trained model as a plain module with whole weights on rank 0 (collective).

        ``rebuild`` makes a fresh module of the same architecture; only ZeRO-3 needs it.
        """
        return self.module

    def save(self, directory: Path) -> None:
        """Model, optimizer and scheduler state (rank 0 writes)."""
        if self.info.is_main:
            state = {
                "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
            }
            torch.save(state, directory / "engine.pt")

    def load(self, directory: Path) -> None:
        state = torch.load(directory / "engine.pt", weights_only=False)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


class DDPEngine(Engine):
    """torch DistributedDataParallel: gradients averaged over ranks during backward."""

    def __init__(self, model: nn.Module, training: TrainingSpec, total_steps: int, info: DistInfo):
        super().__init__(model, training, total_steps, info)
        self.model = nn.parallel.DistributedDataParallel(model)


def deepspeed_config(
    training: TrainingSpec, zero: DeepSpeedSpec, micro_steps: int, world_size: int,
    dtype: torch.dtype, on_gpu: bool,
) -> dict[str, Any]:
    """The DeepSpeed config of a run: ZeRO stage, offload, accumulation, clipping, AdamW."""
    if zero.offload and not on_gpu:
        raise UserError(
            "resources.deepspeed.offload=true needs GPUs (there is no device memory to free on CPU)",
            "set resources.deepspeed.offload: false or request resources.gpus",
        )
    optimization: dict[str, Any] = {"stage": zero.zero_stage}
    if zero.zero_stage == 3:
        optimization["stage3_param_persistence_threshold"] = zero.persistence_threshold
    if zero.offload and zero.zero_stage >= 1:
        optimization["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if zero.offload and zero.zero_stage == 3:
        optimization["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": 1,
        "gradient_accumulation_steps": micro_steps,
        "train_batch_size": micro_steps * world_size,
        "gradient_clipping": training.max_grad_norm,
        "zero_optimization": optimization,
        "bf16": {"enabled": dtype == torch.bfloat16},
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": training.lr, "weight_decay": training.weight_decay},
            # DeepSpeed's fused CPU Adam runs the offloaded optimizer; torch's Adam otherwise (CPU)
            "torch_adam": not zero.offload,
        },
        "steps_per_print": 10**9,
    }


class DeepSpeedEngine(Engine):
    """DeepSpeed ZeRO stage 0–3; the gradient-accumulation boundary is DeepSpeed's."""

    def __init__(
        self, model: nn.Module, training: TrainingSpec, total_steps: int, info: DistInfo,
        zero: DeepSpeedSpec, micro_steps: int, dtype: torch.dtype,
    ):
        import deepspeed

        self.module = model
        self.info = info
        self.training = training
        self.micro_steps = micro_steps
        config = deepspeed_config(training, zero, micro_steps, info.world_size, dtype, torch.cuda.is_available())
        factor = lr_lambda(training, total_steps)
        self.ds, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            config=config,
            lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, factor),
        )
        self.model = self.ds
        self.sharded = zero.zero_stage == 3

    @contextlib.contextmanager
    def gathered(self) -> Iterator[nn.Module]:
        if not self.sharded:
            yield self.module
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(self.module.parameters()), modifier_rank=None):
            yield self.module

    def export(self, rebuild: Callable[[], nn.Module]) -> nn.Module:
        if not self.sharded:
            return self.module
        with self.gathered() as whole:
            state = {k: v.detach().clone() for k, v in whole.state_dict().items()} if self.info.is_main else None
        if state is None:
            return self.module  # other ranks never evaluate or save
        model = rebuild()
        model.load_state_dict(state)
        return model

    def backward(self, share: Tensor) -> None:
        # DeepSpeed divides by gradient_accumulation_steps and averages over ranks.
        self.ds.backward(share * self.info.world_size * self.micro_steps)
        self.ds.step()  # only updates at the accumulation boundary

    def step(self) -> float:
        norm = self.ds.get_global_grad_norm()
        return float(norm) if norm is not None else 0.0

    def save(self, directory: Path) -> None:
        self.ds.save_checkpoint(str(directory), tag="ds")

    def load(self, directory: Path) -> None:
        self.ds.load_checkpoint(str(directory), tag="ds")


def build_engine(
    model: nn.Module,
    training: TrainingSpec,
    resources: ResourcesSpec,
    total_steps: int,
    info: DistInfo,
    micro_steps: int,
    dtype: torch.dtype = torch.float32,
) -> Engine:
    """DeepSpeed when requested and running under torchrun, else DDP (K>1) or plain (K=1)."""
    if info.world_size > 1 and resources.deepspeed is not None:
        try:
            return DeepSpeedEngine(model, training, total_steps, info, resources.deepspeed, micro_steps, dtype)
        except ImportError as err:
            warnings.warn(f"DeepSpeed unavailable ({err}); falling back to DDP", stacklevel=2)
    if info.world_size > 1:
        return DDPEngine(model, training, total_steps, info)
    return Engine(model, training, total_steps, info)
