#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 10s).
#   scripts/fuzz.sh          short run, part of `make test`
#   FUZZTIME=5m scripts/fuzz.sh   longer run (`make fuzz`)
# A crasher is written by Go under the package's testdata/fuzz/ and makes the
# run fail; commit it so that it stays a regression test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZTIME="${FUZZTIME:-10s}"
# List every target before fuzzing any. Assignments, not loop words: set -e
# sees a failing go list or go test -list only there, so a package whose
# tests do not build fails the run instead of fuzzing nothing.
pkgs=$(go list ./...)
targets=()
for pkg in $pkgs; do
  if ! list=$(go test -list '^Fuzz' "$pkg" 2>&1); then
    echo "$list" >&2
    echo "fuzz.sh: cannot list the fuzz targets of $pkg: its tests do not build" >&2
    exit 1
  fi
  for target in $(grep '^Fuzz' <<<"$list" || true); do
    targets+=("$pkg $target")
  done
done
[[ ${#targets[@]} -gt 0 ]] || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }
found=0
for entry in "${targets[@]}"; do
  pkg="${entry% *}" target="${entry#* }"
  found=$((found + 1))
  echo "==> fuzz $pkg $target ($FUZZTIME)"
  out=$(mktemp)
  if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" >"$out" 2>&1; then
    grep '^fuzz: elapsed' "$out" | tail -1 # the executions count
    tail -1 "$out"
  else
    # Show the failure itself; Go has written the input under testdata/fuzz/.
    grep -v '^fuzz: elapsed\|^\s*20[0-9][0-9]-' "$out" | tail -40
    rm -f "$out"
    echo "fuzz target $target failed: commit its input from $pkg's testdata/fuzz/ as a regression test" >&2
    exit 1
  fi
  rm -f "$out"
done
echo "fuzzed $found targets for $FUZZTIME each"
