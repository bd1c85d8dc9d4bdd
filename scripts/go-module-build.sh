# Sourced by install-vault.sh and install-hydra.sh: what both do to build a server
# from its tagged Go module on the module proxy (no binary download is reachable
# here) and keep the binary in one cache.

# CACHE_DIR holds the built binaries (IDP_TOKENS_CACHE overrides it).
CACHE_DIR="${IDP_TOKENS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vault-plugin-idp-tokens}"

# print_if_present VAR TARGET: a binary the user named in VAR (VAULT_BIN, HYDRA_BIN)
# wins as it is, then the cached TARGET; either is printed and the script ends.
print_if_present() {
  local var=$1 target=$2 given=${!1:-}
  if [[ -n "$given" ]]; then
    [[ -x "$given" ]] || { echo "$var=$given is not an executable" >&2; exit 1; }
    echo "$given"
    exit 0
  fi
  if [[ -x "$target" ]]; then
    echo "$target"
    exit 0
  fi
}

# enter_module_copy MODULE@VERSION: downloads the module and enters a writable copy
# of it under CACHE_DIR, removed when the script ends. Not in $(...): it changes
# the script's directory.
enter_module_copy() {
  local dir
  dir=$(go mod download -json "$1" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$dir" ]] || { echo "go mod download gave no directory for $1" >&2; exit 1; }
  mkdir -p "$CACHE_DIR"
  work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
  trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
  cp -r "$dir/." "$work/"
  chmod -R u+w "$work"
  cd "$work"
}
