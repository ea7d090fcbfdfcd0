"""Package layout that pyproject.toml cannot state: the data folders at the repository root are subpackages.

Why: `latency_luts/`, `search_spaces/` and `latency_tables/` stay at the root (where users add a device or a
space), but a non-editable `pip install .` must carry them. setuptools maps each folder to a package
(`nas._luts`, ...), so a wheel holds them under `nas/_luts/` etc.; `nas._resources` finds them there, or in
the source tree for an editable install. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

#: Package name -> root folder; `nas._resources.PACKAGE_DATA` holds the same mapping.
DATA_PACKAGES = {"nas._luts": "latency_luts", "nas._spaces": "search_spaces", "nas._latency_tables": "latency_tables"}

setup(packages=[*find_packages(include=["nas", "nas.*"]), *DATA_PACKAGES], package_dir=DATA_PACKAGES)
