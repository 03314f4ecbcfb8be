#!/bin/sh
# oem-check.sh: checks amosd on an Amos handset over adb, as an OEM engineer would.
# Pushes nothing unless told to (--push); changes nothing but the day's tally, which
# the reported test activity (a few seconds) adds to.
#
#   android-build/oem-check.sh [-s SERIAL] [--push PATH]   a handset on adb
#   android-build/oem-check.sh --local                      this machine: $AMOSD (default:
#                                                           amosd on PATH), $AMOSD_CONFIG
#
# Each step prints "PASS name" or "FAIL name: what — fix: how" (and "SKIP name: why"
# for a step that an earlier failure makes pointless); a selftest check that passes
# with a warning (a listed source that is absent while another one works) prints
# "WARN name: what — fix: how". Exit 0 if nothing failed, 1 if something did, 2 on a
# usage error.
#
# Environment: ADB (default adb), ADB_SERIAL (as -s), AMOSD (--local: the binary),
# AMOSD_CONFIG (passed to amosd), AMOSD_CHECK_WAIT (seconds of reported use to measure,
# default 3), AMOSD_REMOTE_DIR (where --push puts the binary, default /data/local/tmp).
# Needs only a POSIX shell, sed and awk on this machine; on the handset, its shell.

ADB=${ADB:-adb}
SERIAL=${ADB_SERIAL:-}
MODE=adb
PUSH=
WAIT=${AMOSD_CHECK_WAIT:-3}
REMOTE_DIR=${AMOSD_REMOTE_DIR:-/data/local/tmp}

usage() {
	sed -n '2,20s/^# \{0,1\}//p' "$0"
}

while [ $# -gt 0 ]; do
	case $1 in
	-s) [ $# -ge 2 ] || { echo "oem-check: -s needs a serial" >&2; exit 2; }
		SERIAL=$2; shift 2 ;;
	--local) MODE=local; shift ;;
	--push) [ $# -ge 2 ] || { echo "oem-check: --push needs the path of an amosd binary" >&2; exit 2; }
		PUSH=$2; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "oem-check: unknown argument \"$1\" (try --help)" >&2; exit 2 ;;
	esac
done
case $WAIT in
''|*[!0-9]*) echo "oem-check: AMOSD_CHECK_WAIT=\"$WAIT\" is not a number of seconds" >&2; exit 2 ;;
esac
if [ "$MODE" = local ] && [ -n "$PUSH" ]; then
	echo "oem-check: --push is for a handset, not with --local (set AMOSD instead)" >&2; exit 2
fi

passed=0
failed=0
warned=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
# fail NAME WHAT FIX
fail() { echo "FAIL $1: $2 — fix: $3"; failed=$((failed + 1)); }
skip() { echo "SKIP $1: $2"; }
finish() {
	case $warned in
	0) echo "oem-check: $passed passed, $failed failed" ;;
	1) echo "oem-check: $passed passed, $failed failed, 1 warning" ;;
	*) echo "oem-check: $passed passed, $failed failed, $warned warnings" ;;
	esac
	[ "$failed" -eq 0 ] && exit 0
	exit 1
}

adb_() {
	if [ -n "$SERIAL" ]; then "$ADB" -s "$SERIAL" "$@"; else "$ADB" "$@"; fi
}

# one_line TEXT: the text on one line, carriage returns (old adb's pty) removed.
one_line() { printf '%s' "$1" | tr -d '\r' | tr '\n' ' ' | sed 's/  */ /g; s/ $//'; }

AMOSD_BIN=${AMOSD:-amosd}

