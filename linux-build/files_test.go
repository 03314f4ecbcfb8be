package linuxbuild

import (
	"encoding/xml"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/dbusapi"
)

// busPolicy is the part of a D-Bus policy file that the test reads.
type busPolicy struct {
	Policies []struct {
		Context string       `xml:"context,attr"`
		User    string       `xml:"user,attr"`
		Allow   []policyRule `xml:"allow"`
	} `xml:"policy"`
}

type policyRule struct {
	Own         string `xml:"own,attr"`
	Destination string `xml:"send_destination,attr"`
	Interface   string `xml:"send_interface,attr"`
	Member      string `xml:"send_member,attr"`
}

// TestFilesAgree: the files of this folder name the same binary, configuration, bus
// name, user, directories and uids, and amosd.json is a valid configuration.
func TestFilesAgree(t *testing.T) {
	cfg, err := config.Parse(configFile, []byte(readFile(t, configFile)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Bus != "system" || cfg.Log != "stderr" || cfg.AllowInsecureHTTP {
		t.Errorf("%s: bus %q, log %q, allow_insecure_http %v; want system, stderr (journald), false", configFile, cfg.Bus, cfg.Log, cfg.AllowInsecureHTTP)
	}
	unit, act := readFile(t, unitFile), readFile(t, activationFile)
	exec := installedBinary + " --config " + installedConfig + " run"
	if got := unitKey(t, unit, "Service", "ExecStart"); got != exec {
		t.Errorf("%s: ExecStart=%s, want %s", unitFile, got, exec)
	}
	if got := unitKey(t, act, "D-BUS Service", "Exec"); got != exec {
		t.Errorf("%s: Exec=%s, want %s", activationFile, got, exec)
	}
	for _, c := range []struct{ what, got, want string }{
		{unitFile + " Type=", unitKey(t, unit, "Service", "Type"), "dbus"},
		{unitFile + " BusName=", unitKey(t, unit, "Service", "BusName"), dbusapi.Name},
		{activationFile + " Name=", unitKey(t, act, "D-BUS Service", "Name"), dbusapi.Name},
		{activationFile + " SystemdService=", unitKey(t, act, "D-BUS Service", "SystemdService"), unitFile},
	} {
		if c.got != c.want {
			t.Errorf("%s%s, want %s", c.what, c.got, c.want)
		}
	}

	// One service user: the unit's, the activation file's, the one sysusers creates.
	if got := unitKey(t, unit, "Service", "User"); got != serviceUser {
		t.Errorf("%s: User=%s, want %s", unitFile, got, serviceUser)
	}
	if got := unitKey(t, act, "D-BUS Service", "User"); got != serviceUser {
		t.Errorf("%s: User=%s, want %s", activationFile, got, serviceUser)
	}
	if !strings.Contains(readFile(t, sysusersFile), "\nu "+serviceUser+" ") {
		t.Errorf("%s does not create user %s", sysusersFile, serviceUser)
	}

	// data_dir and key_dir are the unit's StateDirectory= (below /var/lib), and wait
	// for their mounts.
	states := strings.Fields(unitKey(t, unit, "Service", "StateDirectory"))
	mounts := strings.Fields(unitKey(t, unit, "Unit", "RequiresMountsFor"))
	for key, dir := range map[string]string{"data_dir": cfg.DataDir, "key_dir": cfg.KeyDir} {
		rel, err := filepath.Rel("/var/lib", dir)
		if err != nil || strings.HasPrefix(rel, "..") || !slices.Contains(states, rel) {
			t.Errorf("%s %s is not one of StateDirectory=%v below /var/lib", key, dir, states)
		}
		if !slices.Contains(mounts, dir) {
			t.Errorf("%s %s is not in RequiresMountsFor=%v", key, dir, mounts)
		}
	}

	// The policy: only root and the service user own the name; it grants the whole
	// interface to trusted_uids, and Status and Flush to status_uids, nothing else.
	var pol busPolicy
	if err := xml.Unmarshal([]byte(readFile(t, policyFile)), &pol); err != nil {
		t.Fatal(err)
	}
	uidOf := map[string]uint32{"root": 0}
	var owners []string
	trusted, status := map[uint32]bool{}, map[uint32]bool{}
	for _, p := range pol.Policies {
		for _, a := range p.Allow {
			switch {
			case a.Own != "":
				owners = append(owners, p.User)
			case a.Destination != dbusapi.Name || a.Interface != dbusapi.Iface:
			default:
				uid, ok := uidOf[p.User]
				if !ok {
					n, err := strconv.ParseUint(p.User, 10, 32)
					if err != nil {
						t.Fatalf("%s: policy of user %q grants calls: name callers by uid, as amosd.json does", policyFile, p.User)
					}
					uid = uint32(n)
				}
				switch a.Member {
				case "":
					trusted[uid] = true
				case "Status", "Flush":
					status[uid] = true
				default:
					t.Errorf("%s: user %s may call %s", policyFile, p.User, a.Member)
				}
			}
		}
	}
	slices.Sort(owners)
	if !slices.Equal(owners, []string{serviceUser, "root"}) {
		t.Errorf("%s: owners %v, want %s and root", policyFile, owners, serviceUser)
	}
	for _, u := range cfg.TrustedUIDs {
		if !trusted[u] {
			t.Errorf("trusted uid %d may not call every method under %s", u, policyFile)
		}
	}
	for u := range trusted {
		if !slices.Contains(cfg.TrustedUIDs, u) {
			t.Errorf("%s grants every method to uid %d, which trusted_uids %v lacks", policyFile, u, cfg.TrustedUIDs)
		}
	}
	for _, u := range cfg.StatusUIDs {
		if !status[u] && !trusted[u] {
			t.Errorf("status uid %d may not call Status and Flush under %s", u, policyFile)
		}
	}
	for u := range status {
		if !slices.Contains(cfg.StatusUIDs, u) && !slices.Contains(cfg.TrustedUIDs, u) {
			t.Errorf("%s grants Status/Flush to uid %d, which status_uids %v lacks", policyFile, u, cfg.StatusUIDs)
		}
	}
	if !slices.Contains(cfg.StatusUIDs, phoneUID) {
		t.Errorf("status_uids %v lacks the phone's user %d", cfg.StatusUIDs, phoneUID)
	}
}
