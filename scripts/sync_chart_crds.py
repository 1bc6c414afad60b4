"""Copy the generated CRDs (crds/*.yaml) into the Helm chart (helm/ptlab/crds/).

    python scripts/sync_chart_crds.py           # write
    python scripts/sync_chart_crds.py --check   # exit 1 listing files that drifted
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE, TARGET = ROOT / "crds", ROOT / "helm" / "ptlab" / "crds"


def drift() -> list[str]:
    """Chart CRD files that are missing, stale, or not generated anymore."""
    src = {p.name: p.read_text() for p in SOURCE.glob("*.yaml")}
    dst = {p.name: p.read_text() for p in TARGET.glob("*.yaml")}
    return sorted(n for n in src.keys() | dst.keys() if src.get(n) != dst.get(n))


def sync() -> list[str]:
    """Make helm/ptlab/crds/ equal to crds/; returns the names written or removed."""
    changed = drift()
    TARGET.mkdir(parents=True, exist_ok=True)
    for name in changed:
        src, dst = SOURCE / name, TARGET / name
        if src.exists():
            dst.write_text(src.read_text())
        else:
            dst.unlink()
    return changed


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = drift()
        for name in stale:
            print(f"helm/ptlab/crds/{name} differs from crds/{name}; run scripts/sync_chart_crds.py")
        return 1 if stale else 0
    for name in sync():
        print(f"synced {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
