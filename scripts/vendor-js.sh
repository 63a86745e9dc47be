#!/usr/bin/env bash
# Vendor the page's third-party JavaScript into static/vendor/ (there is no build step).
#
# Today one library: uPlot 1.6.32 (MIT), the usage view's time-series charts
# (design/USAGE_TRANSCRIPTS_SEARCH.md section 3). For each package:
#   1. `npm pack name@version` downloads the tarball the registry publishes;
#   2. its SHA-512 must equal the integrity pinned below (the registry's dist.integrity
#      when this script was written): a changed or substituted tarball stops here;
#   3. the files the page uses are copied into static/vendor/<name>/;
#   4. static/vendor/VERSIONS is rewritten: the version, the tarball's integrity and the
#      SHA-256 of every copied file (tests/test_vendor.py checks the files match it).
#
# The copied files are committed; run this only to change a version (update the pins
# below first) or to check that the committed files are what the registry serves:
#   scripts/vendor-js.sh          # rewrite static/vendor/
#   scripts/vendor-js.sh --check  # only compare (exit 1 on any difference)
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

# name version integrity(sha512 of the tarball) licence files(relative to the package root)
PACKAGES=(
  "uplot|1.6.32|sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==|MIT|dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
)

VENDOR=static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

versions="$work/VERSIONS"
{
  echo "# Third-party files under static/vendor/, written by scripts/vendor-js.sh: do not edit."
  echo "# package version licence integrity-of-the-npm-tarball"
  echo "#   sha256 path (relative to static/vendor/)"
} >"$versions"

status=0
for spec in "${PACKAGES[@]}"; do
  IFS='|' read -r name version integrity licence files <<<"$spec"
  (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
  tarball="$work/$name-$version.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "vendor-js: $name@$version: the tarball's integrity is $got, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$tarball" -C "$work/$name"
  echo "$name $version $licence $integrity" >>"$versions"
  for file in $files; do
    src="$work/$name/package/$file"
    dest="$name/$(basename "$file")"
    [ -f "$src" ] || { echo "vendor-js: $name@$version has no $file" >&2; exit 1; }
    echo "  $(sha256sum "$src" | cut -d' ' -f1) $dest" >>"$versions"
    if [ "$CHECK" = 1 ]; then
      if ! cmp -s "$src" "$VENDOR/$dest"; then
        echo "vendor-js: $VENDOR/$dest differs from $name@$version's $file" >&2
        status=1
      fi
    else
      mkdir -p "$VENDOR/$name"
      cp "$src" "$VENDOR/$dest"
      chmod 0644 "$VENDOR/$dest"
    fi
  done
done

if [ "$CHECK" = 1 ]; then
  if ! cmp -s "$versions" "$VENDOR/VERSIONS"; then
    echo "vendor-js: $VENDOR/VERSIONS is not what this script writes" >&2
    status=1
  fi
  [ "$status" = 0 ] && echo "vendor-js: $VENDOR matches the pinned packages"
  exit "$status"
fi
cp "$versions" "$VENDOR/VERSIONS"
chmod 0644 "$VENDOR/VERSIONS"
echo "vendor-js: wrote $VENDOR (see $VENDOR/VERSIONS)"
