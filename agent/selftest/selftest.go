package selftest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/agent/dbusapi"
	"amos.example/amosd/agent/identity"
	"amos.example/amosd/agent/keystore"
	"amos.example/amosd/internal/resolve"
	"amos.example/amosd/proof"
	"amos.example/amosd/sources"
	"amos.example/amosd/store"
	"amos.example/amosd/transport"
)

// Check is one line of `amosd selftest`: what was checked, whether it passed, what was
// found, and how to fix it. A warning passes (OK) but says what is missing and how to
// fix it: a listed source that is absent while another one is available, or a damaged
// epoch file that amosd rebuilds at its next start.
type Check struct {
	Name   string `json:"check"`
	OK     bool   `json:"ok"`
	Warn   bool   `json:"warn,omitempty"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Run checks what an OEM engineer needs to know on a handset (docs/dbus-api.md): the
// configuration, the key in its backend (a file, or the keystore and the key's
// attestation chain), the store, the bus and the daemon, the sources, the name of the
// server (with the resolver the daemon uses: dnsproxyd, dns_servers or the system's), the
// server (a TLS handshake with the pinned CA) and the clock. It changes nothing.
func Run(ctx context.Context, cfgPath string, now time.Time) []Check {
	var out []Check
	add := func(name string, ok bool, detail, fix string) {
		out = append(out, Check{Name: name, OK: ok, Detail: detail, Fix: fix})
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		add("config", false, err.Error(), "fix "+cfgPath+" as the message says (see docs/config.md)")
		return out
	}
	add("config", true, cfgPath, "")
	out = append(out, checkKey(ctx, cfg)...)
	out = append(out, checkStore(cfg))
	daemon := checkDaemon(ctx, cfg)
	out = append(out, daemon...)
	timeout := min(time.Duration(cfg.Sync.Timeout), 10*time.Second)
	res, err := resolve.New(cfg.DNSServers, timeout)
	if err != nil { // config.Load has checked dns_servers: not expected
		add("dns", false, err.Error(), "fix dns_servers in "+cfgPath)
		res, _ = resolve.New(nil, timeout)
	} else {
		out = append(out, checkDNS(ctx, cfg, res))
	}
	out = append(out, checkServer(ctx, cfg, res))
	if now.Year() < 2024 {
		add("clock", false, "wall clock says "+now.UTC().Format(time.RFC3339), "set the clock (network time), or let the first sync confirm it")
	} else {
		add("clock", true, "wall clock "+now.UTC().Format(time.RFC3339), "")
	}
	return out
}

// checkKey checks the device key in its backend (key.backend, key.type), whether the
// key has an attestation chain, the maker certificate and the epoch file.
func checkKey(ctx context.Context, cfg *config.Config) []Check {
	var out []Check
	dir := cfg.KeyDir
	keystoreBackend := cfg.Key.Backend == config.KeyBackendKeystore
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !keystoreBackend:
		return []Check{{Name: "key", OK: true, Detail: "key_dir " + dir + " does not exist yet: amosd creates it and the device key at first start"}}
	case errors.Is(err, fs.ErrNotExist):
		out = append(out, Check{Name: "key_dir", OK: true, Detail: "key_dir " + dir + " does not exist yet: amosd creates it at first start"})
	case err != nil:
		return []Check{{Name: "key", Detail: err.Error(), Fix: "make key_dir " + dir + " readable by amosd"}}
	case fi.Mode().Perm()&0o077 != 0:
		out = append(out, Check{Name: "key_dir", Detail: fmt.Sprintf("key_dir %s: mode %04o, want 0700", dir, fi.Mode().Perm()), Fix: "chmod 700 " + dir})
	default:
		out = append(out, Check{Name: "key_dir", OK: true, Detail: dir + " mode 0700"})
	}
	var checks []Check
	var pub proof.PublicKey
	if keystoreBackend {
		checks, pub = checkKeystoreKey(ctx, cfg)
	} else {
		checks, pub = checkFileKey(cfg)
	}
	out = append(out, checks...)
	if pub.IsZero() {
		return out
	}
	certPath := filepath.Join(dir, identity.CertFile)
	b, err := os.ReadFile(certPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		out = append(out, Check{Name: "certificate", Detail: certPath + " is missing: the device is recorded but never paid for",
			Fix: "write the maker certificate at the factory (amos-collector maker certify with the public key of `amosd identity`)"})
		return out
	case err != nil:
		out = append(out, Check{Name: "certificate", Detail: err.Error(), Fix: "make " + certPath + " readable by amosd"})
		return out
	}
	c, err := proof.ParseCertificate(b)
	switch {
	case err != nil:
		out = append(out, Check{Name: "certificate", Detail: certPath + ": " + err.Error(), Fix: "write a valid certificate to " + certPath})
	case c.DevicePublicKey != pub:
		out = append(out, Check{Name: "certificate", Detail: fmt.Sprintf("%s certifies key %s, not this device's key %s", certPath, c.DevicePublicKey, pub),
			Fix: "certify this device's public key (amosd identity) and replace " + certPath})
	default:
		out = append(out, Check{Name: "certificate", OK: true, Detail: fmt.Sprintf("maker %s, model %q, issued %s", c.MakerID, c.Model, time.Unix(c.IssuedAt, 0).UTC().Format("2006-01-02"))})
	}
	if c, ok := checkEpoch(dir); ok {
		out = append(out, c)
	}
	return out
}

// checkFileKey checks the file backend's key; pub is zero when there is no usable key.
func checkFileKey(cfg *config.Config) (out []Check, pub proof.PublicKey) {
	t := proof.KeyEd25519
	if cfg.Key.EffectiveType() == config.KeyTypeP256 {
		t = proof.KeyP256
	}
	keyPath := filepath.Join(cfg.KeyDir, identity.KeyFileOf(t))
	for _, other := range []proof.KeyType{proof.KeyEd25519, proof.KeyP256} {
		if p := filepath.Join(cfg.KeyDir, identity.KeyFileOf(other)); other != t && exists(p) {
			return []Check{{Name: "key", Detail: fmt.Sprintf("key.type is %s but key_dir holds the %s key %s: amosd refuses to start (it would be another device)", t, other, p),
				Fix: fmt.Sprintf("set key.type to %q, or provision the handset again", other.String())}}, pub
		}
	}
	secret, err := identity.ReadKeyOf(keyPath, t)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []Check{{Name: "key", OK: true, Detail: fmt.Sprintf("%s not generated yet: amosd generates it at first start (key.backend file, %s key)", keyPath, t)},
			noChain()}, pub
	case err != nil:
		return []Check{{Name: "key", Detail: err.Error(), Fix: fmt.Sprintf("chmod 600 %s, or provision a raw 32-byte %s key", keyPath, t)}}, pub
	}
	var signer proof.Signer
	if t == proof.KeyP256 {
		signer, err = proof.NewP256Signer(secret)
	} else {
		signer, err = proof.NewKeySigner(secret)
	}
	if err != nil {
		return []Check{{Name: "key", Detail: keyPath + ": " + err.Error(), Fix: "provision the handset again (the key is lost)"}}, pub
	}
	pub = signer.PublicKey()
	return []Check{{Name: "key", OK: true, Detail: fmt.Sprintf("device_id %s (key.backend file, %s key %s)", pub.DeviceID(), t, keyPath)}, noChain()}, pub
}

// noChain is the attestation check of a file key.
func noChain() Check {
	return Check{Name: "attestation", OK: true, Detail: "none: a file key has no attestation chain (a collector that requires attestation does not pay this device; key.backend keystore has one)"}
}

// checkKeystoreKey checks the keystore backend: com.amos.Keystore1 answers, what it is,
// the key under key.alias and its attestation chain; pub is zero when there is no key.
func checkKeystoreKey(ctx context.Context, cfg *config.Config) (out []Check, pub proof.PublicKey) {
	for _, t := range []proof.KeyType{proof.KeyEd25519, proof.KeyP256} {
		if p := filepath.Join(cfg.KeyDir, identity.KeyFileOf(t)); exists(p) {
			out = append(out, Check{Name: "key", Detail: "key.backend is keystore but key_dir holds the file key " + p + ": amosd refuses to start (it would be another device)",
				Fix: "set key.backend to \"file\", or provision the handset again (remove " + p + " and its certificate; amosd identity --maker-id ID --serial-tag HEX)"})
			return out, pub
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	o := keystore.Options{Bus: cfg.Bus, Timeout: 5 * time.Second}
	unreachable := "start the platform's keystore service, which owns " + keystore.Name + " on bus " + cfg.Bus + " (for development: amos-keystored), and let amosd call it (the bus policy)"
	c, err := keystore.Dial(context.Background(), o)
	if err != nil {
		return append(out, Check{Name: "keystore", Detail: err.Error(), Fix: unreachable}), pub
	}
	defer c.Close()
	info, err := c.Info(ctx)
	switch {
	case errors.Is(err, keystore.ErrAccessDenied):
		return append(out, Check{Name: "keystore", Detail: err.Error(), Fix: fmt.Sprintf("let amosd's uid (%d) use the keystore: the keystore's allowed uids and its bus policy", os.Getuid())}), pub
	case err != nil:
		return append(out, Check{Name: "keystore", Detail: err.Error(), Fix: unreachable}), pub
	case info.SecurityLevel == "software":
		out = append(out, Check{Name: "keystore", OK: true, Warn: true, Detail: fmt.Sprintf("%s, security level %s", info.Implementation, info.SecurityLevel),
			Fix: "a software keystore is for development only: a handset needs the OS vendor's " + keystore.Name + " on its TEE or StrongBox"})
	default:
		out = append(out, Check{Name: "keystore", OK: true, Detail: fmt.Sprintf("%s, security level %s", info.Implementation, info.SecurityLevel)})
	}
	k, err := c.GetKey(ctx, cfg.Key.Alias)
	switch {
	case errors.Is(err, keystore.ErrNoKey):
		return append(out, Check{Name: "key", Detail: fmt.Sprintf("the keystore has no key %q: amosd does not start without it", cfg.Key.Alias),
			Fix: "at the factory: amosd identity --maker-id ID --serial-tag HEX (generates the attested key), then certify its public_key (amos-collector maker certify)"}), pub
	case err != nil:
		return append(out, Check{Name: "key", Detail: err.Error(), Fix: "check the keystore service (its log)"}), pub
	}
	pub = k.PublicKey
	out = append(out, Check{Name: "key", OK: true, Detail: fmt.Sprintf("device_id %s (key.backend keystore, %s key %q)", pub.DeviceID(), pub.Type(), cfg.Key.Alias)})
	if len(k.Chain) == 0 {
		out = append(out, Check{Name: "attestation", OK: true, Warn: true, Detail: "the keystore gives no attestation chain for this key: a collector that requires attestation does not pay this device",
			Fix: "a keystore on the TEE or StrongBox attests its keys (KeyMint); ask the OS vendor"})
	} else {
		out = append(out, Check{Name: "attestation", OK: true, Detail: fmt.Sprintf("a chain of %d certificates (leaf first) attests this key; the genesis carries it", len(k.Chain))})
	}
	return out, pub
}

// exists reports whether path names a file.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// checkEpoch reads key_dir/epoch; ok is false when there is nothing to say (the file
// holds an epoch, or does not exist). A damaged file is a warning: amosd rebuilds it at
// its next start (docs/files.md, epoch). One it cannot read fails.
func checkEpoch(dir string) (c Check, ok bool) {
	_, _, err := identity.ReadEpoch(dir)
	switch {
	case err == nil:
		return Check{}, false
	case errors.Is(err, identity.ErrEpochDamaged):
		return Check{Name: "epoch", OK: true, Warn: true, Detail: err.Error(), Fix: "amosd rebuilds it at its next start (a new epoch); or restore it from a backup"}, true
	}
	return Check{Name: "epoch", Detail: err.Error(), Fix: "make " + filepath.Join(dir, identity.EpochFile) + " a file readable by amosd, or restore it from a backup"}, true
}

func checkStore(cfg *config.Config) Check {
	s, err := store.OpenReadOnly(cfg.DataDir)
	switch {
	case err == nil:
		defer s.Close()
		cnt, err := s.Counts()
		if err != nil {
			return Check{Name: "store", Detail: err.Error(), Fix: "amosd moves a bad store aside at its next start"}
		}
		return Check{Name: "store", OK: true, Detail: fmt.Sprintf("%s: %d queued, %d dead-letter, %d bytes (no daemon holds it)", s.Path(), cnt.Queued, cnt.DeadLetters, cnt.FileBytes)}
	case errors.Is(err, store.ErrInUse):
		return Check{Name: "store", OK: true, Detail: filepath.Join(cfg.DataDir, store.FileName) + " is held by the running daemon"}
	case errors.Is(err, fs.ErrNotExist):
		return Check{Name: "store", OK: true, Detail: "no store in " + cfg.DataDir + " yet: created at first start"}
	case errors.Is(err, store.ErrNewerFormat): // before ErrCorrupt: never taken for corrupt
		return Check{Name: "store", Detail: err.Error(), Fix: "a newer amosd wrote this store: install that version or a newer one; this amosd leaves the store untouched"}
	case errors.Is(err, store.ErrCorrupt):
		return Check{Name: "store", Detail: err.Error(), Fix: "nothing to do: amosd moves it aside and starts a new epoch at its next start"}
	}
	return Check{Name: "store", Detail: err.Error(), Fix: "make data_dir " + cfg.DataDir + " writable by amosd"}
}

func checkDaemon(ctx context.Context, cfg *config.Config) []Check {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := sources.Dial(ctx, cfg.Bus)
	if err != nil {
		return []Check{{Name: "bus", Detail: fmt.Sprintf("bus %s: %v", cfg.Bus, err), Fix: "start dbus-daemon, or set \"bus\" in the configuration"}}
	}
	defer conn.Close()
	out := []Check{{Name: "bus", OK: true, Detail: "connected to " + cfg.Bus}}
	owner := func(name string) string {
		var o string
		conn.BusObject().CallWithContext(ctx, sources.BusName+".GetNameOwner", 0, name).Store(&o)
		return o
	}
	if o := owner(dbusapi.Name); o == "" {
		out = append(out, Check{Name: "daemon", Detail: "nobody owns " + dbusapi.Name, Fix: "start the daemon: amosd run (Android: the amosd service in init)"})
	} else {
		out = append(out, Check{Name: "daemon", OK: true, Detail: dbusapi.Name + " owned by " + o})
	}
	return append(out, checkSources(probeSources(cfg, owner))...)
}

// sourceState is what selftest found of one listed source.
type sourceState struct {
	name      string // as in the configuration's sources
	available bool
	detail    string // what was found
	fix       string // how to make it available, when it is not
}

// probeSources looks for each listed source, in the order of docs/dbus-api.md: the
// owners of the D-Bus sources' names (owner returns "" for none) and the input devices.
func probeSources(cfg *config.Config, owner func(name string) string) []sourceState {
	var out []sourceState
	for _, s := range []struct{ source, name, fix string }{
		{config.SourceAmosPower, sources.PowerManagerName,
			"start the platform's power manager (it owns " + sources.PowerManagerName + "), or remove \"amos-power\" from sources"},
		{config.SourceLogind, sources.LogindName,
			"remove \"logind\" from sources if this device has no systemd-logind (an Android handset has none), else start it"},
	} {
		if !cfg.HasSource(s.source) {
			continue
		}
		st := sourceState{name: s.source}
		if o := owner(s.name); o == "" {
			st.detail, st.fix = "nobody owns "+s.name+" on the bus", s.fix
		} else {
			st.available, st.detail = true, s.name+" owned by "+o
		}
		out = append(out, st)
	}
	if cfg.HasSource(config.SourceEvdev) {
		m, _ := filepath.Glob(cfg.EvdevGlob)
		readable := 0
		for _, p := range m {
			// O_NONBLOCK: an open never waits (a FIFO without a writer would); an input
			// device opens the same.
			if f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
				readable++
			}
		}
		st := sourceState{name: config.SourceEvdev, available: readable > 0}
		if readable > 0 {
			st.detail = fmt.Sprintf("%d of %d devices matching %s readable", readable, len(m), cfg.EvdevGlob)
		} else {
			st.detail = fmt.Sprintf("%d devices match %s, %d readable", len(m), cfg.EvdevGlob, readable)
			st.fix = "let amosd read the input devices (group input; SELinux input_device read)"
			if len(m) == 0 {
				st.fix = "check evdev_glob (the input devices are /dev/input/event* on Linux and Android), or remove \"evdev\" from sources"
			}
		}
		out = append(out, st)
	}
	return out
}

// checkSources turns the listed sources into checks: an available source passes; an
// absent one is a warning while another listed source is available (amosd counts
// with that one), and fails when none is (amosd would count nothing by itself).
func checkSources(states []sourceState) []Check {
	var up, all []string
	for _, s := range states {
		all = append(all, s.name)
		if s.available {
			up = append(up, s.name)
		}
	}
	out := make([]Check, 0, len(states))
	for _, s := range states {
		c := Check{Name: "source " + s.name, OK: true, Detail: s.detail}
		switch {
		case s.available:
		case len(up) > 0:
			c.Warn, c.Fix = true, s.fix
			c.Detail += ": this source stays unavailable; amosd counts with " + strings.Join(up, ", ")
		default:
			c.OK, c.Fix = false, s.fix
			c.Detail += fmt.Sprintf(": none of the listed sources (%s) is available, so amosd counts only ReportActivity calls", strings.Join(all, ", "))
		}
		out = append(out, c)
	}
	return out
}

// checkDNS looks up the server's host name as the daemon does, and says with what.
func checkDNS(ctx context.Context, cfg *config.Config, res *resolve.Resolver) Check {
	u, _ := url.Parse(cfg.ServerURL)
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return Check{Name: "dns", OK: true, Detail: "server_url names an address: nothing to look up (names would go to " + res.String() + ")"}
	}
	via := res.String()
	addrs, _, err := res.LookupHost(ctx, host)
	if err == nil {
		list := make([]string, len(addrs))
		for i, a := range addrs {
			list[i] = a.String()
		}
		return Check{Name: "dns", OK: true, Detail: host + " is " + strings.Join(list, ", ") + " (" + via + ")"}
	}
	fix := "check the network and its DNS"
	switch {
	case errors.Is(err, transport.ErrResolverUnreachable):
		fix = "let amosd connect to the dnsproxyd socket: group inet in its init service, and an SELinux domain with net_domain"
	case errors.Is(err, transport.ErrNameNotFound):
		fix = "check the host name of server_url, and the network's DNS"
	case res.Source() == resolve.SourceSystem:
		fix = "set dns_servers in the configuration if this system has no working resolver"
	}
	return Check{Name: "dns", Detail: err.Error() + " (" + via + ")", Fix: fix}
}

// checkServer connects to the server as the daemon does (names resolved by res) and, for
// https, completes a TLS handshake verified against ca_file.
func checkServer(ctx context.Context, cfg *config.Config, res *resolve.Resolver) Check {
	u, _ := url.Parse(cfg.ServerURL)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443", "http": "80"}[u.Scheme])
	}
	timeout := min(time.Duration(cfg.Sync.Timeout), 10*time.Second)
	if u.Scheme == "http" {
		conn, err := res.DialContext(ctx, "tcp", host)
		if err != nil {
			return Check{Name: "server", Detail: err.Error(), Fix: "check the network and server_url"}
		}
		conn.Close()
		return Check{Name: "server", OK: true, Detail: "reached " + host + " (plain http: tests only)"}
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return Check{Name: "server", Detail: "ca_file: " + err.Error(), Fix: "install the CA bundle at " + cfg.CAFile}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return Check{Name: "server", Detail: "ca_file " + cfg.CAFile + " holds no PEM certificate", Fix: "install the right CA bundle at " + cfg.CAFile}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	raw, err := res.DialContext(ctx, "tcp", host)
	if err == nil {
		conn := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
		err = conn.HandshakeContext(ctx)
		conn.Close()
	}
	if err != nil {
		return Check{Name: "server", Detail: fmt.Sprintf("TLS handshake with %s: %v", host, err), Fix: "check the network, server_url, and that ca_file is the server's CA"}
	}
	return Check{Name: "server", OK: true, Detail: "TLS handshake with " + host + " verified against " + cfg.CAFile}
}
