#!/bin/sh
# Build step: generate aigw_agent/aigw_pb2.py from the repo's proto/aigw.proto (not committed).
# Run it before `pip install python-agent` (editable or not) and again whenever the proto
# changes: importing aigw_agent never runs protoc; it refuses a file made from another proto.
# The first line records the proto's SHA-256 so aigw_agent/_proto.py can tell.
# With mypy-protobuf's protoc-gen-mypy on PATH (or in $PROTOC_GEN_MYPY) it also writes the
# type stub aigw_agent/aigw_pb2.pyi that `mypy --strict` checks the package against;
# without it an old stub is removed rather than left stale.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
PROTO_DIR="${AIGW_PROTO_DIR:-$HERE/../proto}"
PROTO="$PROTO_DIR/aigw.proto"
OUT="$HERE/aigw_agent"
command -v protoc >/dev/null 2>&1 || { echo "gen_proto.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -f "$PROTO" ] || { echo "gen_proto.sh: $PROTO not found (set AIGW_PROTO_DIR)" >&2; exit 1; }
if command -v sha256sum >/dev/null 2>&1; then
    SUM="$(sha256sum "$PROTO" | cut -d' ' -f1)"
elif command -v shasum >/dev/null 2>&1; then
    SUM="$(shasum -a 256 "$PROTO" | cut -d' ' -f1)"
else
    echo "gen_proto.sh: neither sha256sum nor shasum found" >&2
    exit 1
fi
PLUGIN="${PROTOC_GEN_MYPY:-$(command -v protoc-gen-mypy 2>/dev/null || true)}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP" "$OUT/.aigw_pb2.py.$$" "$OUT/.aigw_pb2.pyi.$$"' EXIT
set -- --proto_path="$PROTO_DIR" --python_out="$TMP"
[ -z "$PLUGIN" ] || set -- "$@" --plugin=protoc-gen-mypy="$PLUGIN" --mypy_out="$TMP"
# protoc-gen-mypy says "Writing mypy to ..." on stderr: show protoc's stderr only on failure
protoc "$@" "$PROTO" 2>"$TMP/stderr" || { cat "$TMP/stderr" >&2; exit 1; }
for f in aigw_pb2.py aigw_pb2.pyi; do
    [ -f "$TMP/$f" ] || continue
    # written next to the target, then renamed: an importer never sees half a file
    { echo "# aigw-proto-sha256: $SUM"; cat "$TMP/$f"; } > "$OUT/.$f.$$"
    mv "$OUT/.$f.$$" "$OUT/$f"
    echo "wrote $OUT/$f"
done
if [ -z "$PLUGIN" ] && [ -f "$OUT/aigw_pb2.pyi" ]; then
    rm -f "$OUT/aigw_pb2.pyi"
    echo "removed $OUT/aigw_pb2.pyi (protoc-gen-mypy not found: pip install mypy-protobuf)"
fi
