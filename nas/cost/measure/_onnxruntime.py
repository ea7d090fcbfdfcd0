"""ONNX Runtime backend: the module exported to ONNX, run by an `InferenceSession` on the CPU.

Why these settings: `intra_op_num_threads=threads`, one inter-op thread and sequential execution make a
measurement repeatable on a shared machine; graph optimisation stays at ORT's default (ORT_ENABLE_ALL)
because that is how users deploy, even though it fuses Conv+BatchNorm(+ReLU) and drops operators whose
results reach no output, both of which a per-operator LUT must account for (see `nas.cost.build`).
Export uses the TorchScript exporter (`dynamo=False`): 30x faster than the dynamo exporter here, and its
graphs ran faster under ORT in our measurements.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Any

#: ONNX opset the exporter targets (supported by onnxruntime >= 1.14).
OPSET = 17


def export_onnx(module: Any, example_inputs: tuple[Any, ...]) -> bytes:
    """Serialized ONNX model of `module` traced on `example_inputs`."""
    import torch

    buffer = io.BytesIO()
    module.eval()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter warns about its own deprecation path on every call
        torch.onnx.export(module, tuple(example_inputs), buffer, dynamo=False, opset_version=OPSET, do_constant_folding=True)
    return buffer.getvalue()


class OnnxRuntimeBackend:
    """Exports with `torch.onnx.export` and runs with `onnxruntime.InferenceSession` (CPU provider).

    Example:
        >>> import torch
        >>> run = OnnxRuntimeBackend().compile(torch.nn.ReLU(), (torch.ones(1, 2),), threads=1)
        >>> run()[0].tolist()
        [[1.0, 1.0]]
    """

    name = "onnxruntime"

    def compile(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> Callable[[], Any]:
        import onnxruntime as ort

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        model = export_onnx(module, example_inputs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        names = [arg.name for arg in session.get_inputs()]
        feed = {name: x.detach().cpu().numpy() for name, x in zip(names, example_inputs)}

        def runner() -> Any:
            return session.run(None, feed)

        return runner

    def versions(self) -> dict[str, str]:
        import onnx
        import onnxruntime as ort
        import torch

        return {
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "torch": torch.__version__,
            "opset": str(OPSET),
            "exporter": "torch.onnx.export(dynamo=False)",
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "execution_mode": "ORT_SEQUENTIAL",
            "provider": "CPUExecutionProvider",
        }
