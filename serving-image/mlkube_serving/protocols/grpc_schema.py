"""The Open Inference Protocol's gRPC messages (package `inference`, service
`GRPCInferenceService`), built as protobuf descriptors at import time.

Written from the protocol's specification (KServe's "Open Inference Protocol", the same
messages Triton, MLServer and KServe serve): the field names, numbers and types below are the
wire contract tritonclient and the KServe SDK rely on. Building the descriptors in code keeps
protoc and generated modules out of the image; only `protobuf` and `grpcio` are needed.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE: Final = "inference"
SERVICE: Final = f"{PACKAGE}.GRPCInferenceService"
F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
SCALARS: Final = {
    "bool": F.TYPE_BOOL, "string": F.TYPE_STRING, "bytes": F.TYPE_BYTES, "int32": F.TYPE_INT32,
    "int64": F.TYPE_INT64, "uint32": F.TYPE_UINT32, "uint64": F.TYPE_UINT64,
    "float": F.TYPE_FLOAT, "double": F.TYPE_DOUBLE,
}  # fmt: skip

# (name, number, type, repeated?); a type that is not a scalar is a message of the package,
# "map:<message>" a map<string, message>, "oneof:<name>:<type>" a member of a oneof.
Field = tuple[str, int, str, bool]
PARAMS: Final[Field] = ("parameters", 4, "map:InferParameter", False)
TENSOR_HEAD: Final[list[Field]] = [
    ("name", 1, "string", False),
    ("datatype", 2, "string", False),
    ("shape", 3, "int64", True),
]
MESSAGES: Final[dict[str, list[Field]]] = {
    "ServerLiveRequest": [],
    "ServerLiveResponse": [("live", 1, "bool", False)],
    "ServerReadyRequest": [],
    "ServerReadyResponse": [("ready", 1, "bool", False)],
    "ModelReadyRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelReadyResponse": [("ready", 1, "bool", False)],
    "ServerMetadataRequest": [],
    "ServerMetadataResponse": [
        ("name", 1, "string", False),
        ("version", 2, "string", False),
        ("extensions", 3, "string", True),
    ],
    "ModelMetadataRequest": [("name", 1, "string", False), ("version", 2, "string", False)],
    "ModelMetadataResponse.TensorMetadata": TENSOR_HEAD,
    "ModelMetadataResponse": [
        ("name", 1, "string", False),
        ("versions", 2, "string", True),
        ("platform", 3, "string", False),
        ("inputs", 4, "ModelMetadataResponse.TensorMetadata", True),
        ("outputs", 5, "ModelMetadataResponse.TensorMetadata", True),
    ],
    "ModelInferRequest.InferInputTensor": [
        *TENSOR_HEAD,
        PARAMS,
        ("contents", 5, "InferTensorContents", False),
    ],
    "ModelInferRequest.InferRequestedOutputTensor": [
        ("name", 1, "string", False),
        ("parameters", 2, "map:InferParameter", False),
    ],
    "ModelInferRequest": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        PARAMS,
        ("inputs", 5, "ModelInferRequest.InferInputTensor", True),
        ("outputs", 6, "ModelInferRequest.InferRequestedOutputTensor", True),
        ("raw_input_contents", 7, "bytes", True),
    ],
    "ModelInferResponse.InferOutputTensor": [
        *TENSOR_HEAD,
        PARAMS,
        ("contents", 5, "InferTensorContents", False),
    ],
    "ModelInferResponse": [
        ("model_name", 1, "string", False),
        ("model_version", 2, "string", False),
        ("id", 3, "string", False),
        PARAMS,
        ("outputs", 5, "ModelInferResponse.InferOutputTensor", True),
        ("raw_output_contents", 6, "bytes", True),
    ],
    "InferParameter": [
        ("bool_param", 1, "oneof:parameter_choice:bool", False),
        ("int64_param", 2, "oneof:parameter_choice:int64", False),
        ("string_param", 3, "oneof:parameter_choice:string", False),
        ("double_param", 4, "oneof:parameter_choice:double", False),
        ("uint64_param", 5, "oneof:parameter_choice:uint64", False),
    ],
    "InferTensorContents": [
        ("bool_contents", 1, "bool", True),
        ("int_contents", 2, "int32", True),
        ("int64_contents", 3, "int64", True),
        ("uint_contents", 4, "uint32", True),
        ("uint64_contents", 5, "uint64", True),
        ("fp32_contents", 6, "float", True),
        ("fp64_contents", 7, "double", True),
        ("bytes_contents", 8, "bytes", True),
    ],
}
# rpc name -> (request message, response message)
METHODS: Final = {
    "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
    "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
    "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
    "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
    "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
    "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
}


def _add_fields(message: descriptor_pb2.DescriptorProto, full: str, fields: list[Field]) -> None:
    oneofs: dict[str, int] = {}
    for name, number, kind, repeated in fields:
        field = message.field.add(name=name, number=number)
        field.label = REPEATED if repeated else OPTIONAL
        if kind.startswith("oneof:"):
            _, group, kind = kind.split(":")
            if group not in oneofs:
                oneofs[group] = len(message.oneof_decl)
                message.oneof_decl.add(name=group)
            field.oneof_index = oneofs[group]
        if kind.startswith("map:"):
            entry = message.nested_type.add(name=_entry_name(name))
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=OPTIONAL)
            value = entry.field.add(name="value", number=2, label=OPTIONAL, type=F.TYPE_MESSAGE)
            value.type_name = f".{PACKAGE}.{kind[4:]}"
            field.label = REPEATED
            field.type = F.TYPE_MESSAGE
            field.type_name = f".{PACKAGE}.{full}.{entry.name}"
        elif kind in SCALARS:
            field.type = SCALARS[kind]  # type: ignore[assignment]
        else:
            field.type = F.TYPE_MESSAGE
            field.type_name = f".{PACKAGE}.{kind}"


def _entry_name(field: str) -> str:
    return "".join(part.capitalize() for part in field.split("_")) + "Entry"


def file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The protocol as one .proto file's descriptor (bench/serving writes it as a protoset)."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="mlkube/grpc_predict_v2.proto", package=PACKAGE, syntax="proto3"
    )
    tops: dict[str, descriptor_pb2.DescriptorProto] = {}
    for full, fields in sorted(MESSAGES.items(), key=lambda kv: kv[0].count(".")):
        parent, _, name = full.rpartition(".")
        if parent:
            message = tops[parent].nested_type.add(name=name)
        else:
            message = tops[full] = proto.message_type.add(name=full)
        _add_fields(message, full, fields)
    service = proto.service.add(name=SERVICE.rsplit(".", 1)[1])
    for rpc, (request, response) in METHODS.items():
        service.method.add(name=rpc, input_type=f".{PACKAGE}.{request}",
                           output_type=f".{PACKAGE}.{response}")  # fmt: skip
    return proto


def _classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor())
    return {
        full: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{full}"))
        for full in MESSAGES
    }


MESSAGE_CLASSES: Final = _classes()
