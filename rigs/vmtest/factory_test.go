package vmtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/internal/devattest"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/keystoretest"
	"amos.example/amosd/rigs/testenv"
)

// The data disk's keystore (the guest's amos-keystored: --state, --authority), below
// the disk's root (/data in the guest; rigs/vmtest/guest's keystoreState and
// keystoreAuthority).
const (
	diskKeystore  = "keystore"
	diskAuthority = "keystore-authority"
	// vmSerial is the handset's serial tag source (an HMAC of the IMEI on a real one).
	vmSerial = "IMEI 860000000000777"
	vmMaker  = "konka"
)

// disk is a data disk as the factory left it, and the identity it gave the handset.
type disk struct {
	Path      string
	DeviceID  string // 64 hex digits
	PublicKey string // 130 hex digits: the keystore's P-256 key
	// Verdict is the factory's check of the key's attestation chain (amos-collector
	// attestation verify, the collector's rules): security level and boot key.
	SecurityLevel, BootKey string
}

// factoryIdentity is `amosd identity --json` at the factory.
type factoryIdentity struct {
	DeviceID    string `json:"device_id"`
	PublicKey   string `json:"public_key"`
	KeyType     string `json:"key_type"`
	Backend     string `json:"backend"`
	ChainLength int    `json:"chain_length"`
	Generated   bool   `json:"generated"`
}

