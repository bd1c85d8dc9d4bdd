#!/usr/bin/env bash
# A local development environment: a Vault dev server with this plugin mounted at idp/,
# and the demo IdP with a config and a role both named "demo".
#
#   scripts/dev.sh         start everything, print how to use it, run until Ctrl-C
#   scripts/dev.sh stop    stop what a running `scripts/dev.sh` started (make dev-stop)
#
# Environment: DEV_VAULT_PORT (8200), DEV_IDP_PORT (8400), DEV_IDP_TTL (demo token
# lifetime, 60s), VAULT_BIN (use this Vault binary instead of building one).
# State, pid files and logs live in .dev/ (gitignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.dev"
PLUGIN=vault-plugin-idp-tokens
VAULT_PORT="${DEV_VAULT_PORT:-8200}"
IDP_PORT="${DEV_IDP_PORT:-8400}"
IDP_TTL="${DEV_IDP_TTL:-60s}"
ROOT_TOKEN=root

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'dev.sh: %s\n' "$*" >&2; exit 1; }

# stop_pidfile FILE: ends the process recorded in FILE (SIGTERM, then SIGKILL).
stop_pidfile() {
  local f="$1" pid
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_all() {
  stop_pidfile "$STATE/demo-idp.pid"
  stop_pidfile "$STATE/vault.pid"
}

if [[ "${1:-}" == "stop" ]]; then
  devpid="$(cat "$STATE/dev.pid" 2>/dev/null || true)"
  if [[ -n "$devpid" ]] && kill -0 "$devpid" 2>/dev/null; then
    # The foreground script cleans up after itself once told to.
    kill -TERM "$devpid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$devpid" 2>/dev/null || break; sleep 0.1; done
  fi
  stop_all
  rm -f "$STATE/dev.pid"
  log "stopped"
  exit 0
fi
[[ $# -eq 0 ]] || die "usage: scripts/dev.sh [stop]"

mkdir -p "$STATE"
if [[ -f "$STATE/dev.pid" ]] && kill -0 "$(cat "$STATE/dev.pid")" 2>/dev/null; then
  die "already running (pid $(cat "$STATE/dev.pid")); run 'make dev-stop' first"
fi
stop_all # leftovers of a run that was killed hard
echo $$ >"$STATE/dev.pid"

cleaning=0
cleanup() {
  [[ $cleaning == 1 ]] && return
  cleaning=1
  log "stopping Vault and the demo IdP"
  stop_all
  rm -f "$STATE/dev.pid"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port_free "$VAULT_PORT" || die "port $VAULT_PORT is in use (set DEV_VAULT_PORT)"
port_free "$IDP_PORT" || die "port $IDP_PORT is in use (set DEV_IDP_PORT)"

log "building the plugin into bin/"
mkdir -p "$ROOT/bin"
"$ROOT/scripts/build.sh" "$ROOT/bin/$PLUGIN"
log "building the demo IdP"
[[ -d "$ROOT/cmd/demo-idp" ]] || die "cmd/demo-idp does not exist yet"
(cd "$ROOT" && go build -o "$STATE/demo-idp" ./cmd/demo-idp)

log "getting Vault (scripts/install-vault.sh)"
VAULT="$("$ROOT/scripts/install-vault.sh")"
mkdir -p "$STATE/bin"
ln -sf "$VAULT" "$STATE/bin/vault"

export VAULT_ADDR="http://127.0.0.1:$VAULT_PORT"
export VAULT_TOKEN="$ROOT_TOKEN"
unset VAULT_NAMESPACE VAULT_CACERT VAULT_CLIENT_CERT VAULT_CLIENT_KEY

cat >"$STATE/vault.hcl" <<EOF
plugin_directory = "$ROOT/bin"
disable_mlock    = true
EOF

log "starting vault server -dev on $VAULT_ADDR (log: .dev/vault.log)"
"$VAULT" server -dev -dev-root-token-id="$ROOT_TOKEN" \
  -dev-listen-address="127.0.0.1:$VAULT_PORT" -config="$STATE/vault.hcl" \
  >"$STATE/vault.log" 2>&1 &
echo $! >"$STATE/vault.pid"
for i in $(seq 1 100); do
  "$VAULT" status >/dev/null 2>&1 && break
  kill -0 "$(cat "$STATE/vault.pid")" 2>/dev/null || { tail -20 "$STATE/vault.log" >&2; die "vault exited"; }
  [[ $i == 100 ]] && die "vault did not become ready; see .dev/vault.log"
  sleep 0.2
done

log "registering and enabling the plugin at idp/"
sha="$(sha256sum "$ROOT/bin/$PLUGIN" | cut -d' ' -f1)"
version="$("$ROOT/scripts/version.sh")"
"$VAULT" plugin register -sha256="$sha" -version="$version" -command="$PLUGIN" secret "$PLUGIN" >/dev/null
"$VAULT" secrets enable -path=idp -plugin-version="$version" "$PLUGIN" >/dev/null

log "starting the demo IdP on 127.0.0.1:$IDP_PORT (log: .dev/demo-idp.log)"
"$STATE/demo-idp" -addr "127.0.0.1:$IDP_PORT" -style oauth2 \
  -client-id demo -client-secret demo-secret -scopes "read,write" -ttl "$IDP_TTL" \
  >"$STATE/demo-idp.log" 2>&1 &
echo $! >"$STATE/demo-idp.pid"
IDP_URL=""
for i in $(seq 1 100); do
  IDP_URL="$(sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$STATE/demo-idp.log" | head -1)"
  [[ -n "$IDP_URL" ]] && break
  kill -0 "$(cat "$STATE/demo-idp.pid")" 2>/dev/null || { cat "$STATE/demo-idp.log" >&2; die "demo IdP exited"; }
  [[ $i == 100 ]] && die "demo IdP did not start; see .dev/demo-idp.log"
  sleep 0.1
done

log "writing idp/config/demo and idp/roles/demo"
"$VAULT" write idp/config/demo provider=oauth2 token_url="$IDP_URL/connect/token" \
  client_id=demo client_secret=demo-secret client_auth=basic scopes=read >/dev/null
"$VAULT" write idp/roles/demo config=demo grant_type=client_credentials >/dev/null

cat <<EOF

Vault $VAULT_ADDR (root token "$ROOT_TOKEN"), plugin mounted at idp/, demo IdP at $IDP_URL.
In another shell:

  export VAULT_ADDR=$VAULT_ADDR
  export VAULT_TOKEN=$ROOT_TOKEN
  export PATH="$STATE/bin:\$PATH"   # vault -> $VAULT
  vault read idp/creds/demo

After changing the plugin: make build && vault plugin register -sha256=\$(sha256sum bin/$PLUGIN | cut -d' ' -f1) -version=\$(make -s version) -command=$PLUGIN secret $PLUGIN && vault plugin reload -plugin=$PLUGIN

Logs: .dev/vault.log, .dev/demo-idp.log. Ctrl-C (or make dev-stop) stops everything.

EOF
"$VAULT" read idp/creds/demo || log "reading idp/creds/demo failed (see .dev/vault.log)"

# Run until Ctrl-C, `make dev-stop`, or one of the servers exits.
while kill -0 "$(cat "$STATE/vault.pid")" 2>/dev/null && kill -0 "$(cat "$STATE/demo-idp.pid")" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
log "Vault or the demo IdP stopped (logs: .dev/vault.log, .dev/demo-idp.log)"