# amosd ARGS...: runs amosd; sets OUT (stdout and stderr) and RC (its exit code; 127
# if it could not be run). Over adb the exit code is echoed by the handset's shell:
# adb itself passes it on only with the shell protocol of newer versions.
run_amosd() {
	if [ "$MODE" = local ]; then
		OUT=$("$AMOSD_BIN" "$@" 2>&1)
		RC=$?
		return
	fi
	OUT=$(adb_ shell "$AMOSD_BIN $* 2>&1; echo __amosd_rc=\$?" 2>&1)
	RC=$(printf '%s\n' "$OUT" | tr -d '\r' | sed -n 's/^__amosd_rc=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
	OUT=$(printf '%s\n' "$OUT" | tr -d '\r' | sed '/^__amosd_rc=/d')
	if [ -z "$RC" ]; then
		OUT="adb shell failed: $OUT"
		RC=255
	fi
}

# json_get KEY: the value of the top-level KEY of the JSON object in OUT, as Go's
# encoder indents it (one key a line): a string without its quotes, a number,
# true/false, or an array's items separated by commas.
json_get() {
	printf '%s\n' "$OUT" | tr -d '\r' | awk -v key="\"$1\":" '
		index($0, key) && !done {
			v = substr($0, index($0, key) + length(key))
			sub(/^[ \t]*/, "", v)
			if (v ~ /^\[/) {
				while (v !~ /\]/ && (getline line) > 0) v = v line
				gsub(/[][ \t"]/, "", v)
				sub(/,$/, "", v)
			} else {
				sub(/,[ \t]*$/, "", v)
				if (v ~ /^"/) v = substr(v, 2, length(v) - 2)
				gsub(/\\"/, "\"", v)
			}
			print v
			done = 1
		}'
}

# why_fix: the fix for a failed call of amosd, from its exit code and message.
why_fix() {
	case $RC in
	127) echo "amosd is not installed where this runs: add amosd to PRODUCT_PACKAGES (it installs /system/bin/amosd), or pass --push out/arm64/amosd" ;;
	3) echo "start the daemon (Android: adb shell start amosd; see why it stopped with adb logcat -d -s amosd); the system D-Bus must be up" ;;
	2) echo "fix the configuration as the message says (/system/etc/amosd.json, docs/config.md)" ;;
	*)
		case $OUT in
		*"access denied"*) echo "this call needs a trusted uid (trusted_uids of amosd.json, by default root 0 and system 1000): adb root (userdebug or eng build), or run as root or system" ;;
		*) echo "see the message; amosd selftest names the part that fails" ;;
		esac ;;
	esac
}

# --- the device, or this machine ---------------------------------------------------
if [ "$MODE" = adb ]; then
	if ! command -v "$ADB" >/dev/null 2>&1; then
		fail adb "no adb at \"$ADB\"" "install Android's platform-tools (Debian: apt-get install adb), or set ADB=/path/to/adb"
		finish
	fi
	state=$(adb_ get-state 2>&1 | tr -d '\r')
	if [ "$state" != device ]; then
		fail device "$ADB${SERIAL:+ -s $SERIAL} get-state says \"$(one_line "$state")\"" \
			"connect the handset, enable USB debugging and accept this computer's key; with several devices pass -s SERIAL (adb devices lists them)"
		finish
	fi
	pass "device${SERIAL:+ $SERIAL}"
	uid=$(adb_ shell id -u 2>&1 | tr -d '\r')
	if [ "$uid" = 0 ]; then
		pass "root (adb shell is uid 0)"
	else
		fail root "adb shell runs as uid $(one_line "$uid"): selftest cannot read /persist/amos and report needs a trusted uid" \
			"adb root (userdebug or eng build), then run oem-check.sh again"
	fi
	if [ -n "$PUSH" ]; then
		if out=$(adb_ push "$PUSH" "$REMOTE_DIR/amosd" 2>&1) && adb_ shell chmod 755 "$REMOTE_DIR/amosd" >/dev/null 2>&1; then
			AMOSD_BIN=$REMOTE_DIR/amosd
			pass "push ($PUSH to $AMOSD_BIN)"
		else
			fail push "adb push $PUSH $REMOTE_DIR/amosd: $(one_line "$out")" "give the path of an amosd built by make cross (out/arm/amosd or out/arm64/amosd)"
			finish
		fi
	fi
else
	if ! command -v "$AMOSD_BIN" >/dev/null 2>&1; then
		fail binary "no amosd at \"$AMOSD_BIN\"" "put amosd on PATH or set AMOSD=/path/to/amosd (make build writes out/host/amosd)"
		finish
	fi
	pass "binary ($(command -v "$AMOSD_BIN"))"
fi

# --- amosd version ----------------------------------------------------------------
run_amosd version
case $RC:$OUT in
0:amosd\ *) pass "version ($(one_line "$OUT"))" ;;
*)
	fail version "amosd version: exit $RC: $(one_line "$OUT")" "$(why_fix)"
	finish ;;
esac

# --- amosd selftest --json: one line per check ----------------------------------------
run_amosd selftest --json
case $OUT in
*'"checks"'*)
	# One check per object; Go's encoder writes each key on its own line.
	lines=$(printf '%s\n' "$OUT" | tr -d '\r' | awk '
		function unq(s) {
			sub(/^[^:]*: *"/, "", s); sub(/",?[ \t]*$/, "", s)
			gsub(/\\u003c/, "<", s); gsub(/\\u003e/, ">", s); gsub(/\\u0026/, "\\&", s)
			gsub(/\\"/, "\"", s); gsub(/\\\\/, "\\", s)
			return s
		}
		/"check":/  { name = unq($0); ok = ""; warn = ""; detail = ""; fix = "" }
		/"ok": *(true|false)/ && name != "" { ok = ($0 ~ /true/) ? "true" : "false" }
		/"warn": *true/ && name != "" { warn = "true" }
		/"detail":/ { detail = unq($0) }
		/"fix":/    { fix = unq($0) }
		/^[ \t]*},?[ \t]*$/ && name != "" {
			if (ok == "true" && warn == "true") {
				if (fix == "") fix = "see the detail"
				print "WARN selftest " name ": " detail " — fix: " fix
			} else if (ok == "true") print "PASS selftest " name " (" detail ")"
			else {
				if (fix == "") fix = "see the detail"
				print "FAIL selftest " name ": " detail " — fix: " fix
			}
			name = ""
		}')
	while IFS= read -r line; do
		case $line in
		PASS\ *) pass "${line#PASS }" ;;
		WARN\ *) echo "$line"; warned=$((warned + 1)) ;;
		FAIL\ *) echo "$line"; failed=$((failed + 1)) ;;
		esac
	done <<EOF
