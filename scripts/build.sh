#!/usr/bin/env bash
# Builds the plugin binary, stamped with its version, into OUT:
#   scripts/build.sh OUT
# Every build goes through here (make build, make dev, make release) so that
# the binary always reports the version Vault is told at registration.
#
# Env: VERSION (default: the VERSION file), RELEASE=1 for a stripped,
# reproducible build (no symbol table, no build ID, no cgo), and GOOS/GOARCH
# as for go build; GO names the go command (the Makefile passes its $(GO)).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -eq 1 ]] || { echo "usage: scripts/build.sh OUT" >&2; exit 2; }
out="$1"
[[ "$out" == /* ]] || out="$PWD/$out" # relative to the caller, not the repository
version="${VERSION:-$("$ROOT/scripts/version.sh")}"
ldflags="-X github.com/idp-tokens/vault-plugin-idp-tokens.Version=$version"
flags=(-trimpath -buildvcs=false)
if [[ "${RELEASE:-}" == 1 ]]; then
  # -s -w drop the symbol table and DWARF, -buildid= the Go build ID, so the
  # bytes depend only on the source, the Go toolchain and these flags.
  ldflags="-s -w -buildid= $ldflags"
  export CGO_ENABLED=0
fi
cd "$ROOT"
"${GO:-go}" build "${flags[@]}" -ldflags "$ldflags" -o "$out" ./cmd/vault-plugin-idp-tokens
