#!/usr/bin/env bash
# Builds Ory Hydra (an OpenID Certified OAuth2 server) from its Go module on the module
# proxy and caches it, for the integration test of keys made in Vault (a client registered
# with jwks_uri). No Hydra binary download is reachable here, so, as scripts/install-vault.sh
# does for Vault, we build the tagged module: its replace of hydra-client-go points at a
# folder the module zip leaves out, and is dropped for the tagged release it requires.
# Built with the sqlite tags (cgo): DSN=memory is an in-memory SQLite database.
# Measured on a 2-core machine: 122 s from empty module and build caches (315 MB of
# modules fetched), 170 s with the modules cached while other builds ran. Once cached,
# nothing. Prints the binary's path on stdout.
#
# HYDRA_BIN set by the user wins: their binary is used as it is.
set -euo pipefail

HYDRA_VERSION="${HYDRA_VERSION:-v2.3.0}" # pinned here and nowhere else
source "$(dirname "${BASH_SOURCE[0]}")/go-module-build.sh"
TARGET="$CACHE_DIR/hydra-$HYDRA_VERSION"
print_if_present HYDRA_BIN "$TARGET"

# Hydra's SQLite driver uses cgo; a fresh Debian machine may lack a C compiler.
if ! command -v cc >/dev/null; then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing gcc from Debian's packages (Hydra's SQLite driver uses cgo)" >&2
  $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq gcc libc6-dev >&2
fi
echo "building Ory Hydra $HYDRA_VERSION from its Go module (several minutes the first time; cached in $CACHE_DIR)" >&2
enter_module_copy "github.com/ory/hydra/v2@$HYDRA_VERSION"
go mod edit -dropreplace=github.com/ory/hydra-client-go/v2
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags sqlite,sqlite_omit_load_extension -ldflags '-s -w' -o "$TARGET.tmp" .
mv "$TARGET.tmp" "$TARGET"
echo "$TARGET"
