"""An MLServer inference runtime serving one latentforge ONNX decode graph: latents in, images out.

It runs inside MLServer's own virtual environment (``.venv-peer``), never the project's, so it
imports nothing from the project: the serving benchmark resolves everything project-specific
(which file of the version to load, the session settings of ``latentforge serve``) and writes
it into ``model-settings.json`` under ``parameters.extra``:

    file                 absolute path of the .onnx file the project's server would load
    input, output        graph tensor names ("z" -> "image"); a "labels" input is fed too when the
                         graph has one (class-conditional models)
    intra_op_threads     ONNX Runtime threads per call (the project's server: cores // workers)
    graph_optimization   "disabled" | "basic" | "extended" | "all"
    spinning             idle intra-op threads spin (the project's default: no)
    cpu_mem_arena        ONNX Runtime's CPU memory arena (the project's default: on)

The request's input tensor ``z`` (FP32, shape (N, latent_dim)), and ``labels`` (INT64, (N,)) for a
class-conditional graph, go to ONNX Runtime as they are; the output is returned as an FP32 tensor (N, C, H, W) named ``image``. MLServer's adaptive batching
stacks concurrent requests' rows before ``predict`` and splits the output rows afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse

_LEVELS = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
           "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
           "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
           "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session_options(extra: dict[str, Any]) -> ort.SessionOptions:
    """The same SessionOptions the project's server builds (latentforge.runtime.OrtSettings)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = _LEVELS[extra.get("graph_optimization", "all")]
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = int(extra.get("intra_op_threads", 1))
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = bool(extra.get("cpu_mem_arena", True))
    options.enable_mem_pattern = True
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if extra.get("spinning") else "0")
    options.log_severity_level = 3
    return options


class LatentOnnxRuntime(MLModel):
    """One ONNX Runtime CPU session of a decode graph, behind MLServer's V2 data plane."""

    async def load(self) -> bool:
        extra = dict(self.settings.parameters.extra or {}) if self.settings.parameters else {}
        if "file" not in extra:
            raise ValueError("model-settings.json needs parameters.extra.file: the .onnx file to serve")
        self._input = str(extra.get("input", "z"))
        self._output = str(extra.get("output", "image"))
        self._session = ort.InferenceSession(str(extra["file"]), sess_options=session_options(extra),
                                             providers=["CPUExecutionProvider"])
        self._graph_inputs = {i.name for i in self._session.get_inputs()}
        dim = next(i.shape[1] for i in self._session.get_inputs() if i.name == self._input)
        warm = {self._input: np.zeros((1, dim), np.float32)}
        if "labels" in self._graph_inputs:
            warm["labels"] = np.zeros(1, np.int64)
        self._session.run([self._output], warm)
        self.ready = True
        return self.ready

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {i.name: NumpyCodec.decode_input(i) for i in payload.inputs if i.name in self._graph_inputs}
        if set(feeds) != self._graph_inputs:
            raise InferenceError(f"inputs {sorted(feeds)} given, the graph takes {sorted(self._graph_inputs)}")
        feeds[self._input] = np.ascontiguousarray(feeds[self._input], dtype=np.float32)
        if "labels" in feeds:
            feeds["labels"] = np.ascontiguousarray(feeds["labels"], dtype=np.int64).reshape(-1)
        images = self._session.run([self._output], feeds)[0]
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[NumpyCodec.encode_output(self._output, images)])
