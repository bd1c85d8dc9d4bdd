#!/usr/bin/env bash
# Prints the plugin's version: the first line of the VERSION file at the top
# of the repository, the one source every build stamps (scripts/build.sh).
# It must be a v-prefixed semantic version, as `vault plugin register -version` wants.
set -euo pipefail
file="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/VERSION"
version="$(head -n1 "$file" | tr -d '[:space:]')"
if [[ ! "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]]; then
  echo "VERSION holds \"$version\", want a semantic version such as v1.2.3" >&2
  exit 1
fi
echo "$version"
