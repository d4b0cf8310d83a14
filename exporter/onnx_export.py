"""torch -> ONNX for one graph, then the checks that decide whether it may be published.

Export uses the dynamo-based exporter (`dynamo=True`) at a fixed opset, traced with a batch
of 2 and a symbolic batch dimension named ``N``, and writes one self-contained file (no
external data, so nothing can point outside the version folder). Parity is measured against
PyTorch on random inputs at several batch sizes in a plain ONNX Runtime session. The manifest's
signature of a graph is read back from the written file (``read_signature``), so it says
what the file really takes and returns.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from latentforge.manifest import BATCH_AXIS, Signature, TensorSpec
from latentforge.runtime import PLAIN, open_session, write_optimised
from trainer.families.base import ExportGraph

DEFAULT_OPSET = 18
PARITY_BATCH_SIZES = (1, 7)

# The exporter narrates every pass and warns about optional torchvision ops; keep real errors only.
logging.getLogger("torch.onnx").setLevel(logging.ERROR)
for _name in ("onnx_ir", "onnxscript"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class ExportError(RuntimeError):
    """A graph could not be exported or failed a check; nothing was published."""


MAX_AXIS = 1 << 16


def dynamic_shapes(graph: ExportGraph) -> tuple[dict[int, object], ...]:
    """torch.export's dynamic shapes of a graph's inputs: the batch axis of every input, and the
    graph's other named axes (``ExportGraph.dynamic_axes``), one ``Dim`` per name."""
    dims = {BATCH_AXIS: torch.export.Dim(BATCH_AXIS, min=1, max=MAX_AXIS)}
    shapes = []
    for name in graph.input_names:
        axes: dict[int, object] = {0: dims[BATCH_AXIS]}
        for axis, (axis_name, smallest) in graph.dynamic_axes.get(name, {}).items():
            if axis_name not in dims:
                dims[axis_name] = torch.export.Dim(axis_name, min=smallest, max=MAX_AXIS)
            axes[axis] = dims[axis_name]
        shapes.append(axes)
    return tuple(shapes)


def export_graph(graph: ExportGraph, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Export one graph to `path` with a dynamic batch axis (and the graph's other dynamic axes)
    and run onnx.checker on it."""
    unknown = sorted(set(graph.dynamic_axes) - set(graph.input_names))
    if unknown:
        raise ExportError(f"{graph.role}: dynamic axes named for unknown input(s) {', '.join(unknown)}")
    dynamic = dynamic_shapes(graph)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecations
            # An axis name shared by several inputs (H of content and mask) is one axis: torch says so.
            warnings.filterwarnings("ignore", message=".*will not be used, since it shares", category=UserWarning)
            program = torch.onnx.export(
                graph.module,
                graph.example_inputs,
                dynamo=True,
                opset_version=opset,
                input_names=graph.input_names,
                output_names=graph.output_names,
                dynamic_shapes=dynamic,
                optimize=True,
                verbose=False,
            )
            program.save(str(path), external_data=False)
    except Exception as exc:  # the exporter raises a wide variety of errors
        raise ExportError(f"exporting the {graph.role} failed: {type(exc).__name__}: {exc}") from exc
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the exported {graph.role} fails onnx.checker: {exc}") from None
    _check_dynamic_axes(path, graph)


def _check_dynamic_axes(path: Path, graph: ExportGraph) -> None:
    """Every input and output has a dynamic batch axis, and each input's other dynamic axes kept
    their names (the exporter specialises an axis that the module's code fixes)."""
    model = onnx.load(str(path), load_external_data=False)
    for value in list(model.graph.input) + list(model.graph.output):
        dim0 = value.type.tensor_type.shape.dim[0]
        if not dim0.dim_param:
            raise ExportError(f"{graph.role}: {value.name} has a fixed batch axis ({dim0.dim_value}); expected dynamic")
    for value in model.graph.input:
        for axis, (axis_name, _) in graph.dynamic_axes.get(value.name, {}).items():
            dim = value.type.tensor_type.shape.dim[axis]
            if dim.dim_param != axis_name:
                raise ExportError(f"{graph.role}: {value.name} axis {axis} is {dim.dim_param or dim.dim_value}; "
                                  f"expected the dynamic axis {axis_name}")


def read_signature(path: Path, optional_inputs: tuple[str, ...] = ()) -> Signature:
    """A graph's inputs and outputs as the ONNX file declares them: names, dtypes, and shapes
    whose dynamic axes keep their names (an axis with neither size nor name gets one).

    ``optional_inputs`` are the inputs a caller may leave out (fed as zeros); they must exist.
    """
    model = onnx.load(str(path), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}

    def spec(value: onnx.ValueInfoProto, optional: bool) -> TensorSpec:
        if not value.type.HasField("tensor_type"):
            raise ExportError(f"{path.name}: {value.name} is not a tensor; the service runs tensor graphs only")
        tensor = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        shape = tuple(d.dim_param or (d.dim_value if d.HasField("dim_value") else f"{value.name}_{k}")
                      for k, d in enumerate(tensor.shape.dim))
        return TensorSpec(name=value.name, dtype=dtype, shape=shape, optional=optional)

    inputs = [v for v in model.graph.input if v.name not in initializers]
    missing = sorted(set(optional_inputs) - {v.name for v in inputs})
    if missing:
        raise ExportError(f"{path.name}: optional input(s) {', '.join(missing)} are not inputs of the graph")
    return Signature(inputs=tuple(spec(v, v.name in optional_inputs) for v in inputs),
                     outputs=tuple(spec(v, False) for v in model.graph.output))


def measure_parity(
    graph: ExportGraph, path: Path, batch_sizes: tuple[int, ...] = PARITY_BATCH_SIZES, seed: int = 0
) -> float:
    """Max abs difference between ONNX Runtime and PyTorch over every output and batch size, the
    file run in a plain CPU session (``latentforge.runtime.PLAIN``, as the meter runs versions)."""
    session = open_session(path, PLAIN)
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for n in batch_sizes:
        inputs = graph.make_inputs(n, generator)
        with torch.no_grad():
            expected = graph.module(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected,)
        feeds = {name: t.numpy() for name, t in zip(graph.input_names, inputs)}
        actual = session.run(graph.output_names, feeds)
        for want, got in zip(expected, actual):
            if tuple(want.shape) != got.shape:
                raise ExportError(f"{graph.role}: ONNX output shape {got.shape} != torch {tuple(want.shape)} at batch {n}")
            worst = max(worst, float(np.max(np.abs(want.numpy() - got))))
    return worst


def write_fp16_variant(src: Path, dst: Path) -> None:
    """Float16 copy of a graph with float32 inputs and outputs (for GPU serving).

    ONNX Runtime's converter inserts casts at the inputs and outputs; its node order is not
    always topological, so the graph is re-sorted before the checker runs.
    """
    import onnx_ir as ir
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=False)
    model = ir.serde.deserialize_model(converted)
    model.graph.sort()
    converted = ir.serde.serialize_model(model)
    try:
        onnx.checker.check_model(converted, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"the float16 copy of {src.name} fails onnx.checker: {exc}") from None
    onnx.save(converted, str(dst))


def write_ort_cpu_variant(src: Path, dst: Path) -> None:
    """The graph as ONNX Runtime optimises it for its CPU provider (fused ops, folded constants).

    Loading it skips those optimisations at start-up; it runs only on ONNX Runtime's CPU
    provider, ideally of the same version (recorded in the manifest's producer).
    """
    write_optimised(src, dst, PLAIN, level="extended")
    if not dst.is_file():
        raise ExportError(f"ONNX Runtime did not write an optimised copy of {src.name}")
