"""ONNX Runtime backend: the module exported to ONNX, run by an `InferenceSession` on the CPU.

Why these settings: `intra_op_num_threads=threads`, one inter-op thread and sequential execution make a
measurement repeatable on a shared machine; graph optimisation stays at ORT's default (ORT_ENABLE_ALL)
because that is how users deploy. What ALL does to an NB201 network (read off ORT's optimised graph):
BatchNorm folds into the conv before it, a ReLU after a conv and an Add after a conv fuse into it,
identical operators on the same tensor (the ReLUs of two conv edges leaving one node, two pools of one
node) merge into one, convs run in a blocked NCHWc layout, and operators whose result reaches no output
or depends only on constants (a cell node fed by `none` edges only) are removed, though `x + c` keeps
its add. `layer_options` makes `space.layers(arch)` list exactly what is left of that (the tests compare
it with ORT's optimised graph); the fusions and layout reorders are left to `nas.cost.validate`'s
calibration, and the LUT's validation figures say how well that works.
Calls go through IO binding with preallocated outputs, the low-overhead API for repeated inference
(about 3.5 us less per call than `session.run` here, the size of a small operator).
Export uses the TorchScript exporter (`dynamo=False`): 0.2 s against 7.5 s for the dynamo exporter on
one NB201 network here.
"""

from __future__ import annotations

import importlib
import io
import warnings
from collections.abc import Callable
from typing import Any

#: ONNX opset the exporter targets (supported by onnxruntime >= 1.14).
OPSET = 17


def _require(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ImportError(f"backend 'onnxruntime' needs {name}: pip install 'nas[onnx]' (onnx, onnxruntime, onnxscript)") from None


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
        >>> run()[0].numpy().tolist()
        [[1.0, 1.0]]
    """

    name = "onnxruntime"
    # ORT_ENABLE_ALL removes dead and constant operators and merges identical ones (module docstring).
    layer_options: dict[str, bool] = {"live_only": True, "fold_constants": True, "merge_identical": True}

    def compile(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> Callable[[], Any]:
        return self.runner(self.session(export_onnx(module, example_inputs), threads=threads), example_inputs)

    def session(self, model: bytes | str, *, threads: int = 1, optimised_to: str | None = None) -> Any:
        """An `InferenceSession` for a serialized model or an `.onnx` file, with the measurement settings.

        `nas export` runs the file it wrote through this, so an export is timed exactly as a LUT was built.
        `optimised_to` also saves the graph ORT's optimiser leaves (see `optimised_graph`).
        """
        ort = _require("onnxruntime")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        options = ort.SessionOptions()
        if optimised_to is not None:
            options.optimized_model_filepath = optimised_to
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def optimised_graph(self, module: Any, example_inputs: tuple[Any, ...]) -> Any:
        """The ONNX graph ORT actually runs for `module` after its optimiser (what `layer_options` model)."""
        import tempfile
        from pathlib import Path

        onnx = _require("onnx")
        with tempfile.TemporaryDirectory() as folder:
            path = str(Path(folder) / "optimised.onnx")
            self.session(export_onnx(module, example_inputs), optimised_to=path)
            return onnx.load(path).graph

    def runner(self, session: Any, example_inputs: tuple[Any, ...]) -> Callable[[], Any]:
        """A zero-argument callable running `session` once on `example_inputs` (outputs: ORT values)."""
        import numpy as np

        ort = _require("onnxruntime")
        inputs = [x.detach().cpu().contiguous().numpy() for x in example_inputs]
        first = session.run(None, {arg.name: x for arg, x in zip(session.get_inputs(), inputs)})
        # Bound, preallocated inputs and outputs: each call runs the graph only, without converting
        # inputs or allocating and copying outputs.
        binding = session.io_binding()
        for arg, x in zip(session.get_inputs(), inputs):
            binding.bind_ortvalue_input(arg.name, ort.OrtValue.ortvalue_from_numpy(x))
        outputs = [ort.OrtValue.ortvalue_from_numpy(np.empty_like(y)) for y in first]
        for arg, value in zip(session.get_outputs(), outputs):
            binding.bind_ortvalue_output(arg.name, value)

        def runner() -> list[Any]:
            session.run_with_iobinding(binding)
            return outputs

        return runner

    def versions(self) -> dict[str, str]:
        import torch

        onnx, ort = _require("onnx"), _require("onnxruntime")
        return {
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "torch": torch.__version__,
            "opset": str(OPSET),
            "exporter": "torch.onnx.export(dynamo=False)",
            "graph_optimization_level": "ORT_ENABLE_ALL",
            "execution_mode": "ORT_SEQUENTIAL",
            "provider": "CPUExecutionProvider",
            "io": "io_binding, preallocated outputs",
        }
