"""`ragplatform dev` authenticates its internal calls: its internal ports refuse a caller without
the token it generated (issue 10: they used to hand out any tenant's data), while the gateway,
which holds the token, still answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from ragplatform.v1 import gateway_pb2, gateway_pb2_grpc, ingestion_pb2, ingestion_pb2_grpc
from tests.support.platform_processes import free_port_block, wait_serving

pytestmark = pytest.mark.e2e


def test_dev_internal_services_refuse_calls_without_the_generated_token(tmp_path: Path) -> None:
    base, data_dir = free_port_block(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ragplatform",
            "dev",
            "--data-dir",
            str(data_dir),
            "--port-base",
            str(base),
            "--metrics-base",
            "0",
        ],
        env={**env, "RAG_EMBEDDER": "hashing", "RAG_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(f"127.0.0.1:{base}", timeout=120, process=process)
        token = (data_dir / "internal-token").read_text().strip()
        assert len(token) >= 40
        assert (data_dir / "internal-token").stat().st_mode & 0o077 == 0
        with grpc.insecure_channel(f"127.0.0.1:{base + 1}") as channel:  # the ingestion service
            stub = ingestion_pb2_grpc.IngestionServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.ListDocuments(ingestion_pb2.ListDocumentsRequest(tenant_id="dev"), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            with pytest.raises(grpc.RpcError) as info:
                stub.ListDocuments(
                    ingestion_pb2.ListDocumentsRequest(tenant_id="dev"),
                    metadata=(("x-ragplatform-internal-token", "guessed"),),
                    timeout=10,
                )
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        key = (data_dir / "dev-api-key").read_text().strip()
        with grpc.insecure_channel(f"127.0.0.1:{base}") as channel:
            reply = gateway_pb2_grpc.GatewayServiceStub(channel).ListDocuments(
                gateway_pb2.GatewayListDocumentsRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=10
            )
        assert list(reply.documents) == []
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
