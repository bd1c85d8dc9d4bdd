#!/usr/bin/env bash
# Cross-builds the release binaries and their checksums:
#   scripts/release.sh [DIR]      (make release; DIR defaults to dist/)
# DIR gets vault-plugin-idp-tokens_<version>_<os>_<arch> for each target and
# SHA256SUMS in sha256sum format, the value `vault plugin register -sha256`
# wants. One commit built twice with one Go toolchain gives the same bytes.
#
# Env: TARGETS ("os/arch ...", default linux and darwin on amd64 and arm64),
# VERSION (default: the VERSION file; the upgrade test stamps test versions).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$ROOT/dist}"
targets="${TARGETS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64}"
version="${VERSION:-$("$ROOT/scripts/version.sh")}"

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# Old binaries of another version would end up in SHA256SUMS.
rm -f "$dir"/vault-plugin-idp-tokens_* "$dir/SHA256SUMS"
names=()
for t in $targets; do
  os="${t%/*}" arch="${t#*/}"
  name="vault-plugin-idp-tokens_${version}_${os}_${arch}"
  echo "building $name" >&2
  GOOS="$os" GOARCH="$arch" RELEASE=1 VERSION="$version" "$ROOT/scripts/build.sh" "$dir/$name"
  names+=("$name")
done
(cd "$dir" && sha256sum "${names[@]}" >SHA256SUMS)
cat "$dir/SHA256SUMS"
