"""Hypothesis profile of the fuzz suites: deterministic, 1,000 cases per test, no deadline.

The profile is registered, not loaded, so other hypothesis tests keep their own settings;
each fuzz test applies it with ``@settings(FUZZ)`` (see ``tests/fuzz/support.py``).
``PTLAB_FUZZ_EXAMPLES`` lowers the count for a quick local pass (CI uses the default).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ptlab-fuzz",
    derandomize=True,
    database=None,
    max_examples=int(os.environ.get("PTLAB_FUZZ_EXAMPLES", "1000")),
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
    ],
)
