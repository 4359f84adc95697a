"""Checks the generated CRI v1 stubs (crio.core.api) against the pinned k8s.io/cri-api proto.

The expected values below are written out literally from pkg/apis/runtime/v1/api.proto of the
pinned release, so that a regeneration (hack/regen-api.sh) that drops, adds or renumbers
something fails here and gets looked at. Update them together with CRI_API_VERSION.
"""

import sys
from pathlib import Path

import pytest
from google.protobuf.descriptor import ServiceDescriptor

from crio.core import api
from crio.core.api import api_pb2, api_pb2_grpc

PINNED_VERSION = "v0.37.2"

# Every RPC of RuntimeService, in the proto's order.
RUNTIME_SERVICE_RPCS = [
    "Version",
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "PodSandboxStatus",
    "ListPodSandbox",
    "StreamPodSandboxes",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "ListContainers",
    "StreamContainers",
    "ContainerStatus",
    "UpdateContainerResources",
    "ReopenContainerLog",
    "ExecSync",
    "Exec",
    "Attach",
    "PortForward",
    "ContainerStats",
    "ListContainerStats",
    "StreamContainerStats",
    "PodSandboxStats",
    "ListPodSandboxStats",
    "StreamPodSandboxStats",
    "UpdateRuntimeConfig",
    "Status",
    "CheckpointContainer",
    "CheckpointPod",
    "RestorePod",
    "GetContainerEvents",
    "ListMetricDescriptors",
    "ListPodSandboxMetrics",
    "StreamPodSandboxMetrics",
    "RuntimeConfig",
    "UpdatePodSandboxResources",
]

# Every RPC of ImageService, in the proto's order.
IMAGE_SERVICE_RPCS = [
    "ListImages",
    "StreamImages",
    "ImageStatus",
    "PullImage",
    "RemoveImage",
    "ImageFsInfo",
]

# The RPCs that return a server stream; all others are unary-unary.
SERVER_STREAMING_RPCS = {
    ("RuntimeService", "StreamPodSandboxes"),
    ("RuntimeService", "StreamContainers"),
    ("RuntimeService", "StreamContainerStats"),
    ("RuntimeService", "StreamPodSandboxStats"),
    ("RuntimeService", "GetContainerEvents"),
    ("RuntimeService", "StreamPodSandboxMetrics"),
    ("ImageService", "StreamImages"),
}

# (service, rpc, request type, response type) for a sample of RPCs.
RPC_TYPES = [
    ("RuntimeService", "Version", "VersionRequest", "VersionResponse"),
    ("RuntimeService", "RunPodSandbox", "RunPodSandboxRequest", "RunPodSandboxResponse"),
    ("RuntimeService", "CreateContainer", "CreateContainerRequest", "CreateContainerResponse"),
    ("RuntimeService", "ExecSync", "ExecSyncRequest", "ExecSyncResponse"),
    ("RuntimeService", "Status", "StatusRequest", "StatusResponse"),
    ("RuntimeService", "StreamContainers", "StreamContainersRequest", "StreamContainersResponse"),
    ("RuntimeService", "GetContainerEvents", "GetEventsRequest", "ContainerEventResponse"),
    ("RuntimeService", "CheckpointPod", "CheckpointPodRequest", "CheckpointPodResponse"),
    ("RuntimeService", "RestorePod", "RestorePodRequest", "RestorePodResponse"),
    ("ImageService", "PullImage", "PullImageRequest", "PullImageResponse"),
    ("ImageService", "ImageFsInfo", "ImageFsInfoRequest", "ImageFsInfoResponse"),
]

