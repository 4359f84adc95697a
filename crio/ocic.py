"""``ocic``: crio's own CRI test client. Pod, container and image commands arrive with their issues."""

from __future__ import annotations

import json
import sys

import click
import grpc
from google.protobuf import json_format

from crio.core.api import api_pb2 as pb
from crio.core.api import api_pb2_grpc as pb_grpc

DEFAULT_ENDPOINT = "unix:///var/run/crio/crio.sock"


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
    response = _call(ctx, "Version", pb.VersionRequest(version="v1"))
    click.echo(json.dumps(json_format.MessageToDict(response), indent=2))  # type: ignore[arg-type]


@main.command()
@click.option("--verbose", is_flag=True, help="Include the runtime's verbose info.")
@click.pass_context
def info(ctx: click.Context, verbose: bool) -> None:
    """Print the runtime's status conditions and handlers."""
    response = _call(ctx, "Status", pb.StatusRequest(verbose=verbose))
    click.echo(json.dumps(json_format.MessageToDict(response), indent=2))  # type: ignore[arg-type]
