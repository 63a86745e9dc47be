#!/usr/bin/env bash
# Vendor the page's third-party JavaScript into static/vendor/ (there is no build step).
#
# The libraries (each file is a classic <script>/<link>; nothing needs eval or new Function,
# which the page's CSP, script-src 'self', refuses):
#   uPlot 1.6.32 (MIT): the usage view's time-series charts
#     (design/USAGE_TRANSCRIPTS_SEARCH.md section 3); global `uPlot`;
#   markdown-it 15.0.3 (MIT): Markdown to HTML; the UMD build, global `markdownit`;
#   DOMPurify 3.5.0: sanitises that HTML; the UMD build, global `DOMPurify`. npm says
#     "(MPL-2.0 OR Apache-2.0)": it is used here under Apache-2.0, the text in its LICENSE;
#   highlight.js 11.12.0 (BSD-3-Clause), npm package @highlightjs/cdn-assets: the build
#     with the common languages, global `hljs`, and the GitHub light and dark themes.
# For each package:
#   1. `npm pack package@version` downloads the tarball the registry publishes;
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

# name|version|integrity(sha512 of the tarball)|licence|files(relative to the package root)[|npm package]
# name is the folder under static/vendor/ and the name in VERSIONS; the npm package is the
# same unless given. Every file lands directly in static/vendor/<name>/ (setup.cfg ships
# vendor/*/*), so two files must not share a basename.
PACKAGES=(
  "uplot|1.6.32|sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==|MIT|dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
  "markdown-it|15.0.3|sha512-+Az7Ojz3iRGu8KYMvJ6xVhvrxP3eE+vEtJX75Ow88XBpcQNV/0lGX5ZynIIBftREo4DC2jsveAMDaeltmm8QvQ==|MIT|dist/browser/markdown-it.umd.min.js LICENSE"
  "dompurify|3.5.0|sha512-LYC0ZkE8P1V42JsRYTwMdme/2ET8SpOc5AA2eOFjP/IadvRd2fwiT4TVz5vkfy0XUx12aS2UaRkTnfVPNOv9vw==|Apache-2.0|dist/purify.min.js LICENSE"
  "highlight|11.12.0|sha512-KvOKXODaiFmId9xaq3xc5xCL66wVLUuOngDbO9B/kewbFTqdGbn2nJxNhN3H5R1cgDTVj6R8vH0zgiNDEGjpDw==|BSD-3-Clause|highlight.min.js styles/github.min.css styles/github-dark.min.css LICENSE|@highlightjs/cdn-assets"
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
declare -A seen=()
for spec in "${PACKAGES[@]}"; do
  IFS='|' read -r name version integrity licence files package <<<"$spec"
  package=${package:-$name}
  # npm names the tarball <package>-<version>.tgz, a scope @s/p as s-p-<version>.tgz
  tgz=$(cd "$work" && npm pack --silent "$package@$version" | tail -n1) || tgz=
  tarball="$work/$tgz"
  [ -n "$tgz" ] && [ -f "$tarball" ] || { echo "vendor-js: npm pack $package@$version failed" >&2; exit 1; }
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "vendor-js: $package@$version: the tarball's integrity is $got, expected $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$tarball" -C "$work/$name"
  echo "$name $version $licence $integrity" >>"$versions"
  for file in $files; do
    src="$work/$name/package/$file"
    dest="$name/$(basename "$file")"
    [ -f "$src" ] || { echo "vendor-js: $package@$version has no $file" >&2; exit 1; }
    [ -z "${seen[$dest]:-}" ] || { echo "vendor-js: two files would be $VENDOR/$dest" >&2; exit 1; }
    seen[$dest]=1
    echo "  $(sha256sum "$src" | cut -d' ' -f1) $dest" >>"$versions"
    if [ "$CHECK" = 1 ]; then
      if ! cmp -s "$src" "$VENDOR/$dest"; then
        echo "vendor-js: $VENDOR/$dest differs from $package@$version's $file" >&2
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
