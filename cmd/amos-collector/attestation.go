package main

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"amos.example/amosd/collector/attest"
)

// hexList is a repeatable flag of hex values.
type hexList [][]byte

func (h *hexList) String() string { return fmt.Sprint(len(*h)) }

func (h *hexList) Set(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return fmt.Errorf("%q is not hex", s)
	}
	*h = append(*h, b)
	return nil
}

func runAttestation(env *cliEnv, args []string) int {
	if len(args) == 0 {
		return usageError(env.stderr, "attestation: want verify")
	}
	if args[0] == "verify" {
		return runAttestationVerify(env, args[1:])
	}
	return usageError(env.stderr, "attestation: unknown command %q, want verify", args[0])
}

// runAttestationVerify applies collector/attest's rules to a chain file and prints the
// verdict as JSON: exit 0 accepted, 1 refused, 2 usage (docs/attestation.md). --roots
// REPLACES the shipped Google roots; without --boot-key the boot key is reported, not
// checked; without --status-list revocation is not checked.
func runAttestationVerify(env *cliEnv, args []string) int {
	const cmd = "attestation verify"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	chainFile := fs.String("chain", "", "the chain, PEM certificates leaf first (required)")
	at := fs.String("at", "", "check validity at this RFC 3339 time (default: now)")
	challenge := fs.String("challenge", "", "the expected attestationChallenge, as text")
	challengeHex := fs.String("challenge-hex", "", "the expected attestationChallenge, as hex")
	statusFile := fs.String("status-list", "", "a revocation status list file (Google's JSON format)")
	rootsFile := fs.String("roots", "", "PEM roots that REPLACE the shipped Google roots")
	keyHex := fs.String("key", "", "the expected attested key: 65-byte uncompressed P-256 or 32-byte Ed25519, hex")
	minPatch := fs.String("min-patch", "", "the minimum osPatchLevel, YYYYMM")
	var bootKeys hexList
	fs.Var(&bootKeys, "boot-key", "an approved verifiedBootKey, hex (repeatable)")
	if _, code := parseFlags(env, fs, args, 0); code != exitOK {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	p := attest.Policy{At: env.now(), BootKeys: bootKeys}
	if *chainFile == "" {
		return usageError(env.stderr, "%s: --chain FILE is required", cmd)
	}
	data, err := os.ReadFile(*chainFile)
	if err != nil {
		return usageError(env.stderr, "%s: --chain: %v", cmd, err)
	}
	chain, err := attest.ParseChainPEM(data)
	if err != nil {
		return usageError(env.stderr, "%s: --chain %s: %v", cmd, *chainFile, err)
	}
	if set["at"] {
		if p.At, err = time.Parse(time.RFC3339, *at); err != nil {
			return usageError(env.stderr, "%s: --at %q is not an RFC 3339 time", cmd, *at)
		}
	}
	switch {
	case set["challenge"] && set["challenge-hex"]:
		return usageError(env.stderr, "%s: give --challenge or --challenge-hex, not both", cmd)
	case set["challenge"]:
		p.Challenge = []byte(*challenge)
	case set["challenge-hex"]:
		if p.Challenge, err = hex.DecodeString(*challengeHex); err != nil {
			return usageError(env.stderr, "%s: --challenge-hex %q is not hex", cmd, *challengeHex)
		}
	}
	if set["key"] {
		k, err := hex.DecodeString(*keyHex)
		if err != nil {
			return usageError(env.stderr, "%s: --key %q is not hex", cmd, *keyHex)
		}
		p.ExpectedKey = k
	}
	if set["min-patch"] {
		n, err := strconv.Atoi(*minPatch)
		if err != nil || len(*minPatch) != 6 || n%100 < 1 || n%100 > 12 {
			return usageError(env.stderr, "%s: --min-patch %q is not YYYYMM", cmd, *minPatch)
		}
		p.MinPatchLevel = n
	}
	if set["status-list"] {
		data, err := os.ReadFile(*statusFile)
		if err != nil {
			return usageError(env.stderr, "%s: --status-list: %v", cmd, err)
		}
		if p.Status, err = attest.ParseStatusList(data); err != nil {
			return usageError(env.stderr, "%s: --status-list %s: %v", cmd, *statusFile, err)
		}
	}
	if set["roots"] {
		data, err := os.ReadFile(*rootsFile)
		if err != nil {
			return usageError(env.stderr, "%s: --roots: %v", cmd, err)
		}
		if p.Roots, err = attest.LoadRoots(data); err != nil {
			return usageError(env.stderr, "%s: --roots %s: %v", cmd, *rootsFile, err)
		}
	}
	r := attest.Verify(chain, p)
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return failed(env.stderr, "%s: %v", cmd, err)
	}
	fmt.Fprintf(env.stdout, "%s\n", out)
	if !r.Accepted {
		fmt.Fprintf(env.stderr, "amos-collector: %s: %s refused: %s: %s\n", cmd, *chainFile, r.Reason, strings.TrimSpace(r.Detail))
		return exitFailed
	}
	return exitOK
}
