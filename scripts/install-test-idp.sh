#!/usr/bin/env bash
# Installs the third-party test OpenID Provider (panva/oidc-provider, pinned in
# testdata/oidc-provider/package-lock.json) with `npm ci` into
# testdata/oidc-provider/node_modules (gitignored). Idempotent: does nothing when the
# installed tree matches the lock file. Prints the server script's path on stdout.
#
# Run it:  node "$(scripts/install-test-idp.sh)"   (env: OIDC_PORT, OIDC_ACCESS_TOKEN_TTL,
#          OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI, OIDC_RESOURCE; see server.js)
set -euo pipefail

dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../testdata/oidc-provider" && pwd)"
# A fresh Debian machine may lack Node.js: take it from Debian's packages.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "installing Node.js and npm from Debian's packages" >&2
  $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq nodejs npm >&2
fi
major=$(node -p 'process.versions.node.split(".")[0]')
(( major >= 18 )) || { echo "Node.js >= 18 is needed for oidc-provider 8 (found $(node --version))" >&2; exit 1; }

stamp="$dir/node_modules/.package-lock.json"
if [[ ! -f "$stamp" || "$dir/package-lock.json" -nt "$stamp" || ! -d "$dir/node_modules/oidc-provider" ]]; then
  echo "installing oidc-provider with npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
echo "$dir/server.js"
