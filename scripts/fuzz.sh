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
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg" 2>&1 | tail -3
    [[ ${PIPESTATUS[0]} -eq 0 ]] || { echo "fuzz target $target failed" >&2; exit 1; }
  done
done
echo "fuzzed $found targets for $FUZZTIME each"
