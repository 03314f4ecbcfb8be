#!/usr/bin/env bash
# Prints each measured figure beside its budget (SPEC §11), then the Go benchmarks.
# Expects `make cross` to have built out/arm/amosd and out/arm64/amosd.
set -euo pipefail
go=${GO:-go}
fail=0
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
budget_line() { # what, figure, budget, pass(0|1)
  printf '%-58s %14s   budget %-12s %s\n' "$1" "$2" "$3" "$([[ $4 == 1 ]] && echo PASS || echo FAIL)"
}
echo "== SPEC §11 budgets"
for arch in arm arm64; do
  f=out/$arch/amosd
  size=$(stat -c %s "$f")
  ok=0; [[ $size -le $((6 * 1048576)) ]] && ok=1
  [[ $arch == arm ]] || ok=1 # the budget binds the armv7 binary; arm64 is shown for reference
  [[ $ok == 1 ]] || fail=1
  budget_line "amosd stripped static binary, linux/$arch" "$(mib "$size") MiB" "$([[ $arch == arm ]] && echo '6.00 MiB' || echo '(armv7 only)')" $ok
done
echo
echo "== Go benchmarks (go test -bench . -benchmem)"
$go test -run '^$' -bench "${BENCH:-.}" -benchmem ./...
exit $fail