# (message, field, number) for a sample of fields across the important messages.
FIELD_NUMBERS = [
    ("VersionResponse", "version", 1),
    ("VersionResponse", "runtime_api_version", 4),
    ("PodSandboxConfig", "metadata", 1),
    ("PodSandboxConfig", "log_directory", 3),
    ("PodSandboxConfig", "linux", 8),
    ("RunPodSandboxRequest", "runtime_handler", 2),
    ("ContainerConfig", "metadata", 1),
    ("ContainerConfig", "mounts", 7),
    ("ContainerConfig", "log_path", 11),
    ("ContainerConfig", "linux", 15),
    ("ContainerConfig", "CDI_devices", 17),
    ("ContainerConfig", "stop_signal", 18),
    ("CreateContainerRequest", "sandbox_config", 3),
    ("LinuxContainerSecurityContext", "privileged", 2),
    ("LinuxContainerSecurityContext", "run_as_user", 5),
    ("LinuxContainerSecurityContext", "no_new_privs", 11),
    ("LinuxContainerSecurityContext", "run_as_group", 12),
    ("LinuxContainerSecurityContext", "seccomp", 15),
    ("LinuxContainerSecurityContext", "apparmor", 16),
    ("LinuxContainerSecurityContext", "supplemental_groups_policy", 17),
    ("Mount", "propagation", 5),
    ("Mount", "mount_options", 11),
    ("ContainerStatus", "stop_signal", 19),
    ("StatusResponse", "status", 1),
    ("StatusResponse", "runtime_handlers", 3),
    ("StatusResponse", "features", 4),
    ("RuntimeFeatures", "mount_options", 3),
    ("PullImageRequest", "image", 1),
    ("PullImageRequest", "auth", 2),
    ("PullImageRequest", "sandbox_config", 3),
    ("RestorePodRequest", "container_configs", 5),
]


def _service(name: str) -> ServiceDescriptor:
    return api_pb2.DESCRIPTOR.services_by_name[name]


def test_file_descriptor() -> None:
    assert api_pb2.DESCRIPTOR.name == "api.proto"
    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert sorted(api_pb2.DESCRIPTOR.services_by_name) == ["ImageService", "RuntimeService"]


def test_pinned_version() -> None:
    assert api.CRI_API_VERSION == PINNED_VERSION
    version_file = Path(api.__file__).with_name("VERSION")
    lines = version_file.read_text().splitlines()
    assert lines[0] == f"k8s.io/cri-api {PINNED_VERSION}"


def test_runtime_service_rpcs() -> None:
    service = _service("RuntimeService")
    assert service.full_name == "runtime.v1.RuntimeService"
    assert [m.name for m in service.methods] == RUNTIME_SERVICE_RPCS
    assert len(RUNTIME_SERVICE_RPCS) == 37


def test_image_service_rpcs() -> None:
    service = _service("ImageService")
    assert service.full_name == "runtime.v1.ImageService"
    assert [m.name for m in service.methods] == IMAGE_SERVICE_RPCS
    assert len(IMAGE_SERVICE_RPCS) == 6


def test_streaming_rpcs() -> None:
    streaming = set()
    for service_name in ("RuntimeService", "ImageService"):
        for method in _service(service_name).methods:
            assert not method.client_streaming, method.full_name
            if method.server_streaming:
                streaming.add((service_name, method.name))
    assert streaming == SERVER_STREAMING_RPCS


@pytest.mark.parametrize(("service", "rpc", "request_type", "response_type"), RPC_TYPES)
def test_rpc_types(service: str, rpc: str, request_type: str, response_type: str) -> None:
    method = _service(service).methods_by_name[rpc]
    assert method.input_type.full_name == f"runtime.v1.{request_type}"
    assert method.output_type.full_name == f"runtime.v1.{response_type}"


@pytest.mark.parametrize(("message", "field", "number"), FIELD_NUMBERS)
def test_field_numbers(message: str, field: str, number: int) -> None:
    descriptor = api_pb2.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.fields_by_name[field].number == number


def test_signal_enum_values() -> None:
    # cri-api v0.37 renamed the Signal values with a SIGNAL_ prefix; the numbers are unchanged.
    assert api_pb2.Signal.Value("SIGNAL_RUNTIME_DEFAULT") == 0
    assert api_pb2.Signal.Value("SIGNAL_SIGKILL") == 13
    assert api_pb2.Signal.Value("SIGNAL_SIGTERM") == 23
    assert api_pb2.Signal.Value("SIGNAL_SIGRTMAX") == 65


def test_grpc_module_uses_package_relative_import() -> None:
    # hack/regen-api.sh rewrites protoc's top-level `import api_pb2` to `from . import api_pb2`.
    assert vars(api_pb2_grpc)["api__pb2"] is api_pb2
    assert api_pb2.__name__ == "crio.core.api.api_pb2"
    assert "api_pb2" not in sys.modules
    assert callable(api_pb2_grpc.RuntimeServiceStub)
    assert callable(api_pb2_grpc.add_RuntimeServiceServicer_to_server)
    assert callable(api_pb2_grpc.add_ImageServiceServicer_to_server)
