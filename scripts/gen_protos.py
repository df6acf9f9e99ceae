"""Regenerate the Python stubs in client/interest/v1 from protos/ (one command, typed output)."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
DEFAULT_OUT = ROOT / "client"


def generate(out_dir: Path = DEFAULT_OUT) -> list[Path]:
    """Run protoc over every .proto under protos/ and return the files written."""
    protos = sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed: " + " ".join(args))
    written = []
    for proto in protos:
        package_dir = out_dir / Path(proto).parent
        # Make every level below out_dir an importable package.
        level = out_dir
        for part in Path(proto).parent.parts:
            level = level / part
            (level / "__init__.py").touch()
        stem = Path(proto).stem
        written += [package_dir / f"{stem}_pb2.py", package_dir / f"{stem}_pb2.pyi",
                    package_dir / f"{stem}_pb2_grpc.py"]
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for path in generate(out):
        print(path.relative_to(out))
