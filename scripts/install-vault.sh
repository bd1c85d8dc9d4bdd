#!/usr/bin/env bash
# Builds a Vault server binary from its Go module on the module proxy and caches it.
# Vault ships no Debian package and no binary download is reachable here, so we build
# the tagged module with its nested api/sdk replace directives dropped (they point at
# folders the module zip leaves out). Prints the binary's path on stdout.
#
# VAULT_BIN set by the user wins: their binary is used as it is.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-v1.21.0}" # pinned here and nowhere else
CACHE_DIR="${IDP_TOKENS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-idp-tokens}"
TARGET="$CACHE_DIR/vault-$VAULT_VERSION"

if [[ -n "${VAULT_BIN:-}" ]]; then
  [[ -x "$VAULT_BIN" ]] || { echo "VAULT_BIN=$VAULT_BIN is not an executable" >&2; exit 1; }
  echo "$VAULT_BIN"
  exit 0
fi

if [[ -x "$TARGET" ]]; then
  echo "$TARGET"
  exit 0
fi

mkdir -p "$CACHE_DIR"
echo "building Vault $VAULT_VERSION from its Go module (5-10 minutes the first time; cached in $CACHE_DIR)" >&2
dir=$(go mod download -json "github.com/hashicorp/vault@$VAULT_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[[ -d "$dir" ]] || { echo "go mod download gave no directory for vault@$VAULT_VERSION" >&2; exit 1; }

work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
cd "$work"
# Drop the replaces that point into the module's own (absent) nested folders; the
# tagged api and sdk releases that this Vault version requires are used instead.
for r in $(go mod edit -json | sed -n 's/.*"Path": "\(github.com\/hashicorp\/vault\/\(api[^"]*\|sdk\)\)".*/\1/p' | sort -u); do
  go mod edit -dropreplace="$r"
done
# Never `go mod tidy` here: it bumps the sdk to a version this tree does not build with.
GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$TARGET.tmp" .
mv "$TARGET.tmp" "$TARGET"
echo "$TARGET"
