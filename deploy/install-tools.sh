#!/usr/bin/env sh
# Installs the system tools tests/deploy uses (Debian/Ubuntu, as root):
#   promtool, prometheus     Debian package "prometheus": config, rule and query checks, a live Prometheus
#   podman, podman-compose   the image build and the compose stack run (tests/deploy/test_compose_stack.py)
#   runc, netavark, aardvark-dns   container runtime, networks and service-name DNS for podman
#   debootstrap              the local Debian base image (no image registry needed)
# and sets, in /etc/containers/containers.conf, podman's runtime to runc with fixed rlimits (which kernels
# with hybrid cgroups need) and the netavark network backend. The other tools (hadolint, check-jsonschema,
# kubernetes-validate, kubectl) come with the project's "dev" extra.
#
# Idempotent. Locally a tool that cannot be installed makes its tests skip;
# under CI (CI=true) it is an error: exit status 1, and those tests fail instead of skipping.
set -eu

PACKAGES="prometheus podman podman-compose runc netavark aardvark-dns debootstrap chromium chromium-driver"
TOOLS="promtool prometheus podman podman-compose runc debootstrap chromium chromedriver"
# Helpers podman runs from its own directory: networks, and DNS between a compose stack's services.
HELPERS="/usr/lib/podman/netavark /usr/lib/podman/aardvark-dns"
CONTAINERS_CONF=${CONTAINERS_CONF:-/etc/containers/containers.conf}

fail() {
    echo "install-tools: $*" >&2
    if [ "${CI:-}" = "true" ]; then
        exit 1
    fi
    echo "install-tools: the tests that need it will skip" >&2
    exit 0
}

missing_tools() {
    for tool in $TOOLS; do
        command -v "$tool" >/dev/null 2>&1 || printf '%s ' "$tool"
    done
    for helper in $HELPERS; do
        [ -x "$helper" ] || printf '%s ' "$(basename "$helper")"
    done
}

# Sets `key = value` in [section] of the TOML file $CONTAINERS_CONF unless the key is already set there.
set_containers_conf() {
    section=$1 key=$2 value=$3
    mkdir -p "$(dirname "$CONTAINERS_CONF")"
    touch "$CONTAINERS_CONF"
    if awk -v s="[$section]" -v k="$key" '
        /^\[/ { inside = ($0 == s) }
        inside && $1 == k { found = 1 }
        END { exit !found }' "$CONTAINERS_CONF"; then
        return
    fi
    if grep -qx "\[$section\]" "$CONTAINERS_CONF"; then
        sed -i "/^\[$section\]\$/a $key = $value" "$CONTAINERS_CONF"
    else
        printf '\n[%s]\n%s = %s\n' "$section" "$key" "$value" >>"$CONTAINERS_CONF"
    fi
    echo "install-tools: $CONTAINERS_CONF [$section] $key = $value"
}

if [ -n "$(missing_tools)" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        fail "missing $(missing_tools)and not root: run this script as root"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        fail "missing $(missing_tools)and no apt-get here: install $PACKAGES by hand"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt-get rather than fail on its lock.
    apt="apt-get -q -o DPkg::Lock::Timeout=600"
    # shellcheck disable=SC2086
    if ! { $apt update >/dev/null && $apt install -y --no-install-recommends $PACKAGES >/dev/null; }; then
        fail "apt-get could not install $PACKAGES"
    fi
    if [ -n "$(missing_tools)" ]; then
        fail "still missing after apt-get install: $(missing_tools)"
    fi
fi

if [ "$(id -u)" -eq 0 ]; then
    # crun refuses hybrid cgroups; the runtime may not raise rlimits above these.
    set_containers_conf engine runtime '"runc"'
    set_containers_conf containers default_ulimits '["nofile=1024:1024", "nproc=1024:1024"]'
    # netavark with aardvark-dns: compose services find each other by name.
    set_containers_conf network network_backend '"netavark"'
elif ! grep -qs 'runtime *= *"runc"' "$CONTAINERS_CONF"; then
    fail "not root: cannot write the podman settings to $CONTAINERS_CONF"
fi

echo "install-tools: $(promtool --version 2>&1 | head -n 1)"
echo "install-tools: $(podman --version), podman-compose $(podman-compose version 2>/dev/null | sed -n "s/^podman-compose[a-z]* version *//p")"
