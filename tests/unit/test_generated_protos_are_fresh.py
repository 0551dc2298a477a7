"""The generated gRPC code in services/ragplatform/v1 matches protos/: `make protos` was run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "services" / "ragplatform" / "v1"


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos" / "ragplatform" / "v1").glob("*.proto"))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            "protos",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            f"--mypy_out={tmp_path}",
            f"--mypy_grpc_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    fresh = tmp_path / "ragplatform" / "v1"
    fresh_files = {p.name for p in fresh.iterdir() if p.is_file()}
    committed = {p.name for p in GENERATED.iterdir() if p.is_file() and p.name not in ("__init__.py", "py.typed")}
    assert fresh_files == committed, "generated files differ from protos/: run `make protos`"
    stale = [name for name in sorted(fresh_files) if (fresh / name).read_bytes() != (GENERATED / name).read_bytes()]
    assert not stale, f"stale generated code {stale}: run `make protos` and commit the result"
