#!/usr/bin/env bash
# Regenerates the Python gRPC code of proto/ into service/api (or into the folder given as $1).
# Usage: proto/generate.sh [OUT_DIR]; PYTHON selects the interpreter (it needs grpcio-tools).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../service/api}"
python="${PYTHON:-python3}"
mkdir -p "$out"
cd "$here"
protos=(translation/v1/translation.proto)
"$python" -m grpc_tools.protoc -I . --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"
# protoc writes imports relative to proto/ ("from translation.v1 import ..."); make them absolute.
for f in "$out"/translation/v1/*_pb2*.py "$out"/translation/v1/*.pyi; do
  sed -i 's/^from translation\.v1 import /from service.api.translation.v1 import /' "$f"
done
for d in "$out" "$out/translation" "$out/translation/v1"; do
  printf '"""Generated from proto/ by proto/generate.sh; do not edit."""\n' > "$d/__init__.py"
done
