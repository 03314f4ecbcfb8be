#!/usr/bin/env bash
# Runs the tests of everything that runs on a phone (the packages amosd and the
# development keystore are built from) cross-compiled for the handsets' architectures
# under QEMU user-mode emulation: linux/arm GOARM=7 under qemu-arm-static, linux/arm64
# under qemu-aarch64-static. The collector and the tools run on the payer's servers and
# are tested on the host. Every test binary is bounded by `timeout`.
set -euo pipefail
go=${GO:-go}
limit=${QEMU_TIMEOUT:-1200}
archs=${ARCHS:-arm arm64}
for arch in $archs; do
  case $arch in
    arm) emu=qemu-arm-static; extra=(GOARM=7) ;;
    arm64) emu=qemu-aarch64-static; extra=() ;;
    *) echo "test-arm: unknown arch $arch" >&2; exit 2 ;;
  esac
  pkgs=$(env GOOS=linux GOARCH=$arch "${extra[@]}" $go list -deps ./cmd/amosd ./cmd/amos-keystored | grep '^amos.example/amosd/')
  echo "== go test (the phone's $(wc -w <<<"$pkgs") packages) for linux/$arch under $emu"
  # shellcheck disable=SC2086 # one package per word
  env GOOS=linux GOARCH=$arch "${extra[@]}" CGO_ENABLED=0 AMOSD_TEST_EMULATOR=$emu \
    $go test -count=1 -timeout "${limit}s" -exec "timeout --kill-after=10 $limit $emu" $pkgs
done
