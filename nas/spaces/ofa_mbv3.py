"""The Once-for-All MobileNetV3 space: elastic kernel, expand ratio, depth and resolution.

Why its own family: OFA's sub-networks share one supernet, so the space must say exactly which decisions
are alive (a stage of depth 2 switches off its blocks 3 and 4, whose kernel and expand choices then
change nothing), and its strings must match the published latency tables (HELP's `ofa_mbv3`: columns
`ks` (20 kernel sizes), `e` (20 expand ratios), `d` (5 stage depths), `r` (resolution)). The string of
an architecture is those four columns joined by `|`:
`"7 5 5 5 7 7 5 7 5 7 3 7 5 3 7 3 5 3 5 3|6 4 4 6 6 3 4 3 3 6 3 3 3 6 3 4 6 4 3 6|2 2 2 2 3|204"`.

The network is OFA's MobileNetV3 (Cai et al., ICLR 2020; `OFAMobileNetV3`): a 3x3 stem (h-swish), a
fixed first block (depthwise 3x3, ReLU, no expansion), five stages of 2-4 MBConv blocks (1x1 expand,
kxk depthwise, optional squeeze-excite, 1x1 project; residual where shape allows), a 1x1 final expand,
global pooling, a 1x1 feature mix (h-swish, no BN) and a linear classifier. Widths, strides,
activations, squeeze-excite and the resolutions are data (`search_spaces/ofa_mbv3.yaml`); the small
variant (`ofa_mbv3_small.yaml`) trains on digits on a CPU.

Sampling, mutation, neighbours and crossover return canonical architectures (inactive blocks set to the
smallest kernel and expand ratio), so a search never spends a query on a second name of one network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nas.spaces.base import Arch, Choice, Decision, InputSpec, InvalidArchError, LayerPart, LayerSignature, SearchSpace

ACTIVATIONS = ("relu", "h_swish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: to the nearest multiple of `divisor`, never below 90 % of `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class OFAStage:
    """One elastic stage: output `channels`, the stride of its first block, activation, squeeze-excite."""

    channels: int
    stride: int
    act: str
    se: bool

    def __post_init__(self) -> None:
        if self.channels < 1 or self.stride not in (1, 2) or self.act not in ACTIVATIONS:
            raise ValueError(f"OFA stage needs channels >= 1, stride 1 or 2, act in {ACTIVATIONS}; got {self}")


@dataclass(frozen=True)
class OFAMacro:
    """The fixed part of the network (OFA MobileNetV3's defaults: width multiplier 1.0)."""

    stem_channels: int = 16
    stem_stride: int = 2
    first_block_channels: int = 16
    stages: tuple[OFAStage, ...] = (
        OFAStage(24, 2, "relu", False),
        OFAStage(40, 2, "relu", True),
        OFAStage(80, 2, "h_swish", False),
        OFAStage(112, 1, "h_swish", True),
        OFAStage(160, 2, "h_swish", True),
    )
    final_expand: int = 960
    feature_mix: int = 1280
    dropout: float = 0.1

    def __post_init__(self) -> None:
        sizes = (self.stem_channels, self.stem_stride, self.first_block_channels, self.final_expand, self.feature_mix)
        if not self.stages or min(sizes) < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"OFA macro-architecture needs stages, positive sizes and dropout in [0, 1); got {self}")


