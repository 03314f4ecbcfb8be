#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 30s).
set -euo pipefail
fuzztime=${FUZZTIME:-30s}
go=${GO:-go}
for pkg in $($go list ./...); do
  for target in $($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "== fuzz $pkg $target for $fuzztime"
    $go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "${FUZZMINIMIZETIME:-5s}" "$pkg"
  done
done
