"""Train a GHN over sampled architectures of a space, and save / load it with a manifest naming the space.

Why sampled architectures: a GHN must emit good weights for cells it never saw, so every step draws a
few cells uniformly from the space (cells with no path from input to output are skipped: their output
is constant and teaches nothing) and a batch of training data, and the cross-entropy of every cell's
network with generated weights, averaged, is what Adam lowers (cosine learning-rate decay).

A GHN directory holds `ghn.pt` (the GHN's `state_dict`, loaded with `weights_only=True`) and
`manifest.json` (space name and a fingerprint of its decisions, data spec and digest, input spec,
network sizes, settings, seed, steps, seconds, loss and validation figures). Training writes into a
hidden temporary folder beside `--out` and renames it into place at the end, so a kill leaves no
half-written directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import check_keys
from nas.accuracy.training import PreparedData, Recipe, deterministic, load_prepared, save_weights
from nas.spaces.base import Arch, SearchSpace

MANIFEST = "manifest.json"
WEIGHTS = "ghn.pt"
FORMAT = 1


class HypernetError(ValueError):
    """A GHN directory, checkpoint or setting that cannot be used (one line naming it and what was expected)."""


@dataclass(frozen=True)
class GHNSettings:
    """The GHN, its training and the networks it generates for.

    `hidden`: embedding size; `rounds`: forward-backward message-passing rounds; `lr`: Adam's peak
    learning rate (cosine decay to 0); `weight_decay`; `batch_size`: images per step; `archs_per_step`:
    cells sampled per step; `grad_clip`: max gradient norm (0 = off); `channels`, `cells_per_stage`:
    the generated networks' width and depth, None = the space's own (16 and 5 for `nb201`). Why the
    space's by default: its `params` / `flops` objectives and stand-alone training describe that network,
    and on digits stand-alone training of that size ranks NB201 cells while a tiny one (8 channels, one
    cell per stage) does not (`benchmarks/results/ghn.md`); smaller sizes train faster and stay available.
    `max_train`, `input_size`: the data view (as the training recipe's keys; 500 training digits at their
    native 8 x 8 keep the task discriminative and match `Recipe()`); `threads`: torch intra-op threads.
    """

    hidden: int = 32
    rounds: int = 1
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    archs_per_step: int = 4
    grad_clip: float = 5.0
    channels: int | None = None
    cells_per_stage: int | None = None
    max_train: int | None = 500
    input_size: int | None = None
    threads: int = 1

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> GHNSettings:
        """Settings from `--option` pairs or a manifest; unknown keys and bad values raise one line."""
        data = check_keys(cls, data, "GHN option", HypernetError)
        settings = cls(**data)
        for name, low in (("hidden", 1), ("rounds", 0), ("batch_size", 2), ("archs_per_step", 1), ("threads", 1)):
            v = getattr(settings, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise HypernetError(f"GHN option {name} must be an integer >= {low}, got {v!r}")
        for name in ("lr", "weight_decay", "grad_clip"):
            v = getattr(settings, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise HypernetError(f"GHN option {name} must be a number {'> 0' if name == 'lr' else '>= 0'}, got {v!r}")
        for name, low in (("max_train", 2), ("input_size", 1), ("channels", 1), ("cells_per_stage", 1)):
            v = getattr(settings, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
                raise HypernetError(f"GHN option {name} must be an integer >= {low} or null, got {v!r}")
        return settings

    def network_size(self, space: SearchSpace) -> tuple[int, int]:
        """`(channels, cells_per_stage)` of the generated networks: these settings', else `space`'s."""
        channels = self.channels if self.channels is not None else int(space.channels)  # type: ignore[attr-defined]
        cells = self.cells_per_stage if self.cells_per_stage is not None else int(space.cells_per_stage)  # type: ignore[attr-defined]
        return channels, cells

    def for_space(self, space: SearchSpace) -> GHNSettings:
        """These settings with the network size filled in from `space` where left None, so a manifest
        records the size the GHN was trained for."""
        channels, cells = self.network_size(space)
        return replace(self, channels=channels, cells_per_stage=cells)

    def recipe(self) -> Recipe:
        """The data view (splits, size, normalisation) as a training recipe, so stand-alone training and
        scoring see the same split."""
        return Recipe(max_train=self.max_train, input_size=self.input_size, threads=self.threads)


def space_fingerprint(space: SearchSpace) -> str:
    """A digest of the space's decisions and choices: what a checkpoint's graphs were drawn from."""
    text = json.dumps([[d.name, [str(c) for c in d.choices]] for d in space.decisions])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def nb201_ops(space: SearchSpace) -> tuple[str, ...]:
    """The op names of an NB201-family space (one line when the space is of another family)."""
    from nas.spaces.nb201 import NB201Space

    if not isinstance(space, NB201Space):
        raise HypernetError(f"the GHN generates NB201 cell networks; space {space.name!r} is not of family nb201")
    return space.ops


def make_ghn(space: SearchSpace, settings: GHNSettings, input_spec: Any) -> Any:
    """An untrained GHN for `space`'s ops and the data's input (channels, classes); network size from
    `settings`, or the space's where they leave it None."""
    from nas.accuracy.hypernet.model import GraphHyperNetwork

    channels, cells = settings.network_size(space)
    return GraphHyperNetwork(
        nb201_ops(space), in_channels=input_spec.channels, classes=input_spec.classes, channels=channels,
        cells_per_stage=cells, hidden=settings.hidden, rounds=settings.rounds,
    )