// buildDisk makes the data disk as the factory leaves it, with the real tools:
//
//   - the handset's keystore: on a private dbus-daemon the host's amos-keystored (the
//     DEVELOPMENT reference keystore, software keys; its state and its development
//     attestation authority go on the disk, for the guest's amos-keystored), and
//     `amosd identity --maker-id konka --serial-tag HEX --json` with key.backend
//     keystore, which generates the attested P-256 key there;
//   - the maker certificate of that key (`amos-collector maker certify`), after the
//     chain passed `amos-collector attestation verify` under the authority's root;
//   - the collector's configuration (konka's attestation required, the authority's root
//     its only trusted root, its default boot key konka's approved one) and TLS files;
//   - the clock's start.
//
// fill, if not nil, writes into the disk's tree while the keystore still runs, with
// the keystore's key as signer (stage/amos is amosd's data_dir, stage/persist its
// key_dir).
func buildDisk(t *testing.T, ctx context.Context, work string, clock time.Time, fill func(stage string, key *keystore.Signer) error) *disk {
	t.Helper()
	host := filepath.Join(work, "host")
	os.MkdirAll(host, 0o755)
	for _, p := range []string{"cmd/amosd", "cmd/amos-collector", "cmd/amos-keystored"} {
		buildFor(t, ctx, runtime.GOARCH, "", "amos.example/amosd/"+p, filepath.Join(host, filepath.Base(p)))
	}
	run := func(bin string, args ...string) string {
		out, err := exec.CommandContext(ctx, filepath.Join(host, bin), args...).Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("%s %s: %v\n%s%s", bin, strings.Join(args, " "), err, out, stderr)
		}
		return string(out)
	}
	stage := filepath.Join(work, "disk")
	for _, d := range []string{"collector/ledger", "persist", "amos", "vm", diskKeystore} {
		os.MkdirAll(filepath.Join(stage, d), 0o700)
	}
	pki := collectortest.NewValid(t, 3*365*24*time.Hour)
	for _, c := range []struct{ src, dst string }{{pki.CAFile, "ca.pem"}, {pki.CertFile, "server.pem"}, {pki.KeyFile, "server.key"}} {
		b, _ := os.ReadFile(c.src)
		os.WriteFile(filepath.Join(stage, "collector", c.dst), b, 0o600)
	}
	run("amos-collector", "maker", "keygen", "--out", filepath.Join(work, vmMaker))
	makerPub, _ := os.ReadFile(filepath.Join(work, vmMaker+".pub"))
	token := "konka-vm-token"
	sum := sha256.Sum256([]byte(token))
	os.WriteFile(filepath.Join(stage, "collector", "token"), []byte(token+"\n"), 0o600)
	serial := sha256.Sum256([]byte(vmSerial))
	tag := hex.EncodeToString(serial[:])

	// The factory: the keystore on a private bus, and amosd identity against it.
	bus := factoryBus(t, work)
	ks := startKeystored(t, ctx, filepath.Join(host, "amos-keystored"), bus.Address, stage, filepath.Join(work, "amos-keystored.log"))
	hostConf := filepath.Join(work, "factory.json")
	b, _ := json.Marshal(map[string]any{"data_dir": filepath.Join(work, "unused"), "key_dir": filepath.Join(stage, "persist"),
		"server_url": "https://127.0.0.1:8443", "ca_file": pki.CAFile, "bus": bus.Address, "key": map[string]any{"backend": "keystore"}})
	os.WriteFile(hostConf, b, 0o644)
	chainFile := filepath.Join(work, "chain.pem")
	var ident factoryIdentity
	out := run("amosd", "--config", hostConf, "identity", "--json", "--maker-id", vmMaker, "--serial-tag", tag, "--chain", chainFile)
	if err := json.Unmarshal([]byte(out), &ident); err != nil {
		t.Fatalf("amosd identity --json: %v\n%s", err, out)
	}
	if ident.Backend != "keystore" || ident.KeyType != "p256" || len(ident.PublicKey) != 130 || ident.ChainLength != 3 || !ident.Generated {
		t.Fatalf("amosd identity at the factory: %+v, want a generated keystore P-256 key (130 hex digits) with a chain of 3", ident)
	}
	if fill != nil {
		c, err := keystore.Dial(ctx, keystore.Options{Bus: bus.Address})
		if err != nil {
			t.Fatal(err)
		}
		signer, err := keystore.NewSigner(ctx, c, "amosd-device")
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if signer.PublicKey().String() != ident.PublicKey {
			t.Fatalf("the keystore's key %s is not amosd identity's %s", signer.PublicKey(), ident.PublicKey)
		}
		if err := fill(stage, signer); err != nil {
			t.Fatal(err)
		}
	}
	ks.stop(t)
	bus.Stop()
	// The keystore keeps a key per caller uid: the guest's amosd runs as root.
	if uid := os.Getuid(); uid != 0 {
		if err := os.Rename(filepath.Join(stage, diskKeystore, strconv.Itoa(uid)), filepath.Join(stage, diskKeystore, "0")); err != nil {
			t.Fatal(err)
		}
	}

	// The payer trusts the development authority's root (for this test only: it is
	// never a production root) and approves its default boot key for konka.
	authDir := filepath.Join(stage, diskAuthority)
	auth, err := devattest.Load(authDir)
	if err != nil {
		t.Fatal(err)
	}
	rootPEM := filepath.Join(stage, "collector", "attest-root.pem")
	if err := os.WriteFile(rootPEM, auth.RootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	bootKey := hex.EncodeToString(devattest.BootKey(auth.Name()))
	var verdict struct {
		Accepted      bool   `json:"accepted"`
		SecurityLevel string `json:"security_level"`
		BootKey       string `json:"boot_key"`
	}
	out = run("amos-collector", "attestation", "verify", "--chain", chainFile, "--at", clock.UTC().Format(time.RFC3339),
		"--challenge-hex", hex.EncodeToString(proof.AttestationChallenge(vmMaker, serial)), "--roots", rootPEM,
		"--boot-key", bootKey, "--key", ident.PublicKey)
	if err := json.Unmarshal([]byte(out), &verdict); err != nil || !verdict.Accepted {
		t.Fatalf("amos-collector attestation verify at the factory: %v\n%s", err, out)
	}
	run("amos-collector", "maker", "certify", "--key", filepath.Join(work, vmMaker+".key"), "--maker-id", vmMaker,
		"--model", "Amos VM", "--serial-tag", tag, "--device-pub", ident.PublicKey,
		"--out", filepath.Join(stage, "persist", "device.cert"))

	colConf, _ := json.MarshalIndent(map[string]any{
		"listen": "127.0.0.1:8443", "tls_cert": "/data/collector/server.pem", "tls_key": "/data/collector/server.key",
		"data_dir": "/data/collector/ledger",
		"makers": []map[string]any{{"id": vmMaker, "public_key": strings.TrimSpace(string(makerPub)), "token_sha256": hex.EncodeToString(sum[:]),
			"attestation": "required", "boot_keys": []string{bootKey}}},
		"attestation":        map[string]any{"google_roots": false, "roots": []string{"/data/collector/attest-root.pem"}},
		"payer_token_sha256": hex.EncodeToString(make([]byte, 32)),
		"limits":             map[string]int{"max_inflight_batches": 64, "device_batches_per_minute": 100000},
	}, "", "  ")
	os.WriteFile(filepath.Join(stage, "collector", "collector.json"), colConf, 0o600)
	os.WriteFile(filepath.Join(stage, "vm", "clock"), []byte(strconv.FormatInt(clock.Unix(), 10)+"\n"), 0o644)
	path := filepath.Join(work, "disk.img")
	if out, err := exec.CommandContext(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-d", stage, path, "64M").CombinedOutput(); err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	t.Logf("factory: device %s, keystore key p256 with a chain of %d from the development authority %q (%s, boot key %.16s…), certified by %s",
		ident.DeviceID[:16], ident.ChainLength, auth.Name(), verdict.SecurityLevel, verdict.BootKey, vmMaker)
	return &disk{Path: path, DeviceID: ident.DeviceID, PublicKey: ident.PublicKey, SecurityLevel: verdict.SecurityLevel, BootKey: bootKey}
}

