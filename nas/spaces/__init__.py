"""Search spaces: the protocol, the families, and the registry of named spaces from `search_spaces/*.yaml`.

A space *family* is code (a `SearchSpace` subclass); a named *space* is data: a YAML file whose `family`
key picks the class and whose other keys configure it. `get_space("nb201")` or `get_space("my.yaml")`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from nas._resources import shipped_dir
from nas.registry import Registry, UnknownNameError
from nas.spaces.base import Arch, Decision, InvalidArchError, LayerSignature, SearchSpace
from nas.spaces.darts import DartsSpace
from nas.spaces.fbnet import FBNetSpace
from nas.spaces.nb201 import NB201Space
from nas.spaces.ofa_mbv3 import OFAMobileNetV3Space

__all__ = [
    "Arch",
    "DartsSpace",
    "Decision",
    "FBNetSpace",
    "InvalidArchError",
    "LayerSignature",
    "NB201Space",
    "OFAMobileNetV3Space",
    "SearchSpace",
    "families",
    "get_space",
    "space_names",
    "spaces_dir",
]

families: Registry[type[SearchSpace]] = Registry("space family")
families.add("nb201", NB201Space)
families.add("fbnet", FBNetSpace)
families.add("ofa_mbv3", OFAMobileNetV3Space)
families.add("darts", DartsSpace)


def spaces_dir() -> Path:
    """Where the declarative space definitions live: `$NAS_SPACES_DIR`, else `search_spaces/` as installed
    (`nas._resources`: package data of a wheel, or the source tree's folder)."""
    env = os.environ.get("NAS_SPACES_DIR")
    return Path(env) if env else shipped_dir("spaces")


def _read_definition(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            config = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read space definition {path}: {exc}".splitlines()[0]) from None
    if not isinstance(config, dict) or "family" not in config:
        raise ValueError(f"space definition {path} must be a mapping with a 'family' key (one of {families.names()})")
    config.setdefault("name", path.stem)
    return config


def space_names() -> list[str]:
    """Names of the spaces defined in `spaces_dir()`."""
    return sorted(p.stem for p in spaces_dir().glob("*.yaml"))


@lru_cache(maxsize=None)
def get_space(name_or_path: str) -> SearchSpace:
    """A space by registered name (`search_spaces/NAME.yaml`) or by the path of a YAML definition."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = spaces_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            raise UnknownNameError(f"unknown search space {name_or_path!r}; known: {', '.join(space_names()) or 'none'}")
    elif not path.is_file():
        raise FileNotFoundError(f"space definition {name_or_path!r} not found")
    config = _read_definition(path)
    return families.get(str(config["family"])).from_config(config)
