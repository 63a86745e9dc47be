#!/usr/bin/env bash
# Install the pinned ccusage (npm) into .tools/ccusage/, the oracle of tests/test_usage_ccusage.py.
# Idempotent: does nothing when that version is already there. Needs node and npm; without
# them (or without the registry) it says why and exits 0, and the test skips with that reason.
# Usage: scripts/install-ccusage.sh   (CCUSAGE_VERSION overrides the pin)
set -euo pipefail
cd "$(dirname "$0")/.."

# 20.0.24, not the newest 20.0.26: ccusage 20 is a Rust binary shipped in @ccusage/ccusage-<os>-<cpu>,
# and the registry has no @ccusage/ccusage-linux-x64@20.0.26 (the JS wrapper alone cannot run).
VERSION=${CCUSAGE_VERSION:-20.0.24}
PREFIX=.tools/ccusage
BIN=$PREFIX/node_modules/.bin/ccusage

installed() {
  [ -x "$BIN" ] && [ "$(node -p "require('./$PREFIX/node_modules/ccusage/package.json').version" 2>/dev/null)" = "$VERSION" ] \
    && "$BIN" --version >/dev/null 2>&1
}

if installed; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-ccusage: node/npm not found; the ccusage cross-check will be skipped" >&2
  exit 0
fi
mkdir -p "$PREFIX"
# --prefer-offline: a package already in npm's cache is used without asking the registry.
if ! npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --prefer-offline --loglevel=error \
    "ccusage@$VERSION" >&2; then
  echo "install-ccusage: npm could not install ccusage@$VERSION; the ccusage cross-check will be skipped" >&2
  exit 0
fi
if ! installed; then
  echo "install-ccusage: ccusage@$VERSION installed but does not run; the cross-check will be skipped" >&2
fi
