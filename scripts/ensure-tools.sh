#!/usr/bin/env bash
# Installs what the Makefile's targets need when it is missing: QEMU user-mode emulators
# for armv7 and arm64 tests, dbus-daemon for the D-Bus tests, checkpolicy and m4 for the
# SELinux policy test, qemu-system-arm and e2fsprogs for vm-test, adb for the handset
# checked over adb (rigs/adbd, vm-test), postgresql for the
# collector's PostgreSQL ledger, nginx for the client's tests behind a reverse proxy,
# chromium (and a Chinese font for its screenshots) for the collector's web console
# tests. Debian packages only.
set -euo pipefail

need=()
command -v qemu-arm-static >/dev/null || need+=(qemu-user-static)
command -v qemu-aarch64-static >/dev/null || [[ " ${need[*]-} " == *" qemu-user-static "* ]] || need+=(qemu-user-static)
command -v dbus-daemon >/dev/null || need+=(dbus-daemon)
command -v timeout >/dev/null || need+=(coreutils)
# android-build: the SELinux policy test compiles amosd.te (m4, then checkpolicy).
command -v checkpolicy >/dev/null || need+=(checkpolicy)
command -v m4 >/dev/null || need+=(m4)
# vm-test: full-system QEMU for arm64 and armv7 (one package has both), mke2fs for the
# image's data disk; apt-get and dpkg-deb fetch and unpack Debian's ARM packages.
command -v qemu-system-aarch64 >/dev/null || need+=(qemu-system-arm)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
command -v dpkg-deb >/dev/null || need+=(dpkg)
command -v systemd-analyze >/dev/null && command -v systemd-sysusers >/dev/null || need+=(systemd)
command -v strace >/dev/null || need+=(strace)
# rigs/adbd's tests and vm-test's oem-check.sh over adb: Debian's adb client (no adbd).
command -v adb >/dev/null || need+=(adb)
# The collector's PostgreSQL ledger: rigs/pgtest runs initdb and postgres from it.
command -v initdb >/dev/null || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
# The client behind a real load balancer: rigs/nginxtest runs Debian's nginx.
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
# The web console's browser tests (collector/console) drive a headless Chromium; the
# font draws the Simplified Chinese pages of their screenshots.
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
[[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]] || need+=(fonts-wqy-zenhei)

if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "ensure-tools: missing ${need[*]}; run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null; then
    echo "ensure-tools: missing ${need[*]} and no apt-get to install them (this needs Debian or Ubuntu)" >&2
    exit 1
  fi
  echo "ensure-tools: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No service is started by the packages' install scripts (nginx would take port 80,
  # PostgreSQL 5432): the tests start their own servers on free ports.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi

# dbus-daemon resolves every client's uid to a user: the tests connect as uid 2000, the
# Android shell user of docs/dbus-api.md's status_uids, which needs a passwd entry here.
if [[ $(id -u) -eq 0 ]] && ! getent passwd 2000 >/dev/null; then
  echo "ensure-tools: adding user amos-shell (uid 2000) for the access-control tests"
  useradd --uid 2000 --no-create-home --no-user-group --shell /usr/sbin/nologin amos-shell 2>/dev/null \
    || echo 'amos-shell:x:2000:65534::/nonexistent:/usr/sbin/nologin' >> /etc/passwd
fi

# linux-build/'s tests run amosd as its service user (created as packages do, from
# linux-build/amosd.sysusers) and call it as uid 1000, the phone's user of its policy.
if [[ $(id -u) -eq 0 ]] && ! getent passwd amosd >/dev/null; then
  echo "ensure-tools: adding the service user amosd (linux-build/amosd.sysusers)"
  out=$(systemd-sysusers "$(cd "$(dirname "$0")/.." && pwd)/linux-build/amosd.sysusers" 2>&1) \
    || { echo "ensure-tools: systemd-sysusers failed: $out" >&2; exit 1; }
fi
if [[ $(id -u) -eq 0 ]] && ! getent passwd 1000 >/dev/null; then
  echo "ensure-tools: adding user amos-phone (uid 1000) for the linux-build policy tests"
  useradd --uid 1000 --no-create-home --shell /usr/sbin/nologin amos-phone 2>/dev/null \
    || echo 'amos-phone:x:1000:65534::/nonexistent:/usr/sbin/nologin' >> /etc/passwd
fi

if ! command -v go >/dev/null; then
  echo "ensure-tools: no 'go' on PATH; install Go 1.26 (https://go.dev/dl) or add /usr/local/go/bin to PATH" >&2
  exit 1
fi
