package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// Account returns the passwd entry of uid, which dbus-daemon needs to accept a
// client of that uid. Missing, it is created as scripts/ensure-tools.sh (`make tools`)
// creates it, named name, with no home and no login, when the test runs as root;
// otherwise the test is skipped with a message that names `make tools`.
func Account(t testing.TB, uid int, name string) *user.User {
	t.Helper()
	return ensure(t, strconv.Itoa(uid), func() error {
		if _, err := exec.LookPath("useradd"); err == nil {
			out, err := exec.Command("useradd", "--uid", strconv.Itoa(uid), "--no-create-home", "--no-user-group",
				"--shell", "/usr/sbin/nologin", name).CombinedOutput()
			if err != nil {
				return fmt.Errorf("useradd %s (uid %d): %v: %s", name, uid, err, strings.TrimSpace(string(out)))
			}
			return nil
		}
		f, err := os.OpenFile("/etc/passwd", os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = fmt.Fprintf(f, "%s:x:%d:65534::/nonexistent:/usr/sbin/nologin\n", name, uid)
		return err
	})
}

// ServiceAccount returns the passwd entry of the service user name, created when
// missing (as root) from the sysusers.d file that declares it, as a package would
// (systemd-sysusers); without root the test is skipped, naming `make tools`.
func ServiceAccount(t testing.TB, name, sysusersFile string) *user.User {
	t.Helper()
	return ensure(t, name, func() error {
		out, err := exec.Command("systemd-sysusers", sysusersFile).CombinedOutput()
		if err != nil {
			return fmt.Errorf("systemd-sysusers %s: %v: %s", sysusersFile, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
}

// ensure looks who (a name or a uid) up, and creates it with create when it is missing
// and the test runs as root.
func ensure(t testing.TB, who string, create func() error) *user.User {
	t.Helper()
	if u, err := lookupAccount(who); err == nil {
		return u
	}
	if os.Geteuid() != 0 {
		t.Skipf("user %s has no passwd entry, which dbus-daemon needs for its clients: run `make tools` as root (scripts/ensure-tools.sh creates it)", who)
	}
	// useradd and systemd-sysusers lock /etc/passwd; a test that lost the race to
	// another (a package of the same run) finds the account made.
	if err := create(); err != nil {
		if u, lerr := lookupAccount(who); lerr == nil {
			return u
		}
		t.Fatalf("creating the test account %s: %v", who, err)
	}
	u, err := lookupAccount(who)
	if err != nil {
		t.Fatalf("user %s was created but cannot be looked up: %v", who, err)
	}
	t.Logf("created the account %s (uid %s) for this test, as `make tools` does", u.Username, u.Uid)
	return u
}

func lookupAccount(who string) (*user.User, error) {
	if _, err := strconv.Atoi(who); err == nil {
		return user.LookupId(who)
	}
	return user.Lookup(who)
}
