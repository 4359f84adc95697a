"""``ocic``: crio's own CRI test client. Pod, container and image commands arrive with their issues."""

from __future__ import annotations

import base64
import json
import sys
from typing import TypeVar

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from crio.core.api import api_pb2 as pb
from crio.core.api import api_pb2_grpc as pb_grpc

DEFAULT_ENDPOINT = "unix:///var/run/crio/crio.sock"

M = TypeVar("M", bound=Message)


def _runtime(endpoint: str) -> pb_grpc.RuntimeServiceStub:
    target = endpoint if endpoint.startswith("unix:") else f"unix:{endpoint}"
    return pb_grpc.RuntimeServiceStub(grpc.insecure_channel(target))  # type: ignore[no-untyped-call]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--connect", default=DEFAULT_ENDPOINT, show_default=True, help="The daemon's CRI socket.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for each call.")
@click.pass_context
def main(ctx: click.Context, connect: str, timeout: float) -> None:
    """ocic: talk to a crio daemon over the CRI socket."""
    ctx.obj = {"endpoint": connect, "timeout": timeout}


def _load_config(path: str, message: M) -> M:
    """Parse a CRI JSON config file (the JSON crictl takes) into ``message``.

    Environment values are plain text in crictl's files; the wire type is bytes, so they are encoded here.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        for env in data.get("envs", []) if isinstance(data, dict) else []:
            if isinstance(env, dict) and isinstance(env.get("value"), str):
                env["value"] = base64.b64encode(env["value"].encode()).decode()
        return json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except (OSError, ValueError, json_format.ParseError) as exc:
        click.echo(f"ocic: {path}: {exc}", err=True)
        sys.exit(1)


def _print(message: object) -> None:
    click.echo(json.dumps(json_format.MessageToDict(message), indent=2))  # type: ignore[arg-type]


def _call(ctx: click.Context, name: str, request: object) -> object:
    try:
        return getattr(_runtime(ctx.obj["endpoint"]), name)(request, timeout=ctx.obj["timeout"])
    except grpc.RpcError as exc:
        click.echo(f"ocic: {name}: {exc.code().name}: {exc.details()}", err=True)
        sys.exit(1)


@main.command()
@click.pass_context
def version(ctx: click.Context) -> None:
    """Print the runtime's name and versions."""
    _print(_call(ctx, "Version", pb.VersionRequest(version="v1")))


@main.command()
@click.option("--verbose", is_flag=True, help="Include the runtime's verbose info.")
@click.pass_context
def info(ctx: click.Context, verbose: bool) -> None:
    """Print the runtime's status conditions and handlers."""
    _print(_call(ctx, "Status", pb.StatusRequest(verbose=verbose)))


@main.group()
def pod() -> None:
    """Pod sandboxes."""


@pod.command("run")
@click.option("--config", "config_path", required=True, help="PodSandboxConfig as JSON (crictl's format).")
@click.option("--runtime", default="", help="Runtime handler name.")
@click.pass_context
def pod_run(ctx: click.Context, config_path: str, runtime: str) -> None:
    """Run a pod sandbox and print its ID."""
    config = _load_config(config_path, pb.PodSandboxConfig())
    response = _call(ctx, "RunPodSandbox", pb.RunPodSandboxRequest(config=config, runtime_handler=runtime))
    click.echo(response.pod_sandbox_id)  # type: ignore[attr-defined]


@pod.command("status")
@click.option("--id", "pod_id", required=True)
@click.option("--verbose", is_flag=True)
@click.pass_context
def pod_status(ctx: click.Context, pod_id: str, verbose: bool) -> None:
    """Print a pod sandbox's status."""
    _print(_call(ctx, "PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id, verbose=verbose)))


@pod.command("stop")
@click.option("--id", "pod_id", required=True)
@click.pass_context
def pod_stop(ctx: click.Context, pod_id: str) -> None:
    """Stop a pod sandbox."""
    _call(ctx, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    click.echo(pod_id)


@pod.command("remove")
@click.option("--id", "pod_id", required=True)
@click.pass_context
def pod_remove(ctx: click.Context, pod_id: str) -> None:
    """Remove a pod sandbox."""
    _call(ctx, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))
    click.echo(pod_id)


@pod.command("list")
@click.option("--id", "pod_id", default="", help="Only this ID (or unique prefix).")
@click.option("--label", "labels", multiple=True, help="key=value label selector (repeatable).")
@click.pass_context
def pod_list(ctx: click.Context, pod_id: str, labels: tuple[str, ...]) -> None:
    """List pod sandboxes."""
    selector = dict(item.split("=", 1) for item in labels)
    request = pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(id=pod_id, label_selector=selector))
    _print(_call(ctx, "ListPodSandbox", request))


@main.group()
def ctr() -> None:
    """Containers."""


@ctr.command("create")
@click.option("--pod", "pod_id", required=True, help="The pod sandbox ID.")
@click.option("--config", "config_path", required=True, help="ContainerConfig as JSON (crictl's format).")
@click.option(
    "--pod-config", "pod_config_path", default="", help="The pod's PodSandboxConfig JSON, if needed."
)
@click.pass_context
def ctr_create(ctx: click.Context, pod_id: str, config_path: str, pod_config_path: str) -> None:
    """Create a container in a pod and print its ID."""
    request = pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=_load_config(config_path, pb.ContainerConfig())
    )
    if pod_config_path:
        request.sandbox_config.CopyFrom(_load_config(pod_config_path, pb.PodSandboxConfig()))
    click.echo(_call(ctx, "CreateContainer", request).container_id)  # type: ignore[attr-defined]


