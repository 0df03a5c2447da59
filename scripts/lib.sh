# Shared helpers for scripts/run, scripts/test and scripts/bench (sourced, not run).
# Installs what is missing (Debian packages, a Python venv), builds with CMake.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AIGW_BUILD_DIR:-$ROOT/build}"
VENV="${AIGW_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

APT_PACKAGES="build-essential cmake ninja-build pkg-config python3 python3-venv python3-pip \
libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler \
libcurl4-openssl-dev libmicrohttpd-dev libmsgpack-dev libcjson-dev libcmocka-dev \
libsqlite3-dev libgnutls28-dev libhiredis-dev redis-server iproute2 \
nginx libnginx-mod-http-echo wrk curl openssl"

# Tools looked up by command and installed from Debian only when missing (command:package).
# A NodeSource nodejs already ships npm, so Debian's npm is never installed over it.
TOOL_PACKAGES="node:nodejs npm:npm chromium:chromium promtool:prometheus"

log() { printf '\033[1;34m[aigw]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[aigw] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Install Debian packages that are not installed yet (needs root or sudo).
ensure_apt() {
    local missing=()
    for p in $APT_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install failed: ${missing[*]}"
}

# Install the dashboard/observability tools (Node, npm, Chromium, promtool) if absent.
ensure_tools() {
    command -v node >/dev/null 2>&1 || ensure_apt nodejs
    local missing=() pair
    for pair in $TOOL_PACKAGES; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] || ensure_apt "${missing[@]}"
}

# True if node is >= 20.19 (what ui/package.json asks for).
node_ok() {
    node -e 'const [a, b] = process.versions.node.split(".").map(Number);
             process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null
}

# Build the dashboard into ui/dist (served by the edge): npm ci when node_modules is
# missing or package-lock.json changed since, then npm run build. Returns 1 on failure.
build_ui() {
    local ui="$ROOT/ui"
    if ! command -v npm >/dev/null 2>&1 || ! node_ok; then
        log "the dashboard needs Node >= 20.19 and npm (found: $(node --version 2>/dev/null || echo none))"
        return 1
    fi
    if [ ! -f "$ui/node_modules/.package-lock.json" ] \
        || [ "$ui/package-lock.json" -nt "$ui/node_modules/.package-lock.json" ]; then
        log "installing the dashboard's npm packages (npm ci)"
        (cd "$ui" && npm ci --no-audit --no-fund >/dev/null) || { log "npm ci failed"; return 1; }
    fi
    log "building the dashboard (ui/dist)"
    (cd "$ui" && npm run build >/dev/null) || { log "npm run build failed"; return 1; }
}

# Configure and build everything into $BUILD (binaries in $BUILD/bin). Extra arguments
# are CMake options, applied to an existing build directory too (e.g. -DAIGW_WERROR=ON).
build_all() {
    local gen=""
    command -v ninja >/dev/null && gen="-G Ninja"
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$ROOT" -B "$BUILD" $gen -DCMAKE_BUILD_TYPE="${AIGW_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null \
            || die "cmake configure failed"
    elif [ $# -gt 0 ]; then
        cmake -S "$ROOT" -B "$BUILD" "$@" >/dev/null || die "cmake configure failed"
    fi
    cmake --build "$BUILD" -j"$(nproc)" || die "build failed"
}

# Python venv with the agent/test dependencies. Falls back to Debian's packages
# (python3-zmq python3-protobuf python3-msgpack python3-pytest) if PyPI is unreachable.
ensure_venv() {
    local stamp="$VENV/.aigw-deps-ok"
    if [ -f "$stamp" ] && [ "$stamp" -nt "$ROOT/scripts/requirements.txt" ] \
        && [ "$stamp" -nt "$ROOT/python-agent/pyproject.toml" ] && [ "$stamp" -nt "$ROOT/proto/aigw.proto" ] \
        && [ "$stamp" -nt "$ROOT/python-agent/gen_proto.sh" ] \
        && [ -f "$ROOT/python-agent/aigw_agent/aigw_pb2.py" ]; then
        return 0
    fi
    if [ ! -x "$PY" ]; then
        python3 -m venv "$VENV" || die "python3 -m venv failed"
    fi
    log "installing Python packages into $VENV"
    # Generating aigw_pb2.py (and its type stub, with mypy-protobuf's plugin from the
    # requirements) is the build step; importing the package writes nothing
    if "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/scripts/requirements.txt"; then
        PATH="$VENV/bin:$PATH" sh "$ROOT/python-agent/gen_proto.sh" >/dev/null \
            || die "protoc for python-agent failed"
        if "$PY" -m pip install -q --disable-pip-version-check -e "$ROOT/python-agent"; then
            touch "$stamp"
            return 0
        fi
    fi
    log "pip failed; falling back to Debian's python3 packages"
    sh "$ROOT/python-agent/gen_proto.sh" >/dev/null || die "protoc for python-agent failed"
    ensure_apt python3-zmq python3-protobuf python3-msgpack python3-pytest
    rm -rf "$VENV"
    python3 -m venv --system-site-packages "$VENV" || die "venv failed"
    "$PY" -m pip install -q --no-deps --no-build-isolation -e "$ROOT/python-agent" \
        || die "cannot install python-agent"
    touch "$stamp"
}
