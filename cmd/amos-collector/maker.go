package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"unicode/utf8"

	"amos.example/amosd/proof"
)

func runMaker(env *cliEnv, args []string) int {
	if len(args) == 0 {
		return usageError(env.stderr, "maker: want keygen or certify")
	}
	switch args[0] {
	case "keygen":
		return runKeygen(env, args[1:])
	case "certify":
		return runCertify(env, args[1:])
	}
	return usageError(env.stderr, "maker: unknown command %q, want keygen or certify", args[0])
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: refusing to overwrite it", path)
		}
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

func runKeygen(env *cliEnv, args []string) int {
	fset := flag.NewFlagSet("maker keygen", flag.ContinueOnError)
	out := fset.String("out", "", "prefix of the files PREFIX.key and PREFIX.pub")
	if _, code := parseFlags(env, fset, args, 0); code != exitOK {
		return code
	}
	if *out == "" {
		return usageError(env.stderr, "maker keygen: --out PREFIX is required")
	}
	seed := make([]byte, proof.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return failed(env.stderr, "maker keygen: %v", err)
	}
	k, err := proof.NewKeySigner(seed)
	if err != nil {
		return failed(env.stderr, "maker keygen: %v", err)
	}
	keyFile, pubFile := *out+".key", *out+".pub"
	if _, err := os.Lstat(pubFile); err == nil {
		return failed(env.stderr, "maker keygen: %s exists: refusing to overwrite it", pubFile)
	}
	if err := writeNew(keyFile, seed, 0o600); err != nil {
		return failed(env.stderr, "maker keygen: %v", err)
	}
	if err := writeNew(pubFile, []byte(k.PublicKey().String()+"\n"), 0o644); err != nil {
		os.Remove(keyFile)
		return failed(env.stderr, "maker keygen: %v", err)
	}
	fmt.Fprintf(env.stdout, "maker public key %s\nwrote %s (secret seed, mode 0600) and %s\n", k.PublicKey(), keyFile, pubFile)
	return exitOK
}

func runCertify(env *cliEnv, args []string) int {
	fset := flag.NewFlagSet("maker certify", flag.ContinueOnError)
	keyFile := fset.String("key", "", "the maker's key file (32-byte seed)")
	makerID := fset.String("maker-id", "", "maker_id, [a-z0-9-]{1,32}")
	model := fset.String("model", "", "model name, UTF-8, at most 64 bytes")
	serialHex := fset.String("serial-tag", "", "serial_tag, 64 hex digits")
	devHex := fset.String("device-pub", "", "the device's public key: 64 hex digits (Ed25519) or 130 (P-256, uncompressed)")
	out := fset.String("out", "", "the certificate file to write")
	if _, code := parseFlags(env, fset, args, 0); code != exitOK {
		return code
	}
	for _, f := range []struct{ name, val string }{{"key", *keyFile}, {"maker-id", *makerID},
		{"serial-tag", *serialHex}, {"device-pub", *devHex}, {"out", *out}} {
		if f.val == "" {
			return usageError(env.stderr, "maker certify: --%s is required", f.name)
		}
	}
	if !proof.ValidMakerID(*makerID) {
		return usageError(env.stderr, "maker certify: --maker-id %q is not [a-z0-9-]{1,32}", *makerID)
	}
	if len(*model) > proof.MaxModelLen || !utf8.ValidString(*model) {
		return usageError(env.stderr, "maker certify: --model %q is not UTF-8 of at most %d bytes", *model, proof.MaxModelLen)
	}
	var serial [32]byte
	if b, err := hex.DecodeString(*serialHex); err != nil || len(b) != len(serial) {
		return usageError(env.stderr, "maker certify: --serial-tag %q is not 64 hex digits", *serialHex)
	} else {
		copy(serial[:], b)
	}
	devPub, err := proof.ParsePublicKey(*devHex)
	if err != nil {
		return usageError(env.stderr, "maker certify: --device-pub %q is neither 64 hex digits (Ed25519) nor 130 (an uncompressed P-256 point on the curve)", *devHex)
	}
	seed, err := os.ReadFile(*keyFile)
	if err != nil {
		return failed(env.stderr, "maker certify: %v", err)
	}
	maker, err := proof.NewKeySigner(seed)
	if err != nil {
		return failed(env.stderr, "maker certify: key file %s: %d bytes, want a %d-byte Ed25519 seed", *keyFile, len(seed), proof.SeedSize)
	}
	cert := &proof.Certificate{DevicePublicKey: devPub, SerialTag: serial, MakerID: *makerID, Model: *model, IssuedAt: env.now().Unix()}
	b, err := cert.Sign(maker)
	if err != nil {
		return failed(env.stderr, "maker certify: %v", err)
	}
	if err := writeNew(*out, b, 0o644); err != nil {
		return failed(env.stderr, "maker certify: %v", err)
	}
	fmt.Fprintf(env.stdout, "certified device %s for maker %s (key %s), serial_tag %x; wrote %s (%d bytes)\n",
		devPub.DeviceID(), *makerID, maker.PublicKey(), serial, *out, len(b))
	return exitOK
}