@ctr.command("start")
@click.option("--id", "container_id", required=True)
@click.pass_context
def ctr_start(ctx: click.Context, container_id: str) -> None:
    """Start a created container."""
    _call(ctx, "StartContainer", pb.StartContainerRequest(container_id=container_id))
    click.echo(container_id)


@ctr.command("status")
@click.option("--id", "container_id", required=True)
@click.option("--verbose", is_flag=True)
@click.pass_context
def ctr_status(ctx: click.Context, container_id: str, verbose: bool) -> None:
    """Print a container's status."""
    _print(
        _call(ctx, "ContainerStatus", pb.ContainerStatusRequest(container_id=container_id, verbose=verbose))
    )


@ctr.command("stop")
@click.option("--id", "container_id", required=True)
@click.option("--timeout", "stop_timeout", default=10, show_default=True, help="Seconds before SIGKILL.")
@click.pass_context
def ctr_stop(ctx: click.Context, container_id: str, stop_timeout: int) -> None:
    """Stop a container."""
    _call(ctx, "StopContainer", pb.StopContainerRequest(container_id=container_id, timeout=stop_timeout))
    click.echo(container_id)


@ctr.command("remove")
@click.option("--id", "container_id", required=True)
@click.pass_context
def ctr_remove(ctx: click.Context, container_id: str) -> None:
    """Remove a container."""
    _call(ctx, "RemoveContainer", pb.RemoveContainerRequest(container_id=container_id))
    click.echo(container_id)


@ctr.command("list")
@click.option("--pod", "pod_id", default="", help="Only the containers of this pod.")
@click.pass_context
def ctr_list(ctx: click.Context, pod_id: str) -> None:
    """List containers."""
    _print(
        _call(
            ctx, "ListContainers", pb.ListContainersRequest(filter=pb.ContainerFilter(pod_sandbox_id=pod_id))
        )
    )


def _images(endpoint: str) -> pb_grpc.ImageServiceStub:
    target = endpoint if endpoint.startswith("unix:") else f"unix:{endpoint}"
    return pb_grpc.ImageServiceStub(grpc.insecure_channel(target))  # type: ignore[no-untyped-call]


def _image_call(ctx: click.Context, name: str, request: object) -> object:
    try:
        return getattr(_images(ctx.obj["endpoint"]), name)(request, timeout=max(ctx.obj["timeout"], 600))
    except grpc.RpcError as exc:
        click.echo(f"ocic: {name}: {exc.code().name}: {exc.details()}", err=True)
        sys.exit(1)


@main.group()
def image() -> None:
    """Images."""


@image.command("pull")
@click.argument("name")
@click.pass_context
def image_pull(ctx: click.Context, name: str) -> None:
    """Pull an image and print its ID."""
    response = _image_call(ctx, "PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=name)))
    click.echo(response.image_ref)  # type: ignore[attr-defined]


@image.command("list")
@click.pass_context
def image_list(ctx: click.Context) -> None:
    """List images."""
    _print(_image_call(ctx, "ListImages", pb.ListImagesRequest()))


@image.command("status")
@click.argument("name")
@click.pass_context
def image_status(ctx: click.Context, name: str) -> None:
    """Print one image's status."""
    _print(_image_call(ctx, "ImageStatus", pb.ImageStatusRequest(image=pb.ImageSpec(image=name))))


@image.command("remove")
@click.argument("name")
@click.pass_context
def image_remove(ctx: click.Context, name: str) -> None:
    """Remove an image."""
    _image_call(ctx, "RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=name)))
    click.echo(name)
