#!/usr/bin/env sh
# Installs promtool (Debian package "prometheus") for tests/deploy.
# Idempotent: does nothing when promtool is already on PATH, or when not run
# as root (the tests then skip the promtool checks). The other deployment
# tools (hadolint, check-jsonschema, kubernetes-validate, kubectl) come with
# the project's "dev" extra.
set -eu

if command -v promtool >/dev/null 2>&1; then
    echo "promtool present: $(promtool --version 2>&1 | head -n 1)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "promtool missing and not root: skipping install (promtool tests will skip)" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool missing and no apt-get here: install Prometheus' promtool by hand" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
    echo "installed: $(promtool --version 2>&1 | head -n 1)"
else
    echo "apt-get could not install prometheus: promtool tests will skip" >&2
fi
