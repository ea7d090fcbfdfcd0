"""The FBNet layer-wise space: a fixed MobileNetV2-like macro-architecture, one block choice per layer.

Why its own family: unlike a cell space, every searchable layer has its own decision, and the published
hardware tables (HW-NAS-Bench, HELP) key each network by the list of its 22 block names. The canonical
string is exactly that list joined by single spaces (the shared tables' `arch_str`), and the choice order
is HW-NAS-Bench's, so the integer encoding equals their `op_idx_list`.

The macro-architecture (stem, stages of layers with their widths and strides, head) is data: the defaults
below are HW-NAS-Bench's CIFAR setting of FBNet (Wu et al., CVPR 2019), and `search_spaces/fbnet.yaml`
states the same numbers so a variant is a copy of that file. This module describes the network without
torch; `fbnet_network` builds the module from the same description.

`layers()` uses the shared operator vocabulary: "conv" (padding `kernel // 2`, `groups` set, no bias),
"bn", "relu", "channel_shuffle" (`groups` = shuffle groups; parameter-free), "add", "global_avgpool",
"linear" (biased; `in_shape` is `(1, in_features)`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.spaces.base import Arch, Choice, Decision, InputSpec, InvalidArchError, LayerPart, LayerSignature, SearchSpace

INVERTED_RESIDUAL = "inverted_residual"
SKIP = "skip"


@dataclass(frozen=True)
class FBNetOp:
    """One candidate block of a layer.

    `inverted_residual`: 1x1 expand conv (`groups`) + BN + ReLU, channel shuffle when `groups` > 1,
    `kernel`x`kernel` depthwise conv (the layer's stride) + BN + ReLU, 1x1 project conv (`groups`) + BN,
    plus the input when the layer keeps shape. The hidden width is `expansion` x the layer's input width.
    `skip`: identity when the layer keeps shape, else 1x1 conv (the layer's stride) + BN + ReLU, as
    HW-NAS-Bench defines it; `kernel`, `expansion` and `groups` are unused.
    """

    name: str
    block: str = INVERTED_RESIDUAL
    kernel: int = 3
    expansion: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        if self.block not in (INVERTED_RESIDUAL, SKIP):
            raise ValueError(f"FBNet op {self.name!r}: block {self.block!r}; expected {INVERTED_RESIDUAL!r} or {SKIP!r}")
        if self.block == INVERTED_RESIDUAL and (self.kernel < 1 or self.kernel % 2 == 0 or self.expansion < 1 or self.groups < 1):
            raise ValueError(
                f"FBNet op {self.name!r}: need an odd kernel >= 1, expansion >= 1, groups >= 1; "
                f"got kernel={self.kernel}, expansion={self.expansion}, groups={self.groups}"
            )

    @property
    def shuffle_groups(self) -> int:
        """Groups of the grouped 1x1 convs (1 for skip and ungrouped blocks)."""
        return self.groups if self.block == INVERTED_RESIDUAL else 1


@dataclass(frozen=True)
class Stage:
    """`layers` searchable layers of width `channels`; the first one applies `stride`."""

    layers: int
    channels: int
    stride: int = 1


@dataclass(frozen=True)
class Slot:
    """One searchable layer position: what every candidate block there maps from and to."""

    in_channels: int
    out_channels: int
    stride: int

    @property
    def keeps_shape(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class FBNetMacro:
    """The fixed part of the network: stem conv, stages, 1x1 head conv, global pool, classifier."""

    stem_channels: int = 16
    stem_kernel: int = 3
    stem_stride: int = 1
    stages: tuple[Stage, ...] = (
        Stage(1, 16, 1),
        Stage(4, 24, 1),
        Stage(4, 32, 2),
        Stage(4, 64, 2),
        Stage(4, 112, 1),
        Stage(4, 184, 2),
        Stage(1, 352, 1),
    )
    head_channels: int = 1504

    def __post_init__(self) -> None:
        sizes = [self.stem_channels, self.stem_kernel, self.stem_stride, self.head_channels]
        sizes += [v for s in self.stages for v in (s.layers, s.channels, s.stride)]
        if not self.stages or min(sizes) < 1 or self.stem_kernel % 2 == 0:
            raise ValueError(f"FBNet macro-architecture needs stages, positive sizes and an odd stem kernel; got {self}")

    def slots(self) -> tuple[Slot, ...]:
        """The searchable layers in execution order."""
        out, width = [], self.stem_channels
        for stage in self.stages:
            for i in range(stage.layers):
                out.append(Slot(width, stage.channels, stage.stride if i == 0 else 1))
                width = stage.channels
        return tuple(out)


CIFAR_OPS: tuple[FBNetOp, ...] = (
    FBNetOp("k3_e1", kernel=3, expansion=1),
    FBNetOp("k3_e1_g2", kernel=3, expansion=1, groups=2),
    FBNetOp("k3_e3", kernel=3, expansion=3),
    FBNetOp("k3_e6", kernel=3, expansion=6),
    FBNetOp("k5_e1", kernel=5, expansion=1),
    FBNetOp("k5_e1_g2", kernel=5, expansion=1, groups=2),
    FBNetOp("k5_e3", kernel=5, expansion=3),
    FBNetOp("k5_e6", kernel=5, expansion=6),
    FBNetOp("skip", block=SKIP),
)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _conv(c_in: int, c_out: int, size: int, kernel: int, stride: int = 1, groups: int = 1) -> LayerSignature:
    return LayerSignature("conv", (1, c_in, size, size), out_channels=c_out, kernel=kernel, stride=stride, groups=groups)


def _same(op: str, channels: int, size: int, groups: int = 1) -> LayerSignature:
    return LayerSignature(op, (1, channels, size, size), out_channels=channels, groups=groups)


def _conv_bn_relu(c_in: int, c_out: int, size: int, kernel: int, stride: int) -> tuple[list[LayerSignature], int]:
    out = _conv_out(size, kernel, stride)
    return [_conv(c_in, c_out, size, kernel, stride), _same("bn", c_out, out), _same("relu", c_out, out)], out


def _block_layers(op: FBNetOp, slot: Slot, size: int) -> tuple[list[LayerSignature], int]:
    if op.block == SKIP:
        if slot.keeps_shape:
            return [], size
        return _conv_bn_relu(slot.in_channels, slot.out_channels, size, 1, slot.stride)
    mid, g, out = slot.in_channels * op.expansion, op.groups, _conv_out(size, op.kernel, slot.stride)
    layers = [_conv(slot.in_channels, mid, size, 1, groups=g), _same("bn", mid, size), _same("relu", mid, size)]
    if g > 1:
        layers.append(_same("channel_shuffle", mid, size, groups=g))
    layers += [
        _conv(mid, mid, size, op.kernel, slot.stride, groups=mid),
        _same("bn", mid, out),
        _same("relu", mid, out),
        _conv(mid, slot.out_channels, out, 1, groups=g),
        _same("bn", slot.out_channels, out),
    ]
    if slot.keeps_shape:
        layers.append(_same("add", slot.out_channels, out))
    return layers, out


def _parse_op(name: str, spec: Any) -> FBNetOp:
    if not isinstance(spec, Mapping):
        raise ValueError(f"FBNet op {name!r} must map to {{kernel, expansion, groups}} or {{block: skip}}; got {spec!r}")
    unknown = set(spec) - {"block", "kernel", "expansion", "groups"}
    if unknown:
        raise ValueError(f"FBNet op {name!r}: unknown keys {sorted(unknown)}; expected block, kernel, expansion, groups")
    try:
        fields = {k: (str(v) if k == "block" else int(v)) for k, v in spec.items()}
    except (TypeError, ValueError):
        raise ValueError(f"FBNet op {name!r}: kernel, expansion and groups must be integers; got {dict(spec)}") from None
    return FBNetOp(str(name), **fields)


def _parse_stage(spec: Any) -> Stage:
    if not isinstance(spec, Mapping) or set(spec) - {"layers", "channels", "stride"} or not {"layers", "channels"} <= set(spec):
        raise ValueError(f"FBNet stage must be {{layers, channels, stride}}; got {spec!r}")
    return Stage(int(spec["layers"]), int(spec["channels"]), int(spec.get("stride", 1)))


class FBNetSpace(SearchSpace):
    """FBNet's layer-wise space (or a YAML variant: other ops, widths, depths, strides).

    Decisions `layer_00`, `layer_01`, ... pick one op per searchable layer, in execution order. The
    default is HW-NAS-Bench's CIFAR-100 FBNet: 22 layers, 9 ops, 9**22 architectures.

    Example:
        >>> space = FBNetSpace()
        >>> text = " ".join(["k3_e6"] * 11 + ["skip"] * 10 + ["k5_e1_g2"])
        >>> arch = space.from_string(text)
        >>> arch["layer_00"], arch["layer_21"]
        ('k3_e6', 'k5_e1_g2')
        >>> space.to_string(arch) == text
        True
        >>> space.size == 9**22
        True
    """

    def __init__(
        self,
        name: str = "fbnet",
        *,
        ops: Sequence[FBNetOp] = CIFAR_OPS,
        macro: FBNetMacro | None = None,
        datasets: Mapping[str, Mapping[str, int]] | None = None,
        description: str = "",
    ) -> None:
        self.name = name
        self.ops = tuple(ops)
        self.macro = macro if macro is not None else FBNetMacro()
        self.datasets = {k: dict(v) for k, v in (datasets or {"cifar100": {"num_classes": 100, "input_size": 32}}).items()}
        self.description = description
        names = [op.name for op in self.ops]
        if not names or len(set(names)) != len(names) or any(not n or n != n.strip() or " " in n for n in names):
            raise ValueError(f"space {name!r}: op names must be distinct, non-empty and without spaces; got {names}")
        self.slots = self.macro.slots()
        for i, slot in enumerate(self.slots):
            for op in self.ops:
                g = op.shuffle_groups
                if slot.in_channels % g or slot.out_channels % g:
                    raise ValueError(
                        f"space {name!r}: op {op.name!r} has groups={g}, which does not divide layer {i}'s "
                        f"{slot.in_channels} -> {slot.out_channels} channels"
                    )
        self._op_by_name = {op.name: op for op in self.ops}
        width = max(2, len(str(len(self.slots) - 1)))
        self._decisions = tuple(Decision(f"layer_{i:0{width}d}", tuple(names)) for i in range(len(self.slots)))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FBNetSpace:
        """A space from a YAML definition (see `search_spaces/fbnet.yaml` for the keys)."""
        unknown = set(config) - {"name", "family", "description", "ops", "stem", "stages", "head", "datasets"}
        if unknown:
            raise ValueError(f"FBNet space {config.get('name')!r}: unknown keys {sorted(unknown)}")
        stem, head = dict(config.get("stem") or {}), dict(config.get("head") or {})
        if set(stem) - {"channels", "kernel", "stride"} or set(head) - {"channels"}:
            raise ValueError(f"FBNet space {config.get('name')!r}: stem takes channels/kernel/stride, head takes channels")
        if not isinstance(config.get("ops", {}), Mapping) or not isinstance(config.get("stages", []), list):
            raise ValueError(f"FBNet space {config.get('name')!r}: ops must be a mapping name -> spec and stages a list")
        default = FBNetMacro()
        macro = FBNetMacro(
            stem_channels=int(stem.get("channels", default.stem_channels)),
            stem_kernel=int(stem.get("kernel", default.stem_kernel)),
            stem_stride=int(stem.get("stride", default.stem_stride)),
            stages=tuple(_parse_stage(s) for s in config["stages"]) if "stages" in config else default.stages,
            head_channels=int(head.get("channels", default.head_channels)),
        )
        ops = tuple(_parse_op(n, s) for n, s in config["ops"].items()) if "ops" in config else CIFAR_OPS
        return cls(
            str(config["name"]), ops=ops, macro=macro, datasets=config.get("datasets"), description=str(config.get("description", ""))
        )

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def layer_ops(self, arch: Arch) -> list[FBNetOp]:
        """The chosen op of every searchable layer, in execution order."""
        return [self._op_by_name[str(arch[d.name])] for d in self._decisions]

    # --- strings --------------------------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        return " ".join(str(arch[d.name]) for d in self._decisions)

    def from_string(self, text: str) -> Arch:
        names = text.split()
        if len(names) != len(self._decisions):
            raise InvalidArchError(
                f"malformed FBNet arch string {text.strip()!r}: expected {len(self._decisions)} space-separated ops, got {len(names)}"
            )
        for name in names:
            if name not in self._op_by_name:
                raise InvalidArchError(f"malformed FBNet arch string: unknown op {name!r}; expected one of {list(self._op_by_name)}")
        return Arch({d.name: n for d, n in zip(self._decisions, names)})

    # --- realisation ----------------------------------------------------------------------------
    def dataset_info(self, dataset: str | None = None) -> dict[str, int]:
        """`num_classes` and `input_size` of a dataset this space is defined for (None: the first one)."""
        if dataset is None:
            return next(iter(self.datasets.values()))
        try:
            return self.datasets[dataset]
        except KeyError:
            raise ValueError(f"space {self.name!r} has no dataset {dataset!r}; expected one of {sorted(self.datasets)}") from None

    def build(self, arch: Arch, input_spec: InputSpec | None = None, *, dataset: str | None = None, num_classes: int | None = None) -> Any:
        """The network (`torch.nn.Module`, NCHW images -> logits) for `arch` and `input_spec` (default:
        the `dataset` setting, else the first)."""
        from nas.spaces.fbnet_network import FBNetNetwork

        spec = self._resolve_input(input_spec, dataset, num_classes)
        return FBNetNetwork(self.layer_ops(self.validate(arch)), self.macro, num_classes=spec.classes, in_channels=spec.channels)

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
        """The operators `build(arch)` executes on one square image, in order (adds included).

        Every FBNet operator reaches the output and none is applied twice to one tensor, so the graph
        optimiser options of `NB201Space.layers` (`live_only`, `fold_constants`, `merge_identical`) change
        nothing here.
        """
        spec = self._resolve_input(input_spec, dataset, num_classes)
        size = int(input_size if input_size is not None else spec.height)
        classes = spec.classes
        if size < 1:
            raise ValueError(f"need input_size >= 1; got {size}")
        m = self.macro
        layers, size = _conv_bn_relu(spec.channels, m.stem_channels, size, m.stem_kernel, m.stem_stride)
        for op, slot in zip(self.layer_ops(self.validate(arch)), self.slots):
            block, size = _block_layers(op, slot, size)
            layers += block
        return layers + self._head_layers(size, classes)

    def _head_layers(self, size: int, classes: int) -> list[LayerSignature]:
        m = self.macro
        head, size = _conv_bn_relu(m.stages[-1].channels, m.head_channels, size, 1, 1)
        return [*head, _same("global_avgpool", m.head_channels, size), LayerSignature("linear", (1, m.head_channels), out_channels=classes, bias=True)]

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
    ) -> tuple[LayerPart, ...] | None:
        """`layers(arch, ...)` (same options) as parts: stem and head, and one part per searchable layer.

        Why per layer: a layer's operators depend on its own op and its input size only, and that size
        is the same whatever earlier layers chose (odd kernels, padding `kernel // 2`). A variant where
        it is not gets None (counted arch by arch).
        """
        spec = self._resolve_input(input_spec, dataset, num_classes)
        size = int(input_size if input_size is not None else spec.height)
        if size < 1:
            raise ValueError(f"need input_size >= 1; got {size}")
        m = self.macro
        stem, size = _conv_bn_relu(spec.channels, m.stem_channels, size, m.stem_kernel, m.stem_stride)
        tables: list[dict[Choice, Counter[LayerSignature]]] = []
        for slot in self.slots:
            blocks = {op.name: _block_layers(op, slot, size) for op in self.ops}
            sizes = {out for _, out in blocks.values()}
            if len(sizes) != 1:
                return None
            tables.append({name: Counter(layers) for name, (layers, _) in blocks.items()})
            size = sizes.pop()
        fixed = Counter(stem + self._head_layers(size, spec.classes))
        layer_parts = [LayerPart((d.name,), lambda choices, table=table: table[choices[0]]) for d, table in zip(self._decisions, tables)]
        return (LayerPart((), lambda choices: fixed), *layer_parts)