// factoryBus starts the factory's private dbus-daemon with the system bus's policy
// (testdata/dbus/system-like.conf: root may own names), plus, for a user other than
// root, a policy that lets that user own amos-keystored's name.
func factoryBus(t *testing.T, work string) *testenv.Bus {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Fatal("dbus-daemon is missing: apt-get install -y dbus-daemon (scripts/ensure-tools.sh)")
	}
	conf := testenv.BusConfig(t)
	if uid := os.Getuid(); uid != 0 {
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		mine := fmt.Sprintf("  <policy user=\"%d\">\n    <allow own=\"*\"/>\n    <allow send_type=\"method_call\"/>\n  </policy>\n</busconfig>", uid)
		conf = filepath.Join(work, "factory-bus.conf")
		if err := os.WriteFile(conf, bytes.Replace(b, []byte("</busconfig>"), []byte(mine), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return testenv.StartBusConfig(t, conf)
}

// keystored is the factory's amos-keystored.
type keystored struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startKeystored starts bin on the bus at address with its state and development
// authority in the disk's tree, and returns once it owns com.amos.Keystore1.
func startKeystored(t *testing.T, ctx context.Context, bin, address, stage, logPath string) *keystored {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "--bus", address, "--state", filepath.Join(stage, diskKeystore),
		"--authority", filepath.Join(stage, diskAuthority))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	k := &keystored{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { k.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		cmd.Process.Kill() // an error once it has exited
		<-k.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("amos-keystored at the factory:\n%s", b)
		}
	})
	keystoretest.WaitName(t, address, keystore.Name, 30*time.Second)
	return k
}

// stop ends amos-keystored with SIGTERM, as a service manager would, and wants exit 0.
func (k *keystored) stop(t *testing.T) {
	t.Helper()
	k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-k.done:
		k.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("amos-keystored after SIGTERM: %v (its log: %s)", err, k.log)
		}
	case <-time.After(20 * time.Second):
		k.cmd.Process.Kill()
		t.Fatal("amos-keystored did not stop in 20 s after SIGTERM")
	}
}
