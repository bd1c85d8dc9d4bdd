#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 10s).
#   scripts/fuzz.sh          short run, part of `make test`
#   FUZZTIME=5m scripts/fuzz.sh   longer run (`make fuzz`)
# A crasher is written by Go under the package's testdata/fuzz/ and makes the
# run fail; commit it so that it stays a regression test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FUZZTIME="${FUZZTIME:-10s}"
found=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
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
done
echo "fuzzed $found targets for $FUZZTIME each"
