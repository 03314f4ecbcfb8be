package androidbuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policyMacros define, for m4, the AOSP macros and permission sets amosd.te uses, as
// system/sepolicy's te_macros and global_macros expand them (modern releases:
// init_daemon_domain without tmpfs_domain). Written for this test, not copied.
const policyMacros = "divert(-1)\n" +
	"define(`r_dir_perms', `{ open getattr read search ioctl lock watch watch_reads }')\n" +
	"define(`r_file_perms', `{ getattr open read ioctl lock map watch watch_reads }')\n" +
	"define(`w_file_perms', `{ open append write lock map }')\n" +
	"define(`rw_file_perms', `{ r_file_perms w_file_perms }')\n" +
	"define(`rw_dir_perms', `{ r_dir_perms add_name remove_name write }')\n" +
	"define(`create_file_perms', `{ create rename setattr unlink rw_file_perms }')\n" +
	"define(`domain_trans', `\n" +
	"allow $1 $2:file { getattr open read execute map };\n" +
	"allow $1 $3:process transition;\n" +
	"allow $3 $2:file { entrypoint open read execute getattr map };\n" +
	"dontaudit $1 $3:process noatsecure;\n" +
	"allow $1 $3:process { siginh rlimitinh };\n')\n" +
	"define(`domain_auto_trans', `domain_trans($1,$2,$3)\ntype_transition $1 $2:process $3;\n')\n" +
	"define(`init_daemon_domain', `domain_auto_trans(init, $1_exec, $1)')\n" +
	"define(`net_domain', `typeattribute $1 netdomain;')\n" +
	"define(`unix_socket_connect', `allow $1 $2_socket:sock_file write;\nallow $1 $3:unix_stream_socket connectto;')\n" +
	"define(`unix_socket_send', `allow $1 $2_socket:sock_file write;\nallow $1 $3:unix_dgram_socket sendto;')\n" +
	"define(`write_logd', `unix_socket_send($1, logdw, logd)\nallow $1 pmsg_device:chr_file w_file_perms;')\n" +
	"define(`r_dir_file', `allow $1 $2:dir r_dir_perms;\nallow $1 $2:{ file lnk_file } r_file_perms;')\n" +
	"divert(0)dnl\n"

// policyBase is a small base policy: the classes and permissions the rules use, and the
// AOSP attributes and types amosd.te names (the Amos bus's are the firmware's).
const policyBase = `class file
class dir
class lnk_file
class chr_file
class sock_file
class process
class unix_stream_socket
class unix_dgram_socket
sid kernel
common file { ioctl read write create getattr setattr lock relabelfrom relabelto append map unlink link rename execute open watch watch_reads }
common socket { ioctl read write create getattr setattr lock relabelfrom relabelto append map bind connect listen accept getopt setopt shutdown recvfrom sendto name_bind }
class file inherits file { entrypoint execute_no_trans }
class dir inherits file { add_name remove_name reparent search rmdir }
class lnk_file inherits file
class chr_file inherits file
class sock_file inherits file
class process { transition sigchld siginh rlimitinh noatsecure }
class unix_stream_socket inherits socket { connectto }
class unix_dgram_socket inherits socket
attribute domain;
attribute coredomain;
attribute netdomain;
attribute file_type;
attribute system_file_type;
attribute exec_type;
attribute data_file_type;
attribute core_data_file_type;
type init, domain;
type netd, domain;
type logd, domain;
type amos_dbus, domain;
type system_file, file_type, system_file_type;
type proc_random, file_type;
type input_device, file_type;
type mnt_vendor_file, file_type;
type pmsg_device, file_type;
type logdw_socket, file_type;
type dnsproxyd_socket, file_type;
type amos_dbus_socket, file_type;
`

// policyAssertions are what amosd must never be allowed, checked by checkpolicy: it
// writes only its own files (and logd's pmsg), never input devices, and only init
// enters its domain.
const policyAssertions = `neverallow amosd { file_type -amosd_data_file -amosd_persist_file -pmsg_device }:{ file chr_file lnk_file } { write append create unlink rename setattr };
neverallow amosd { file_type -amosd_data_file -amosd_persist_file }:dir { write add_name remove_name rmdir create };
neverallow { domain -init } amosd:process transition;
neverallow amosd { domain -netd -amos_dbus }:unix_stream_socket connectto;
neverallow amosd { domain -logd }:unix_dgram_socket sendto;
`

const policyTail = `role r;
role r types domain;
user u roles { r };
sid kernel u:r:init
`

// compilePolicy expands te with m4 and compiles it with checkpolicy into a binary
// policy, with the base policy, extra rules and the assertions; it returns
// checkpolicy's complaint if any.
func compilePolicy(t *testing.T, te, extra string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "amosd.te")
	if err := os.WriteFile(src, []byte(policyMacros+te+"\n"+extra+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	expanded, err := exec.CommandContext(ctx, "m4", src).Output()
	if err != nil {
		t.Fatalf("m4 %s: %v", src, err)
	}
	conf := filepath.Join(dir, "policy.conf")
	if err := os.WriteFile(conf, []byte(policyBase+string(expanded)+policyAssertions+policyTail), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "checkpolicy", "-o", filepath.Join(dir, "policy.bin"), conf).CombinedOutput()
	return string(out), err
}

// TestPolicyCompiles compiles amosd.te, its macros expanded, with checkpolicy against
// a small base policy, and checks the assertions above; then shows that checkpolicy
// refuses a policy that breaks them.
func TestPolicyCompiles(t *testing.T) {
	for _, tool := range []string{"m4", "checkpolicy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install checkpolicy m4)", tool)
		}
	}
	te := read(t, filepath.Join("sepolicy", "amosd.te"))
	if out, err := compilePolicy(t, te, ""); err != nil {
		t.Fatalf("checkpolicy refuses amosd.te: %v\n%s", err, out)
	}
	tests := []struct{ extra, want string }{
		{"allow amosd system_file:file write;", "neverallow"},
		{"allow amosd input_device:chr_file write;", "neverallow"},
		{"allow amosd mnt_vendor_file:dir add_name;", "neverallow"},
		{"allow amosd init:unix_stream_socket connectto;", "neverallow"},
		{"allow amosd shell_data_file:file read;", "unknown type"},
		{"allow amosd system_file:file frobnicate;", "permission frobnicate is not defined"},
	}
	for _, tt := range tests {
		out, err := compilePolicy(t, te, tt.extra)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("with %q: checkpolicy %v, want a refusal saying %q:\n%s", tt.extra, err, tt.want, out)
		}
	}
}
