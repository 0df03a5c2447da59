#!/bin/sh
# Generate aigw_agent/aigw_pb2.py from the repo's proto/aigw.proto (not committed).
# Run before a plain (non-editable) `pip install python-agent`.
# The first line records the proto's SHA-256 so aigw_agent/_proto.py can tell when the
# proto has changed since (and regenerate the file then).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
PROTO_DIR="${AIGW_PROTO_DIR:-$HERE/../proto}"
command -v protoc >/dev/null 2>&1 || { echo "gen_proto.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
protoc --proto_path="$PROTO_DIR" --python_out="$TMP" "$PROTO_DIR/aigw.proto"
if command -v sha256sum >/dev/null 2>&1; then
    SUM="$(sha256sum "$PROTO_DIR/aigw.proto" | cut -d' ' -f1)"
    { echo "# aigw-proto-sha256: $SUM"; cat "$TMP/aigw_pb2.py"; } > "$TMP/out.py"
    mv "$TMP/out.py" "$TMP/aigw_pb2.py"
fi
mv "$TMP/aigw_pb2.py" "$HERE/aigw_agent/aigw_pb2.py"
echo "wrote $HERE/aigw_agent/aigw_pb2.py"
