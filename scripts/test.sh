#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine, then run every test.
# Usage: scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

# Real parts the tests drive: Debian's chromium (Playwright cannot download
# its own browser here), nginx, systemd-analyze, libfaketime (the server's
# clock stepped, tests/test_faults.py), redis-server (team mode; its own service
# does not start, and the tests start their own servers on free loopback ports).
missing=()
[ -x /usr/lib/chromium/chromium ] || missing+=(chromium)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
compgen -G "/usr/lib/*/faketime/libfaketime.so.1" >/dev/null || missing+=(libfaketime)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)  # team mode: each test starts its own
command -v npm >/dev/null 2>&1 || missing+=(npm)  # installs ccusage, the usage cross-check's oracle
# the optional C part of the transcript reader (helm_monitor/sources/claude/_lines.c), which the
# tests require built (tests/test_lines_native.py): a compiler and the interpreter's headers
command -v cc >/dev/null 2>&1 || missing+=(gcc)
PYTHON=${PYTHON:-python3}
[ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,team]'
# ccusage (npm), the oracle of tests/test_usage_ccusage.py; without npm it says so and that test skips
scripts/install-ccusage.sh
# Most of the suite's time is waiting (servers, browsers, debounce windows), so it runs on
# more pytest-xdist workers than a small machine has cores; each worker is handed one test at a
# time (the slow ones first: tests/conftest.py). HELM_TEST_WORKERS=0 runs everything in one
# process, and `-n N` among the arguments wins over this default.
exec .venv/bin/python -m pytest -n "${HELM_TEST_WORKERS:-4}" --maxschedchunk 1 "$@"