@dataclass(frozen=True)
class ActiveBlock:
    """One block a sub-network runs: where it sits, its choices and its shapes."""

    stage: int
    index: int
    kernel: int
    expand: int
    in_channels: int
    mid_channels: int
    out_channels: int
    stride: int
    act: str
    se: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def se_channels(self) -> int:
        return make_divisible(self.mid_channels // 4)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _sig(op: str, channels: int, size: int, *, out: int | None = None, kernel: int = 1, stride: int = 1, groups: int = 1, bias: bool = False) -> LayerSignature:
    return LayerSignature(op, (1, channels, size, size), out_channels=channels if out is None else out, kernel=kernel, stride=stride, groups=groups, bias=bias)


def _block_layers(blk: ActiveBlock, size: int) -> tuple[list[LayerSignature], int]:
    """The operators one MBConv block runs on a `size` x `size` map, and its output size."""
    act = {"relu": "relu", "h_swish": "hswish"}[blk.act]
    out = _conv_out(size, blk.kernel, blk.stride)
    layers = []
    if blk.expand != 1:
        layers += [_sig("conv", blk.in_channels, size, out=blk.mid_channels), _sig("bn", blk.mid_channels, size), _sig(act, blk.mid_channels, size)]
    layers += [
        _sig("conv", blk.mid_channels, size, kernel=blk.kernel, stride=blk.stride, groups=blk.mid_channels),
        _sig("bn", blk.mid_channels, out),
        _sig(act, blk.mid_channels, out),
    ]
    if blk.se:
        layers += [
            _sig("global_avgpool", blk.mid_channels, out),
            _sig("conv", blk.mid_channels, 1, out=blk.se_channels, bias=True),
            _sig("relu", blk.se_channels, 1),
            _sig("conv", blk.se_channels, 1, out=blk.mid_channels, bias=True),
            _sig("hsigmoid", blk.mid_channels, 1),
            _sig("mul", blk.mid_channels, out),
        ]
    layers += [_sig("conv", blk.mid_channels, out, out=blk.out_channels), _sig("bn", blk.out_channels, out)]
    if blk.residual:
        layers.append(_sig("add", blk.out_channels, out))
    return layers, out


class OFAMobileNetV3Space(SearchSpace):
    """OFA's MobileNetV3 space (or a YAML variant: widths, strides, choices, resolutions).

    Decisions, in order: `resolution`, then per stage `stageS_depth` followed by `blockBB_kernel` and
    `blockBB_expand` for each of its `max(depths)` blocks (blocks numbered 1..20 over the network, as
    OFA's `ks`/`e` lists).

    Example:
        >>> space = OFAMobileNetV3Space()
        >>> text = "7 5 5 5 7 7 5 7 5 7 3 7 5 3 7 3 5 3 5 3|6 4 4 6 6 3 4 3 3 6 3 3 3 6 3 4 6 4 3 6|2 2 2 2 3|204"
        >>> arch = space.from_string(text)
        >>> arch["stage5_depth"], arch["block17_kernel"], arch["resolution"]
        (3, 5, 204)
        >>> space.to_string(arch) == text
        True
        >>> space.to_string(space.canonical(arch)).split("|")[0]
        '7 5 3 3 7 7 3 3 5 7 3 3 5 3 3 3 5 3 5 3'
    """

    table_columns = ("ks", "e", "d", "r")

    def __init__(
        self,
        name: str = "ofa_mbv3",
        *,
        kernels: Sequence[int] = (3, 5, 7),
        expands: Sequence[int] = (3, 4, 6),
        depths: Sequence[int] = (2, 3, 4),
        resolutions: Sequence[int] = tuple(range(128, 225, 4)),
        macro: OFAMacro | None = None,
        datasets: Mapping[str, Mapping[str, int]] | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.kernels = tuple(sorted(int(k) for k in kernels))
        self.expands = tuple(sorted(int(e) for e in expands))
        self.depths = tuple(sorted(int(d) for d in depths))
        self.resolutions = tuple(sorted(int(r) for r in resolutions))
        for label, values, ok in (
            ("kernels", self.kernels, all(k >= 1 and k % 2 for k in self.kernels)),
            ("expands", self.expands, all(e >= 1 for e in self.expands)),
            ("depths", self.depths, all(d >= 1 for d in self.depths)),
            ("resolutions", self.resolutions, all(r >= 1 for r in self.resolutions)),
        ):
            if not values or len(set(values)) != len(values) or not ok:
                raise ValueError(f"space {name!r}: {label} must be distinct positive values (odd kernels); got {list(values)}")
        if min(self.expands) < 2:
            raise ValueError(f"space {name!r}: expands must be >= 2 (a block at expand 1 has no expand conv to share); got {list(self.expands)}")
        self.macro = macro if macro is not None else OFAMacro()
        self.datasets = {k: dict(v) for k, v in (datasets or {"imagenet": {"num_classes": 1000, "input_size": 224}}).items()}
        self.description = description
        self.max_depth = max(self.depths)
        self.n_blocks = self.max_depth * len(self.macro.stages)
        width = max(2, len(str(self.n_blocks)))
        self._block_names = [f"block{b:0{width}d}" for b in range(1, self.n_blocks + 1)]
        decisions = [Decision("resolution", self.resolutions)]
        for s in range(len(self.macro.stages)):
            decisions.append(Decision(f"stage{s + 1}_depth", self.depths))
            for b in self.stage_blocks(s):
                decisions.append(Decision(f"{self._block_names[b]}_kernel", self.kernels))
                decisions.append(Decision(f"{self._block_names[b]}_expand", self.expands))
        self._decisions = tuple(decisions)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> OFAMobileNetV3Space:
        """A space from a YAML definition (see `search_spaces/ofa_mbv3.yaml` for the keys)."""
        keys = {"name", "family", "description", "kernels", "expands", "depths", "resolutions", "stem", "first_block", "stages", "head", "dropout", "datasets"}
        unknown = set(config) - keys
        if unknown:
            raise ValueError(f"OFA space {config.get('name')!r}: unknown keys {sorted(unknown)}; expected some of {sorted(keys)}")
        default = OFAMacro()
        stem, first, head = dict(config.get("stem") or {}), dict(config.get("first_block") or {}), dict(config.get("head") or {})
        try:
            stages = tuple(OFAStage(int(s["channels"]), int(s.get("stride", 1)), str(s.get("act", "relu")), bool(s.get("se", False))) for s in config["stages"]) if "stages" in config else default.stages
            macro = OFAMacro(
                stem_channels=int(stem.get("channels", default.stem_channels)),
                stem_stride=int(stem.get("stride", default.stem_stride)),
                first_block_channels=int(first.get("channels", default.first_block_channels)),
                stages=stages,
                final_expand=int(head.get("final_expand", default.final_expand)),
                feature_mix=int(head.get("feature_mix", default.feature_mix)),
                dropout=float(config.get("dropout", default.dropout)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"OFA space {config.get('name')!r}: bad stem/first_block/stages/head ({exc}); see search_spaces/ofa_mbv3.yaml") from None
        resolutions = config.get("resolutions", tuple(range(128, 225, 4)))
        if isinstance(resolutions, Mapping):
            resolutions = range(int(resolutions["min"]), int(resolutions["max"]) + 1, int(resolutions.get("step", 4)))
        return cls(
            str(config["name"]),
            kernels=config.get("kernels", (3, 5, 7)),
            expands=config.get("expands", (3, 4, 6)),
            depths=config.get("depths", (2, 3, 4)),
            resolutions=tuple(resolutions),
            macro=macro,
            datasets=config.get("datasets"),
            description=str(config.get("description", "")),
        )

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # --- structure -------------------------------------------------------------------------------
    def stage_blocks(self, stage: int) -> range:
        """Global block indices (0-based) of stage `stage` (0-based)."""
        return range(stage * self.max_depth, (stage + 1) * self.max_depth)

    def block_name(self, block: int) -> str:
        return self._block_names[block]

    def active_blocks(self, arch: Mapping[str, Any]) -> list[ActiveBlock]:
        """The blocks `arch` runs, in order, with their shapes (the first `depth` of each stage)."""
        out: list[ActiveBlock] = []
        for s in range(len(self.macro.stages)):
            depth = int(arch[f"stage{s + 1}_depth"])
            for i, b in enumerate(self.stage_blocks(s)[:depth]):
                out.append(self._block(s, i, int(arch[f"{self._block_names[b]}_kernel"]), int(arch[f"{self._block_names[b]}_expand"])))
        return out

    def _block(self, stage: int, i: int, kernel: int, expand: int) -> ActiveBlock:
        """Block `i` (0-based) of `stage` when it runs (every stage runs its first block: depths >= 1)."""
        m = self.macro
        width = m.stages[stage].channels if i else (m.stages[stage - 1].channels if stage else m.first_block_channels)
        st = m.stages[stage]
        mid = make_divisible(round(width * expand))
        return ActiveBlock(stage, self.stage_blocks(stage)[i], kernel, expand, width, mid, st.channels, st.stride if i == 0 else 1, st.act, st.se)

    def input_size(self, arch: Mapping[str, Any]) -> int:
        """The resolution `arch` runs at: data is resized to it."""
        return int(arch["resolution"])

    # --- identity --------------------------------------------------------------------------------
    def canonical(self, arch: Arch) -> Arch:
        """`arch` with the kernel and expand ratio of every switched-off block set to the smallest choice."""
        arch = self.validate(arch)
        changes: dict[str, Any] = {}
        for s in range(len(self.macro.stages)):
            depth = int(arch[f"stage{s + 1}_depth"])
            for b in self.stage_blocks(s)[depth:]:
                changes[f"{self._block_names[b]}_kernel"] = self.kernels[0]
                changes[f"{self._block_names[b]}_expand"] = self.expands[0]
        return arch.replace(**changes)

    @property
    def size(self) -> int:
        """Distinct networks (canonical architectures): each stage has sum over d of (|k| |e|)^d settings."""
        per_block = len(self.kernels) * len(self.expands)
        per_stage = sum(per_block**d for d in self.depths)
        return per_stage ** len(self.macro.stages) * len(self.resolutions)

    def sample(self, rng: np.random.Generator) -> Arch:
        """A random canonical architecture (each decision uniform; switched-off blocks canonical)."""
        return self.canonical(super().sample(rng))

    def mutate(self, arch: Arch, rng: np.random.Generator, n_changes: int = 1) -> Arch:
        """Change `n_changes` decisions that matter (resolution, depths, active blocks' choices)."""
        arch = self.canonical(arch)
        alive = self._alive_decisions(arch)
        picked = rng.choice(len(alive), size=min(n_changes, len(alive)), replace=False)
        changes = {}
        for i in picked:
            d = alive[int(i)]
            others = [c for c in d.choices if c != arch[d.name]]
            changes[d.name] = others[int(rng.integers(len(others)))]
        return self.canonical(arch.replace(**changes))

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every distinct canonical architecture one alive decision away."""
        arch = self.canonical(arch)
        out = [self.canonical(arch.replace(**{d.name: c})) for d in self._alive_decisions(arch) for c in d.choices if c != arch[d.name]]
        return list(dict.fromkeys(out))

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        return self.canonical(super().crossover(a, b, rng))

    def _alive_decisions(self, arch: Arch) -> list[Decision]:
        alive_blocks = {blk.index for blk in self.active_blocks(arch)}
        out = []
        for d in self._decisions:
            if d.name.startswith("block") and int(d.name[5 : d.name.index("_")]) - 1 not in alive_blocks:
                continue
            if len(d.choices) > 1:
                out.append(d)
        return out

    # --- strings ---------------------------------------------------------------------------------
    def table_row(self, arch: Arch) -> dict[str, str]:
        """The four columns of HELP's OFA table: `ks`, `e`, `d` (space-separated) and `r`."""
        ks = " ".join(str(arch[f"{n}_kernel"]) for n in self._block_names)
        es = " ".join(str(arch[f"{n}_expand"]) for n in self._block_names)
        ds = " ".join(str(arch[f"stage{s + 1}_depth"]) for s in range(len(self.macro.stages)))
        return {"ks": ks, "e": es, "d": ds, "r": str(arch["resolution"])}

    def to_string(self, arch: Arch) -> str:
        row = self.table_row(arch)
        return "|".join((row["ks"], row["e"], row["d"], row["r"]))

    def from_table_row(self, ks: str, e: str, d: str, r: Any) -> Arch:
        """An arch from the four columns of HELP's OFA table."""
        return self.from_string(f"{ks}|{e}|{d}|{r}")

    def from_string(self, text: str) -> Arch:
        parts = text.strip().split("|")
        n_stages = len(self.macro.stages)
        if len(parts) != 4:
            raise InvalidArchError(f"malformed OFA arch string {text.strip()[:60]!r}: expected 'KS|E|D|R' (space-separated lists, e.g. '7 5 ... 3|6 4 ... 6|2 2 2 2 3|204')")
        try:
            ks, es, ds = ([int(v) for v in p.split()] for p in parts[:3])
            r = int(parts[3])
        except ValueError:
            raise InvalidArchError(f"malformed OFA arch string {text.strip()[:60]!r}: kernels, expands, depths and resolution must be integers") from None
        if len(ks) != self.n_blocks or len(es) != self.n_blocks or len(ds) != n_stages:
            raise InvalidArchError(
                f"malformed OFA arch string: expected {self.n_blocks} kernels, {self.n_blocks} expand ratios, {n_stages} depths; got {len(ks)}, {len(es)}, {len(ds)}"
            )
        choices: dict[str, Any] = {"resolution": r}
        for s in range(n_stages):
            choices[f"stage{s + 1}_depth"] = ds[s]
            for b in self.stage_blocks(s):
                choices[f"{self._block_names[b]}_kernel"] = ks[b]
                choices[f"{self._block_names[b]}_expand"] = es[b]
        return self.validate(choices)

    # --- encodings -------------------------------------------------------------------------------
    def encoding_kinds(self) -> list[str]:
        return ["integer", "onehot"]

    def _encode_batch(self, archs: Sequence[Arch], kind: str) -> np.ndarray:
        """`onehot` is OFA's predictor encoding: per block a kernel and an expand one-hot (all zeros when
        the block is switched off), then the resolution one-hot."""
        if kind != "onehot":
            return super()._encode_batch(archs, kind)
        nk, ne = len(self.kernels), len(self.expands)
        per_block = nk + ne
        out = np.zeros((len(archs), self.n_blocks * per_block + len(self.resolutions)), dtype=np.float32)
        k_index = {k: i for i, k in enumerate(self.kernels)}
        e_index = {e: i for i, e in enumerate(self.expands)}
        r_index = {r: i for i, r in enumerate(self.resolutions)}
        for row, arch in enumerate(archs):
            for blk in self.active_blocks(arch):
                out[row, blk.index * per_block + k_index[blk.kernel]] = 1.0
                out[row, blk.index * per_block + nk + e_index[blk.expand]] = 1.0
            out[row, self.n_blocks * per_block + r_index[int(arch["resolution"])]] = 1.0
        return out

    # --- realisation -----------------------------------------------------------------------------
    def graph(self, arch: Arch) -> Any:
        """The sub-network as a chain: stem, first block, each active MBConv (`op` = `mb{kernel}_e{expand}`,
        with `se`), head."""
        import networkx as nx

        g = nx.DiGraph()
        chain = [("input", "input"), ("stem", "conv3x3"), ("first_block", "mb3_e1")]
        chain += [(self._block_names[b.index], f"mb{b.kernel}_e{b.expand}{'_se' if b.se else ''}") for b in self.active_blocks(self.validate(arch))]
        chain += [("head", "head"), ("output", "output")]
        for (name, op), (nxt, _) in zip(chain, chain[1:] + [(None, None)]):
            g.add_node(name, op=op)
            if nxt is not None:
                g.add_edge(name, nxt)
        return g

    def build(self, arch: Arch, input_spec: InputSpec | None = None, *, dataset: str | None = None, num_classes: int | None = None) -> Any:
        """The stand-alone sub-network (`torch.nn.Module`) for `arch`; it expects inputs at the arch's
        resolution (`input_size(arch)`), channels and classes from `input_spec`."""
        from nas.spaces.ofa_mbv3_network import OFASubnet

        spec = self._resolve_input(input_spec, dataset, num_classes)
        return OFASubnet(self.active_blocks(self.validate(arch)), self.macro, in_channels=spec.channels, num_classes=spec.classes)

    def layers(
        self,
        arch: Arch,
        *,
        input_spec: InputSpec | None = None,
        dataset: str | None = None,
        num_classes: int | None = None,
        input_size: int | None = None,
        live_only: bool = False,
        fold_constants: bool = False,
        merge_identical: bool = False,
    ) -> list[LayerSignature]:
        """The operators the sub-network runs on one image at its resolution (or `input_size`), in order.

        Op vocabulary: conv (the squeeze-excite 1x1 convs biased), bn, relu, hswish, hsigmoid, mul (the
        squeeze-excite scale; `in_shape` the feature map), add, global_avgpool, linear. Every operator
        reaches the output, so the graph-optimiser options change nothing (as for FBNet).
        """
        arch = self.validate(arch)
        spec = self._resolve_input(input_spec, dataset, num_classes)
        layers, size = self._stem_layers(spec.channels, int(input_size if input_size is not None else arch["resolution"]))
        for blk in self.active_blocks(arch):
            block, size = _block_layers(blk, size)
            layers += block
        return layers + self._head_layers(size, spec.classes)

    def _stem_layers(self, channels: int, size: int) -> tuple[list[LayerSignature], int]:
        """The stem and the fixed first block on `channels` x `size` x `size` images, and their output size."""
        m = self.macro
        layers = [_sig("conv", channels, size, out=m.stem_channels, kernel=3, stride=m.stem_stride)]
        size = _conv_out(size, 3, m.stem_stride)
        layers += [_sig("bn", m.stem_channels, size), _sig("hswish", m.stem_channels, size)]
        first, size = _block_layers(ActiveBlock(-1, -1, 3, 1, m.stem_channels, m.stem_channels, m.first_block_channels, 1, "relu", False), size)
        return layers + first, size

    def _head_layers(self, size: int, classes: int) -> list[LayerSignature]:
        m = self.macro
        last = m.stages[-1].channels
        return [
            _sig("conv", last, size, out=m.final_expand),
            _sig("bn", m.final_expand, size),
            _sig("hswish", m.final_expand, size),
            _sig("global_avgpool", m.final_expand, size),
            _sig("conv", m.final_expand, 1, out=m.feature_mix),
            _sig("hswish", m.feature_mix, 1),
            LayerSignature("linear", (1, m.feature_mix), out_channels=classes, bias=True),
        ]

    def layer_parts(
        self,
        *,
        input_spec: InputSpec | None = None,
        dataset: str | None = None,
        num_classes: int | None = None,
        input_size: int | None = None,
        live_only: bool = False,
        fold_constants: bool = False,
        merge_identical: bool = False,
    ) -> tuple[LayerPart, ...]:
        """`layers(arch, ...)` (same options) as parts: stem, first block and head by resolution, and each
        block by (resolution, its stage's depth, its kernel, its expand ratio): nothing when the depth
        switches it off.

        Why the resolution in every part: it sets every feature map's size. A block's input size does
        not depend on earlier kernels (kernels are odd, padding `kernel // 2`), only on the strides.
        """
        spec = self._resolve_input(input_spec, dataset, num_classes)

        def start(resolution: Choice) -> int:
            return int(input_size if input_size is not None else resolution)

        entering: dict[Choice, list[list[int]]] = {}  # per resolution: each block's input size, then the head's

        def block_size(resolution: Choice, stage: int, i: int) -> int:
            """The input size of block `i` of `stage` (the head's for stage = number of stages)."""
            if resolution not in entering:
                _, size = self._stem_layers(spec.channels, start(resolution))
                entering[resolution] = []
                for st in self.macro.stages:  # odd kernels: sizes follow the strides alone
                    after = _conv_out(size, self.kernels[0], st.stride)
                    entering[resolution].append([size] + [after] * (self.max_depth - 1))
                    size = after
                entering[resolution].append([size])
            return entering[resolution][stage][i]

        def fixed(choices: tuple[Choice, ...]) -> Counter[LayerSignature]:
            layers, _ = self._stem_layers(spec.channels, start(choices[0]))
            return Counter(layers + self._head_layers(block_size(choices[0], len(self.macro.stages), 0), spec.classes))

        def block_part(stage: int, i: int) -> LayerPart:
            running: dict[tuple[Choice, ...], Counter[LayerSignature]] = {}  # one per depth that runs it

            def counts(choices: tuple[Choice, ...]) -> Counter[LayerSignature]:
                resolution, depth, kernel, expand = choices
                if i >= int(depth):
                    return Counter()
                if (resolution, kernel, expand) not in running:
                    block = self._block(stage, i, int(kernel), int(expand))
                    running[resolution, kernel, expand] = Counter(_block_layers(block, block_size(resolution, stage, i))[0])
                return running[resolution, kernel, expand]

            name = self._block_names[self.stage_blocks(stage)[i]]
            return LayerPart(("resolution", f"stage{stage + 1}_depth", f"{name}_kernel", f"{name}_expand"), counts)

        blocks = [block_part(s, i) for s in range(len(self.macro.stages)) for i in range(self.max_depth)]
        return (LayerPart(("resolution",), fixed), *blocks)



__all__ = ["ActiveBlock", "OFAMacro", "OFAMobileNetV3Space", "OFAStage", "make_divisible"]