$lines
EOF
	if [ "$RC" != 0 ] && [ "$RC" != 1 ]; then
		fail selftest "amosd selftest --json: exit $RC" "$(why_fix)"
	fi ;;
*) fail selftest "amosd selftest --json: exit $RC: $(one_line "$OUT")" "$(why_fix)" ;;
esac

# --- amosd report: the owner uses the phone for AMOSD_CHECK_WAIT seconds -----------------
reports_ok=yes
before=
run_amosd status --json
[ "$RC" = 0 ] && before=$(json_get today_interactive_seconds) && day=$(json_get today_date)
for ev in screen_on unlocked input; do
	if [ "$reports_ok" = no ]; then
		skip "report $ev" "an earlier report failed"
		continue
	fi
	run_amosd report "$ev"
	if [ "$RC" = 0 ]; then
		pass "report $ev"
	else
		fail "report $ev" "amosd report $ev: exit $RC: $(one_line "$OUT")" "$(why_fix)"
		reports_ok=no
	fi
done
if [ "$reports_ok" = yes ] && [ -n "$before" ]; then
	sleep "$WAIT"
	run_amosd status --json
	after=$(json_get today_interactive_seconds)
	consent=$(json_get consent)
	if [ "$RC" != 0 ]; then
		fail counting "amosd status --json: exit $RC: $(one_line "$OUT")" "$(why_fix)"
	elif [ "$(json_get today_date)" != "$day" ]; then
		skip counting "local midnight passed during the check (today_date $day -> $(json_get today_date)): run again"
	elif [ "$consent" != true ]; then
		fail counting "consent is off: nothing is counted, nothing is uploaded" \
			"the owner grants consent in setup; for this check: amosd consent on (as root), then run again"
	elif [ -n "$after" ] && [ "$after" -gt "$before" ]; then
		pass "counting (today_interactive_seconds $before -> $after after ${WAIT}s of reported use)"
	else
		fail counting "today_interactive_seconds stayed at ${after:-?} (was $before) during ${WAIT}s of reported use" \
			"check that the screen is on and unlocked for amosd (the platform's com.amos.PowerManager signals), and amosd logs (adb logcat -d -s amosd)"
	fi
else
	skip counting "the reports or the first status failed"
fi
for ev in locked screen_off; do
	if [ "$reports_ok" = no ]; then
		skip "report $ev" "an earlier report failed"
		continue
	fi
	run_amosd report "$ev"
	if [ "$RC" = 0 ]; then
		pass "report $ev"
	else
		fail "report $ev" "amosd report $ev: exit $RC: $(one_line "$OUT")" "$(why_fix)"
	fi
done

# --- amosd flush: one sync attempt now ------------------------------------------------
run_amosd flush
if [ "$RC" = 0 ]; then
	pass "flush ($(one_line "$OUT"))"
else
	case $RC in
	1) fix="check the network, server_url and ca_file (amosd selftest tests the TLS handshake with the server); amosd retries by itself" ;;
	*) fix=$(why_fix) ;;
	esac
	fail flush "amosd flush: exit $RC: $(one_line "$OUT")" "$fix"
fi

# --- amosd status --json ---------------------------------------------------------------
run_amosd status --json
if [ "$RC" != 0 ]; then
	fail status "amosd status --json: exit $RC: $(one_line "$OUT")" "$(why_fix)"
else
	consent=$(json_get consent)
	queued=$(json_get queued)
	result=$(json_get last_sync_result)
	sources=$(json_get sources | tr -d ' "')
	summary="consent $consent, $queued queued, last sync \"$result\", sources: ${sources:-none}"
	if [ "$consent" != true ]; then
		fail status "$summary: consent is off" "the owner grants consent in setup; for this check: amosd consent on (as root)"
	else
		case $result in
		ok*) pass "status ($summary)" ;;
		'')
			if [ "$queued" = 0 ]; then pass "status ($summary)"
			else fail status "$summary: no sync yet" "amosd flush, then check the network, server_url and ca_file"
			fi ;;
		*) fail status "$summary: the last sync failed" "check the network, server_url and ca_file (amosd selftest tests the server)" ;;
		esac
	fi
fi

finish
