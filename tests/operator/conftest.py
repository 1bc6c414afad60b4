"""Operator tests: every test in this folder runs on the server-like kmock (see harness.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.harness import ServerLikeEmulator


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/operator/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.kmock(cls=ServerLikeEmulator))


@pytest.fixture()
def operator_env(k8s_api: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The operator logs in with the test server's kubeconfig; no metrics port; fast studies."""
    monkeypatch.setenv("KUBECONFIG", str(k8s_api.kubeconfig))  # type: ignore[attr-defined]
    monkeypatch.setenv("PTLAB_OPERATOR_METRICS_PORT", "0")
    monkeypatch.setenv("PTLAB_OPERATOR_STUDY_INTERVAL_S", "0.5")
    monkeypatch.setenv("PTLAB_OPERATOR_STUDY_MIN_PASS_S", "0.2")
    monkeypatch.setenv("PTLAB_OPERATOR_IMAGE", "ptlab:test")
    yield