class ArchNetworks:
    """Per architecture: its graph, the network the GHN generates for, and that network's slots.

    Why a cache: a search and a benchmark score many architectures, some repeatedly; building a network
    and reading its parameter layout costs more than generating its weights. Entries are keyed on the
    cell's edge ops; at most `size` are kept (oldest dropped first).
    """

    def __init__(self, space: SearchSpace, ghn: Any, size: int = 2048) -> None:
        self.space, self.ghn, self.size = space, ghn, size
        self._entries: dict[tuple[str, ...], tuple[Any, Any, list[Any]]] = {}

    def get(self, arch: Arch) -> tuple[Any, Any, list[Any]]:
        from nas.accuracy.hypernet.model import network_slots

        ops = tuple(self.space.edge_ops(arch))  # type: ignore[attr-defined]
        entry = self._entries.get(ops)
        if entry is None:
            net = self.ghn.build(ops)
            entry = (self.space.graph(arch), net, network_slots(net, [d.name for d in self.space.decisions]))
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[ops] = entry
        return entry


def has_path(space: SearchSpace, arch: Arch) -> bool:
    """Whether the cell's graph links its input to its output (else its network's output is constant)."""
    import networkx as nx

    return bool(nx.has_path(space.graph(arch), "input", "output"))


def score(ghn: Any, networks: ArchNetworks, arch: Arch, x: Any, y: Any) -> float:
    """Accuracy (%) of `arch`'s network with generated weights on `x`, `y` (one batch, batch statistics)."""
    import torch

    from nas.accuracy.hypernet.model import run_network

    graph, net, slots = networks.get(arch)
    with torch.no_grad():
        params = ghn.generate(graph, slots)
        return 100.0 * float((run_network(net, params, x).argmax(1) == y).float().mean())


def validation_figures(ghn: Any, space: SearchSpace, data: PreparedData, *, n: int = 20, seed: int = 0) -> dict[str, float]:
    """Accuracy with generated weights on the validation split of `n` connected cells drawn with `seed`."""
    rng = np.random.default_rng([seed, 1])
    networks = ArchNetworks(space, ghn)
    archs: list[Arch] = []
    while len(archs) < n:
        arch = space.sample(rng)
        if has_path(space, arch):
            archs.append(arch)
    ghn.eval()
    accs = np.array([score(ghn, networks, a, data.val_x, data.val_y) for a in archs])
    return {"archs": n, "mean_accuracy": round(float(accs.mean()), 3), "min_accuracy": round(float(accs.min()), 3), "max_accuracy": round(float(accs.max()), 3)}


@dataclass
class TrainingLog:
    """Mean training loss over the first and the last tenth of the steps, and every step's loss."""

    first_loss: float
    last_loss: float
    losses: list[float]


def train_steps(ghn: Any, space: SearchSpace, data: PreparedData, settings: GHNSettings, steps: int, *, seed: int, progress: Callable[[int, int], None] | None = None) -> TrainingLog:
    """Train `ghn` for `steps` steps in place (see the module docstring); deterministic given `seed`."""
    import torch
    import torch.nn.functional as F

    from nas.accuracy.hypernet.model import run_network

    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    networks = ArchNetworks(space, ghn)
    optimizer = torch.optim.Adam(ghn.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    losses: list[float] = []
    with deterministic(settings.threads):
        ghn.train()
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * 0.5 * (1 + math.cos(math.pi * step / max(1, steps)))
            archs: list[Arch] = []
            while len(archs) < settings.archs_per_step:
                arch = space.sample(rng)
                if has_path(space, arch):
                    archs.append(arch)
            rows = torch.randint(0, len(data.train_y), (settings.batch_size,), generator=generator)
            x, y = data.train_x[rows], data.train_y[rows]
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for arch in archs:
                graph, net, slots = networks.get(arch)
                loss = F.cross_entropy(run_network(net, ghn.generate(graph, slots), x), y) / len(archs)
                loss.backward()
                total += float(loss.detach())
            if not math.isfinite(total) or total > 1e4:
                raise HypernetError(f"GHN training diverged: loss {total:.4g} at step {step + 1}; lower the option lr (now {settings.lr:g})")
            if settings.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(ghn.parameters(), settings.grad_clip)
            optimizer.step()
            losses.append(total)
            if progress is not None:
                progress(step + 1, steps)
    tenth = max(1, steps // 10)
    return TrainingLog(float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])), losses)


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise HypernetError(f"--out {out} exists and is not an empty directory; choose a new --out")


