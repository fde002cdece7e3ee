#!/usr/bin/env sh
# Installs promtool (Debian package "prometheus") for tests/deploy.
# Idempotent: does nothing when promtool is already on PATH, or when not run
# as root (the tests then skip the promtool checks). The other deployment
# tools (hadolint, check-jsonschema, kubernetes-validate, kubectl) come with
# the project's "dev" extra.
set -eu

# ---- Chromium and chromedriver, for the web page's browser test -------------
# (tests/integration/test_page.py; it skips without them, and fails under CI=true)
install_chromium() {
    if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
        echo "chromium present: $(chromium --version 2>/dev/null || echo unknown version)"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "chromium missing, and no root or apt-get to install it: the browser test will skip" >&2
        return 0
    fi
    if DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; then
        echo "installed: $(chromium --version 2>/dev/null)"
    else
        echo "apt-get could not install chromium: the browser test will skip" >&2
    fi
}
install_chromium
# ---- end of the Chromium block ------------------------------------------------

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
