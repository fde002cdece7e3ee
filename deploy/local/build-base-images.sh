#!/usr/bin/env sh
# Builds, without any image registry, the base images docker-compose.local.yml uses (as root, with podman):
#   localhost/mt-debian:bookworm             Debian bookworm minbase (debootstrap, podman import)
#   localhost/mt-debian-python:bookworm      + Debian's python3 (3.11), python3-venv   (python.Containerfile)
#                                            and this host's CA bundle, for pip (a TLS-inspecting proxy)
#   localhost/mt-debian-prometheus:bookworm  + Debian's prometheus, wget               (prometheus.Containerfile)
# An image whose inputs (build_debian below, suite and mirror; its Containerfile and files) are unchanged is kept:
# each carries the hash of its inputs in the label mt.inputs. FORCE=1 rebuilds all three.
set -eu
cd "$(dirname "$0")"

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_IMAGE=localhost/mt-debian:$SUITE
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# The first 16 hex digits of the sha256 of the arguments, then of the named files.
inputs_hash() {
    text=$1
    shift
    { printf '%s\n' "$text"; cat "$@"; } | sha256sum | cut -c1-16
}

# True when image $1 exists with label mt.inputs=$2.
up_to_date() {
    [ "${FORCE:-0}" != 1 ] \
        && [ "$(podman image inspect --format '{{ index .Labels "mt.inputs" }}' "$1" 2>/dev/null)" = "$2" ]
}

# Removes image id $1 unless it is still tagged or used: the image that a rebuild just replaced.
remove_replaced() {
    [ -z "$1" ] || podman image rm "$1" >/dev/null 2>&1 || true
}

image_id() {
    podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
}

# Unmounts what an interrupted debootstrap may have left mounted in $rootfs, then deletes it.
remove_rootfs() {
    umount -R "$rootfs/proc" 2>/dev/null || true
    umount -R "$rootfs/sys" 2>/dev/null || true
    rm -rf "$rootfs"
}

build_debian() {
    key=$1
    rootfs=$(mktemp -d)
    trap remove_rootfs EXIT
    trap 'exit 1' INT TERM
    debootstrap --variant=minbase "$SUITE" "$rootfs" "$MIRROR" >/dev/null
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | podman import --quiet --change "LABEL mt.inputs=$key" --change 'CMD ["bash"]' - "$DEBIAN_IMAGE"
    remove_rootfs
    trap - EXIT INT TERM
}

replaced=
debian_key=$(inputs_hash "$SUITE $MIRROR $(sed -n '/^build_debian()/,/^}/p' "$(basename "$0")")")
if up_to_date "$DEBIAN_IMAGE" "$debian_key"; then
    echo "up to date: $DEBIAN_IMAGE"
else
    echo "building $DEBIAN_IMAGE (debootstrap $SUITE from $MIRROR)"
    replaced=$(image_id "$DEBIAN_IMAGE")
    build_debian "$debian_key"
fi

# Builds localhost/mt-debian-$1 from $1.Containerfile with the other arguments as the build context's files.
build_on_debian() {
    name=$1
    shift
    image=localhost/mt-debian-$name:$SUITE
    key=$(inputs_hash "$debian_key" "$name.Containerfile" "$@")
    if up_to_date "$image" "$key"; then
        echo "up to date: $image"
        return
    fi
    echo "building $image"
    replaced="$(image_id "$image") $replaced"
    context=$(mktemp -d)
    [ $# -eq 0 ] || cp "$@" "$context/"
    podman build --quiet --label "mt.inputs=$key" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
        -f "$name.Containerfile" -t "$image" "$context"
    rm -rf "$context"
}

build_on_debian python "$CA_BUNDLE"
build_on_debian prometheus
# The images these replaced, derived ones first.
for id in $replaced; do
    remove_replaced "$id"
done
