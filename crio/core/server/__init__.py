"""The gRPC layer: the only part of crio that knows the CRI wire format."""
