"""The standard gRPC health service, answering with which service and version replied.

`Check` sends `ragplatform-service` and `ragplatform-version` as initial metadata, so that
`ragplatform status` (or `grpcurl -v`) shows what runs behind an address without a new RPC.
The health protocol itself is unchanged: probes and load balancers see the standard service.
"""

from __future__ import annotations

from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from ragplatform import __version__

SERVICE_KEY = "ragplatform-service"
VERSION_KEY = "ragplatform-version"


class IdentifyingHealthServicer(HealthServicer):  # type: ignore[misc]
    def __init__(self, service: str) -> None:
        super().__init__()
        self._identity = ((SERVICE_KEY, service), (VERSION_KEY, __version__))

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        await context.send_initial_metadata(self._identity)
        return await super().Check(request, context)
