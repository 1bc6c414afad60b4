"""Budget accounting: train tokens, generated tokens, estimated FLOPs, steps.

FLOPs follow the usual dense-transformer estimate (Kaplan et al. 2020, arXiv:2001.08361):
``6·N`` per trained token (forward + backward) and ``2·N`` per generated token (forward only),
N = parameters of the full network. Cached reference forwards are shared by a study and not
charged to any run (their count is recorded separately). A run never exceeds its budget: a
step is taken only if it fits (:meth:`Budget.fits`), so a steps budget stops exactly and a
tokens/FLOPs budget stops at the last step that fits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ptlab.api.models import Budget as BudgetSpec


@dataclass
class Budget:
    """Counters of one run (saved in checkpoints, reported in result.json)."""

    n_params: int
    steps: int = 0
    train_tokens: int = 0
    generated_tokens: int = 0

    @property
    def flops(self) -> float:
        """``6·N·train_tokens + 2·N·generated_tokens``."""
        return 6.0 * self.n_params * self.train_tokens + 2.0 * self.n_params * self.generated_tokens

    def step_flops(self, train_tokens: int, generated_tokens: int = 0) -> float:
        """FLOPs of one step with these token counts."""
        return 6.0 * self.n_params * train_tokens + 2.0 * self.n_params * generated_tokens

    def fits(self, limit: BudgetSpec, train_tokens: int, generated_tokens: int = 0) -> bool:
        """Whether one more step with these token counts stays within ``limit``.

        Online RL counts generated tokens toward a tokens budget (see the API docs).
        """
        if limit.steps is not None:
            return self.steps + 1 <= limit.steps
        if limit.tokens is not None:
            used = self.train_tokens + self.generated_tokens + train_tokens + generated_tokens
            return used <= limit.tokens
        assert limit.flops is not None
        return self.flops + self.step_flops(train_tokens, generated_tokens) <= limit.flops

    def add(self, train_tokens: int, generated_tokens: int = 0) -> None:
        """Count one optimizer step."""
        self.steps += 1
        self.train_tokens += train_tokens
        self.generated_tokens += generated_tokens

    def total_steps(self, limit: BudgetSpec, tokens_per_step: float) -> int:
        """Expected number of steps (for schedules and progress): exact for a steps budget."""
        if limit.steps is not None:
            return limit.steps
        per_step = max(tokens_per_step, 1.0)
        if limit.tokens is not None:
            return max(1, int(limit.tokens // per_step))
        assert limit.flops is not None
        return max(1, int(limit.flops // self.step_flops(int(per_step))))

    def as_dict(self) -> dict[str, float]:
        """JSON-ready counters including FLOPs."""
        return {**asdict(self), "flops": self.flops}
