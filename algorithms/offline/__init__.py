"""Offline families: supervised, distillation, reward models, paired, unpaired, reference-free.

Importing this package registers every entry.
"""

from ptlab.algorithms.offline import (  # noqa: F401  (registration side effects)
    distill,
    paired,
    reference_free,
    reward_model,
    supervised,
    unpaired,
)
