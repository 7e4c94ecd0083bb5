# Shared set-up for tools/run and tools/test: install the Debian packages that
# are missing, configure meson build directories and build. Sourced, not run.
# Every step checks first, so a second run does no set-up work again.

SHARDMQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Packages the build needs (meson, compilers, the libraries DESIGN.md names).
SHARDMQ_BUILD_PACKAGES=(
  g++ meson ninja-build pkg-config
  liburing-dev libabsl-dev libmimalloc-dev libssl-dev libwslay-dev libtoml11-dev
  libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# Packages only the tests need: clang for the libFuzzer build, real MQTT
# clients, mosquitto for side-by-side runs, Node.js for MQTT.js, Chromium to
# run MQTT.js's browser bundle over WebSocket (tests/integration/test_websocket.py).
SHARDMQ_TEST_PACKAGES=(
  clang libclang-rt-14-dev
  mosquitto mosquitto-clients
  python3 python3-pytest python3-paho-mqtt
  chromium
)

shardmq_log() { printf '[setup] %s\n' "$*" >&2; }

# Installs the named Debian packages that are not installed yet.
shardmq_install_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  # Node.js may come from another repository (nodesource); only install
  # Debian's when there is no node at all.
  if [[ " $* " == *" python3-pytest "* ]] && ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs npm)
  fi
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  shardmq_log "installing: ${missing[*]}"
  local sudo=()
  [[ $(id -u) -ne 0 ]] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

# Configures (once) and builds a meson build directory.
#   shardmq_build DIR [meson options...]
shardmq_build() {
  local dir="$1"
  shift
  if [[ ! -f "$SHARDMQ_ROOT/$dir/build.ninja" ]]; then
    shardmq_log "configuring $dir"
    meson setup "$SHARDMQ_ROOT/$dir" "$SHARDMQ_ROOT" "$@" >/dev/null
  fi
  shardmq_log "building $dir"
  ninja -C "$SHARDMQ_ROOT/$dir" -j "$(nproc)" >/dev/null || {
    # Show the compiler's output only when something failed.
    ninja -C "$SHARDMQ_ROOT/$dir" -j 1 | tail -60
    return 1
  }
}
