#!/usr/bin/env bash
# make release: the handset and collector binaries, built reproducibly, with their
# SHA-256 sums and module lists (`go version -m`), which is what an OEM puts into its
# firmware manifest. With --check, builds everything a second time from a copy of the
# tracked files at another path with an empty build cache, and fails unless every
# binary is byte-identical.
#
#   scripts/release.sh [--check] [OUT]      (OUT defaults to out/release)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
check=0
if [[ "${1-}" == "--check" ]]; then check=1; shift; fi
out=$(realpath -m "${1:-out/release}")
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
built=${BUILT:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}

# build SRC DEST: every release binary of the tree at SRC into DEST/<os>-<arch>/.
build() {
  local src=$1 dest=$2 target os arch cmds
  for target in linux/arm:amosd,amos-collector linux/arm64:amosd,amos-collector linux/amd64:amos-collector; do
    os=${target%%/*}; arch=${target#*/}; cmds=${arch#*:}; arch=${arch%%:*}
    mkdir -p "$dest/$os-$arch"
    for cmd in ${cmds//,/ }; do
      # amosd, the handset binary, without inlining (the size budget; see the Makefile)
      gcflags=(); [[ $cmd == amosd ]] && gcflags=(-gcflags=all=-l)
      (cd "$src" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=7 go build -trimpath -buildvcs=false "${gcflags[@]}" \
        -tags nethttpomithttp2 -ldflags "-s -w -buildid= -X main.version=$version -X main.commit=$commit -X main.built=$built" \
        -o "$dest/$os-$arch/" "./cmd/$cmd")
    done
  done
}

rm -rf "$out"
build "$PWD" "$out"
(cd "$out" && find . -type f ! -name SHA256SUMS | sort | sed 's|^\./||' | xargs sha256sum > SHA256SUMS)
for bin in $(cd "$out" && find . -type f ! -name SHA256SUMS | sort); do
  go version -m "$out/$bin" | sed "s|$out/||" > "$out/$bin.modules"
done
echo "release $version (commit $commit) in $out:"
cat "$out/SHA256SUMS"

if ((check)); then
  tmp=$(mktemp -d)
  trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/elsewhere/src"
  git ls-files -z | xargs -0 tar -cf - | tar -xf - -C "$tmp/elsewhere/src"
  GOCACHE="$tmp/cache" build "$tmp/elsewhere/src" "$tmp/again"
  (cd "$tmp/again" && find . -type f | sort | sed 's|^\./||' | xargs sha256sum) > "$tmp/again.sums"
  if ! diff -u "$out/SHA256SUMS" "$tmp/again.sums"; then
    echo "release: the second build (another path, an empty build cache) differs: not reproducible" >&2
    exit 1
  fi
  echo "release: reproducible: a second build from $tmp/elsewhere/src with an empty cache is byte-identical"
fi
