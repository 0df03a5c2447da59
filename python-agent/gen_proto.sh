#!/bin/sh
# Generate aigw_agent/aigw_pb2.py from the repo's proto/aigw.proto (not committed).
# Run before a plain (non-editable) `pip install python-agent`.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
PROTO_DIR="${AIGW_PROTO_DIR:-$HERE/../proto}"
command -v protoc >/dev/null 2>&1 || { echo "gen_proto.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
protoc --proto_path="$PROTO_DIR" --python_out="$HERE/aigw_agent" "$PROTO_DIR/aigw.proto"
echo "wrote $HERE/aigw_agent/aigw_pb2.py"
