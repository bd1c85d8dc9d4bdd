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
CACHE_DIR="${IDP_TOKENS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-idp-tokens}"
TARGET="$CACHE_DIR/hydra-$HYDRA_VERSION"

if [[ -n "${HYDRA_BIN:-}" ]]; then
  [[ -x "$HYDRA_BIN" ]] || { echo "HYDRA_BIN=$HYDRA_BIN is not an executable" >&2; exit 1; }
  echo "$HYDRA_BIN"
  exit 0
fi

if [[ -x "$TARGET" ]]; then
  echo "$TARGET"
  exit 0
fi

command -v cc >/dev/null || { echo "a C compiler is needed (Hydra's SQLite driver uses cgo): apt-get install gcc" >&2; exit 1; }
mkdir -p "$CACHE_DIR"
echo "building Ory Hydra $HYDRA_VERSION from its Go module (several minutes the first time; cached in $CACHE_DIR)" >&2
dir=$(go mod download -json "github.com/ory/hydra/v2@$HYDRA_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[[ -d "$dir" ]] || { echo "go mod download gave no directory for hydra@$HYDRA_VERSION" >&2; exit 1; }

work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
cd "$work"
go mod edit -dropreplace=github.com/ory/hydra-client-go/v2
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -tags sqlite,sqlite_omit_load_extension -ldflags '-s -w' -o "$TARGET.tmp" .
mv "$TARGET.tmp" "$TARGET"
echo "$TARGET"
