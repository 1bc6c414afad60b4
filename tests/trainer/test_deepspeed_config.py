"""The DeepSpeed config built from ``resources.deepspeed`` (pure; the GPU-only offload included)."""

from __future__ import annotations

import pytest
import torch

from ptlab.api.models import DeepSpeedSpec, TrainingSpec
from ptlab.errors import UserError
from ptlab.trainer.distributed import deepspeed_config

TRAINING = TrainingSpec(lr=3e-4, weight_decay=0.01, max_grad_norm=0.5)


def test_zero3_shards_from_the_threshold_and_keeps_torch_adam_on_cpu() -> None:
    cfg = deepspeed_config(TRAINING, DeepSpeedSpec(zero_stage=3, persistence_threshold=0), 4, 2, torch.float32, False)
    assert cfg["zero_optimization"] == {"stage": 3, "stage3_param_persistence_threshold": 0}
    assert cfg["train_batch_size"] == 8 and cfg["gradient_accumulation_steps"] == 4
    assert cfg["gradient_clipping"] == 0.5
    assert cfg["optimizer"]["params"] == {"lr": 3e-4, "weight_decay": 0.01}
    assert cfg["optimizer"]["torch_adam"] is True
    assert cfg["bf16"] == {"enabled": False}


def test_zero1_has_no_stage3_keys() -> None:
    cfg = deepspeed_config(TRAINING, DeepSpeedSpec(zero_stage=1), 1, 2, torch.bfloat16, False)
    assert cfg["zero_optimization"] == {"stage": 1}
    assert cfg["bf16"] == {"enabled": True}


def test_offload_on_gpu_moves_optimizer_and_zero3_parameters() -> None:
    cfg = deepspeed_config(TRAINING, DeepSpeedSpec(zero_stage=3, offload=True), 1, 8, torch.bfloat16, True)
    zero = cfg["zero_optimization"]
    assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_param"]["device"] == "cpu"
    assert cfg["optimizer"]["torch_adam"] is False  # DeepSpeedCPUAdam steps the offloaded state
    zero2 = deepspeed_config(TRAINING, DeepSpeedSpec(zero_stage=2, offload=True), 1, 8, torch.bfloat16, True)
    assert "offload_param" not in zero2["zero_optimization"]
    assert zero2["zero_optimization"]["offload_optimizer"]["device"] == "cpu"


def test_offload_without_gpus_is_a_one_line_error_naming_the_field() -> None:
    with pytest.raises(UserError) as err:
        deepspeed_config(TRAINING, DeepSpeedSpec(zero_stage=3, offload=True), 1, 2, torch.float32, False)
    assert "resources.deepspeed.offload" in str(err.value) and "\n" not in str(err.value)
