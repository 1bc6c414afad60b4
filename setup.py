"""Maps the design's top-level folders to namespaced imports (metadata lives in pyproject.toml).

`operator/` must never be importable as `operator` (it would shadow the standard library), so
every folder is installed under `ptlab.*`: algorithms/ -> ptlab.algorithms, trainer_image/ ->
ptlab.trainer, operator/ -> ptlab.operator. Subpackages (folders with __init__.py) follow.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "ptlab": "ptlab",
    "ptlab.algorithms": "algorithms",
    "ptlab.trainer": "trainer_image",
    "ptlab.operator": "operator",
}

packages = [
    name
    for prefix, folder in FOLDERS.items()
    for name in [prefix, *(f"{prefix}.{sub}" for sub in find_packages(folder))]
]

setup(packages=packages, package_dir=FOLDERS)
