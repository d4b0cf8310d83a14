"""The few messages of the V2 (open inference protocol) gRPC API that the peer benchmark speaks.

Servers that implement the V2 protocol (MLServer, Triton, KServe) expose
``inference.GRPCInferenceService``. The load generator only needs ``ServerReady``,
``ModelReady`` and ``ModelInfer``, so those messages are declared here at run time from the
protocol's field names and numbers (a descriptor built in Python, no generated code and no
server package needed): it runs in the project's environment like ``latentforge bench``.
Fields the load generator does not use (parameters, typed ``contents``) are left out; a server
sending them is still parsed, as unknown fields.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "inference"
SERVICE = f"/{PACKAGE}.GRPCInferenceService"
SERVER_READY = f"{SERVICE}/ServerReady"
MODEL_READY = f"{SERVICE}/ModelReady"
MODEL_INFER = f"{SERVICE}/ModelInfer"

_F = descriptor_pb2.FieldDescriptorProto
# message -> [(field, number, type, repeated, message type of a nested/sub message)]
_MESSAGES: dict[str, list[tuple[str, int, int, bool, str | None]]] = {
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, _F.TYPE_BOOL, False, None)],
    "ModelReadyRequest": [("name", 1, _F.TYPE_STRING, False, None), ("version", 2, _F.TYPE_STRING, False, None)],
    "ModelReadyResponse": [("ready", 1, _F.TYPE_BOOL, False, None)],
    "ModelInferRequest": [("model_name", 1, _F.TYPE_STRING, False, None),
                          ("model_version", 2, _F.TYPE_STRING, False, None),
                          ("id", 3, _F.TYPE_STRING, False, None),
                          ("inputs", 5, _F.TYPE_MESSAGE, True, "ModelInferRequest.InferInputTensor"),
                          ("outputs", 6, _F.TYPE_MESSAGE, True, "ModelInferRequest.InferRequestedOutputTensor"),
                          ("raw_input_contents", 7, _F.TYPE_BYTES, True, None)],
    "ModelInferRequest.InferInputTensor": [("name", 1, _F.TYPE_STRING, False, None),
                                           ("datatype", 2, _F.TYPE_STRING, False, None),
                                           ("shape", 3, _F.TYPE_INT64, True, None)],
    "ModelInferRequest.InferRequestedOutputTensor": [("name", 1, _F.TYPE_STRING, False, None)],
    "ModelInferResponse": [("model_name", 1, _F.TYPE_STRING, False, None),
                           ("model_version", 2, _F.TYPE_STRING, False, None),
                           ("id", 3, _F.TYPE_STRING, False, None),
                           ("outputs", 5, _F.TYPE_MESSAGE, True, "ModelInferResponse.InferOutputTensor"),
                           ("raw_output_contents", 6, _F.TYPE_BYTES, True, None)],
    "ModelInferResponse.InferOutputTensor": [("name", 1, _F.TYPE_STRING, False, None),
                                             ("datatype", 2, _F.TYPE_STRING, False, None),
                                             ("shape", 3, _F.TYPE_INT64, True, None)],
}


def _build() -> dict[str, Any]:
    """Message classes by name, from one file descriptor in a private pool."""
    proto = descriptor_pb2.FileDescriptorProto(name="latentforge_bench/v2_subset.proto", package=PACKAGE,
                                               syntax="proto3")
    tops: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name, fields in _MESSAGES.items():
        outer, _, inner = name.partition(".")
        if inner:
            msg = tops[outer].nested_type.add(name=inner)
        else:
            msg = tops[outer] = proto.message_type.add(name=outer)
        for field, number, ftype, repeated, sub in fields:
            f = msg.field.add(name=field, number=number, type=ftype,
                              label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if sub:
                f.type_name = f".{PACKAGE}.{sub}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _MESSAGES if "." not in name}


_CLASSES = _build()
ServerReadyRequest = _CLASSES["ServerReadyRequest"]
ServerReadyResponse = _CLASSES["ServerReadyResponse"]
ModelReadyRequest = _CLASSES["ModelReadyRequest"]
ModelReadyResponse = _CLASSES["ModelReadyResponse"]
ModelInferRequest = _CLASSES["ModelInferRequest"]
ModelInferResponse = _CLASSES["ModelInferResponse"]

_DATATYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.float64): "FP64",
              np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32", np.dtype(np.uint8): "UINT8"}


def infer_request(model: str, tensors: dict[str, np.ndarray]) -> Any:
    """A ModelInferRequest carrying ``tensors`` as raw little-endian bytes (``raw_input_contents``),
    the cheapest encoding for both sides; V2 servers answer such requests with raw outputs."""
    request = ModelInferRequest(model_name=model)
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        if array.dtype not in _DATATYPES:
            raise ValueError(f"tensor {name!r}: dtype {array.dtype} has no V2 datatype here")
        request.inputs.add(name=name, datatype=_DATATYPES[array.dtype], shape=list(array.shape))
        request.raw_input_contents.append(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return request


def output_arrays(response: Any) -> dict[str, np.ndarray]:
    """A ModelInferResponse's raw outputs as arrays by name; ValueError when it has none."""
    if len(response.raw_output_contents) != len(response.outputs):
        raise ValueError(f"{len(response.outputs)} outputs but {len(response.raw_output_contents)} raw contents "
                         "(typed contents are not read here)")
    dtypes = {v: k for k, v in _DATATYPES.items()}
    return {o.name: np.frombuffer(raw, dtype=dtypes[o.datatype].newbyteorder("<")).reshape(tuple(o.shape))
            for o, raw in zip(response.outputs, response.raw_output_contents)}
