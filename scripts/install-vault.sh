#!/usr/bin/env bash
# Builds a Vault server binary from its Go module on the module proxy and caches it.
# Vault ships no Debian package and no binary download is reachable here, so we build
# the tagged module with its nested api/sdk replace directives dropped (they point at
# folders the module zip leaves out). Prints the binary's path on stdout.
#
# VAULT_BIN set by the user wins: their binary is used as it is.
set -euo pipefail

VAULT_VERSION="${VAULT_VERSION:-v1.21.0}" # pinned here and nowhere else
source "$(dirname "${BASH_SOURCE[0]}")/go-module-build.sh"
TARGET="$CACHE_DIR/vault-$VAULT_VERSION"
print_if_present VAULT_BIN "$TARGET"

echo "building Vault $VAULT_VERSION from its Go module (5-10 minutes the first time; cached in $CACHE_DIR)" >&2
enter_module_copy "github.com/hashicorp/vault@$VAULT_VERSION"
# Drop the replaces that point into the module's own (absent) nested folders; the
# tagged api and sdk releases that this Vault version requires are used instead.
for r in $(go mod edit -json | sed -n 's/.*"Path": "\(github.com\/hashicorp\/vault\/\(api[^"]*\|sdk\)\)".*/\1/p' | sort -u); do
  go mod edit -dropreplace="$r"
done
# Never `go mod tidy` here: it bumps the sdk to a version this tree does not build with.
GOFLAGS=-mod=mod go build -trimpath -ldflags '-s -w' -o "$TARGET.tmp" .
mv "$TARGET.tmp" "$TARGET"
echo "$TARGET"