def train_ghn(
    space: SearchSpace, data_spec: str, out: str | Path, settings: GHNSettings, *, steps: int, seed: int = 0, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Train a GHN on `data_spec` over `space` and write `out/ghn.pt` and `out/manifest.json`; the manifest.

    Raises:
        HypernetError: `out` not empty, a space of another family, bad settings, or diverging training.
    """
    import torch

    out = Path(out)
    _prepare_out(out)
    if not isinstance(steps, int) or steps < 1:
        raise HypernetError(f"GHN steps must be an integer >= 1, got {steps!r}")
    nb201_ops(space)
    settings = settings.for_space(space)
    data = load_prepared(data_spec, settings.recipe())
    with deterministic(settings.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ghn = make_ghn(space, settings, data.input_spec)
    start = time.perf_counter()
    log = train_steps(ghn, space, data, settings, steps, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    with deterministic(settings.threads):
        figures = validation_figures(ghn, space, data, seed=seed)
    manifest = {
        "format": FORMAT, "kind": "ghn", "space": {"name": space.name, "fingerprint": space_fingerprint(space), "ops": list(nb201_ops(space))},
        "data": data_spec, "data_sha256": data.description["sha256"], "input_spec": data.input_spec.describe(),
        "network": {"family": "nb201", "channels": settings.channels, "cells_per_stage": settings.cells_per_stage, "input": data.input_spec.describe()},
        "settings": asdict(settings), "seed": seed, "steps": steps, "seconds": round(seconds, 2),
        "training": {"first_loss": round(log.first_loss, 4), "last_loss": round(log.last_loss, 4)}, "validation": figures,
        "parameters": sum(p.numel() for p in ghn.parameters()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_weights(ghn.state_dict(), tmp / WEIGHTS)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _prepare_out(out)  # someone may have written there while this trained
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a GHN directory (one-line `HypernetError` when the folder or manifest is missing or bad)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise HypernetError(f"GHN directory {directory} does not exist; expected a directory written by `nas hypernet train`")
    path = directory / MANIFEST
    if not path.is_file():
        raise HypernetError(f"{directory} holds no trained GHN (no {MANIFEST}); train one with `nas hypernet train --out {directory}`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HypernetError(f"{path} is not a GHN manifest ({str(exc).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "ghn" or manifest.get("format") != FORMAT:
        raise HypernetError(f"{path} is not a GHN manifest of format {FORMAT} (kind ghn)")
    return manifest


def check_space(manifest: Mapping[str, Any], space: SearchSpace, directory: str | Path) -> None:
    """Refuse a GHN trained for another space (name or decisions): its graphs and decoders would not fit."""
    made_for = manifest.get("space") if isinstance(manifest.get("space"), dict) else {}
    if made_for.get("name") != space.name or made_for.get("fingerprint") != space_fingerprint(space):
        raise HypernetError(
            f"GHN {directory} was trained for space {made_for.get('name')!r} (fingerprint {made_for.get('fingerprint')}); "
            f"this run's space is {space.name!r} (fingerprint {space_fingerprint(space)})"
        )


def load_ghn(directory: str | Path, space: SearchSpace, input_spec: Any) -> tuple[Any, dict[str, Any]]:
    """The trained GHN of `directory` (in eval mode) and its manifest, after checking it was made for
    `space` and for data of `input_spec`.

    Raises:
        HypernetError: no directory, manifest or weights; another space; data of another shape.
    """
    import torch

    directory = Path(directory)
    manifest = read_manifest(directory)
    check_space(manifest, space, directory)
    if manifest.get("input_spec") != input_spec.describe():
        raise HypernetError(f"GHN {directory} was trained on inputs {manifest.get('input_spec')}, but this data is {input_spec.describe()}")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise HypernetError(f"GHN {directory} has a manifest but no {WEIGHTS}; train it again with `nas hypernet train`")
    settings = GHNSettings.from_mapping(manifest.get("settings"))
    ghn = make_ghn(space, settings, input_spec)
    try:
        ghn.load_state_dict(torch.load(weights, weights_only=True))
    except (RuntimeError, KeyError) as exc:
        raise HypernetError(f"{weights} does not match its manifest's GHN ({str(exc).splitlines()[0]})") from None
    return ghn.eval(), manifest


__all__ = [
    "ArchNetworks", "GHNSettings", "HypernetError", "TrainingLog", "check_space", "load_ghn", "make_ghn", "read_manifest", "score", "space_fingerprint", "train_ghn", "train_steps",
]
