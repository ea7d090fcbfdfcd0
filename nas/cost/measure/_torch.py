"""PyTorch eager backend: the module run as-is, under `torch.inference_mode`, on a fixed thread count.

Why eager and not TorchScript/compile: eager is how most users deploy a PyTorch model on a CPU without a
compiler step, and its per-operator dispatch overhead (a few microseconds per call) is part of the cost a
LUT must model honestly (see `nas.cost.build`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TorchBackend:
    """Runs a `torch.nn.Module` eagerly in eval mode.

    Example:
        >>> import torch
        >>> run = TorchBackend().compile(torch.nn.ReLU(), (torch.ones(1, 2),), threads=1)
        >>> run().tolist()
        [[1.0, 1.0]]
    """

    name = "torch"
    layer_options: dict[str, bool] = {}  # eager runs every operator the module calls

    def compile(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> Callable[[], Any]:
        import torch

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        try:
            module.eval()
        except NotImplementedError:  # a loaded `torch.export` program: eval behaviour was fixed when exported
            pass
        inputs = tuple(example_inputs)

        def runner() -> Any:
            with torch.inference_mode():
                return module(*inputs)

        return runner

    def versions(self) -> dict[str, str]:
        import torch

        return {
            "torch": torch.__version__,
            "mkldnn": str(torch.backends.mkldnn.is_available()),
            "mode": "eager, eval, torch.inference_mode",
        }
