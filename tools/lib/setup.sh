# Shared set-up for tools/run and tools/test: install the Debian packages that
# are missing, configure meson build directories and build. Sourced, not run.
# Every step checks first, so a second run does no set-up work again.

SHARDMQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Packages the build needs (meson, compilers, the libraries DESIGN.md names).
SHARDMQ_BUILD_PACKAGES=(
  g++ meson ninja-build pkg-config
  liburing-dev libabsl-dev libmimalloc-dev libssl-dev libwslay-dev libtoml11-dev
  libcpp-httplib-dev librabbitmq-dev libhiredis-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
# Packages only the tests need: clang for the libFuzzer build, real MQTT
# clients, mosquitto for side-by-side runs, Node.js for MQTT.js, Chromium to
# run MQTT.js's browser bundle over WebSocket (tests/integration/test_websocket.py),
# RabbitMQ for the cluster tests (tests/integration/test_cluster.py starts its own),
# Redis for RedisLink's tests (tests/cluster/redis_link_test.cc starts its own),
# pytest-xdist to run the integration test files two at a time.
SHARDMQ_TEST_PACKAGES=(
  clang libclang-rt-14-dev
  mosquitto mosquitto-clients rabbitmq-server redis-server
  python3 python3-pytest python3-pytest-xdist python3-paho-mqtt
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

# Configures a meson build directory once (later runs keep its options).
#   shardmq_configure DIR [meson options...]
shardmq_configure() {
  local dir="$1"
  shift
  if [[ ! -f "$SHARDMQ_ROOT/$dir/build.ninja" ]]; then
    shardmq_log "configuring $dir"
    meson setup "$SHARDMQ_ROOT/$dir" "$SHARDMQ_ROOT" "$@" >/dev/null
  fi
}

# Configures (once) and builds a meson build directory: everything, or with
# SHARDMQ_BUILD_TARGETS set (ninja target paths, space-separated) only those.
#   shardmq_build DIR [meson options...]
shardmq_build() {
  shardmq_configure "$@" || return 1
  local dir="$1"
  local targets=()
  read -r -a targets <<<"${SHARDMQ_BUILD_TARGETS:-}"
  shardmq_log "building $dir${targets[*]:+ (${#targets[@]} targets)}"
  ninja -C "$SHARDMQ_ROOT/$dir" -j "$(nproc)" "${targets[@]}" >/dev/null || {
    # Show the compiler's output only when something failed.
    ninja -C "$SHARDMQ_ROOT/$dir" -j 1 "${targets[@]}" | tail -60
    return 1
  }
}

# The ninja targets of a configured build dir's tests in one meson suite
# (paths relative to the build dir), for SHARDMQ_BUILD_TARGETS.
#   shardmq_suite_targets DIR SUITE
shardmq_suite_targets() {
  # Regenerate first if a meson.build changed, so new tests are listed.
  ninja -C "$SHARDMQ_ROOT/$1" build.ninja >/dev/null || return 1
  meson introspect --tests "$SHARDMQ_ROOT/$1" | /usr/bin/python3 -c '
import json, os, sys
build, suite = sys.argv[1], sys.argv[2]
for test in json.load(sys.stdin):
    if any(s.split(":")[-1] == suite for s in test["suite"]):
        print(os.path.relpath(test["cmd"][0], build))
' "$SHARDMQ_ROOT/$1" "$2"
}
