package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"amos.example/amosd/collector/collectortest"
	"amos.example/amosd/collector/ledger"
	"amos.example/amosd/collector/ledger/pgledger"
	"amos.example/amosd/proof"
	"amos.example/amosd/rigs/pgtest"
	"amos.example/amosd/rigs/testenv"
)

// TestSharedPostgresLedger: four `amos-collector serve` processes on one PostgreSQL
// database. Every device uploads its month through collectors picked at random, each
// batch also sent at the same moment through a second collector (a retry that went
// elsewhere); some devices sign two different records at one seq and send them through
// two collectors at once; one collector is killed with SIGKILL while batches are on
// their way to it. Then: every chain is whole and verifies, no record was stored twice
// or lost, each fork was accepted once and kept as evidence once, and the claim pays
// every honest device exactly once.
func TestSharedPostgresLedger(t *testing.T) {
	srv := pgtest.Start(t, pgtest.Options{})
	dbURL := srv.NewDatabase(t)
	bin := testenv.BuildTagged(t, "amos.example/amosd/cmd/amos-collector", "amosfakeclock")
	today := time.Date(2027, time.March, 1, 0, 0, 0, 0, time.UTC) // February 2027: 28 days
	shift := today.Sub(time.Now().UTC().Truncate(24 * time.Hour))
	env := append(os.Environ(), "AMOS_COLLECTOR_CLOCK_SHIFT="+shift.String())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	maker := collectortest.Key(t, "shared konka")
	pki := collectortest.New(t)
	cfg := map[string]any{
		"listen": "127.0.0.1:0", "tls_cert": pki.CertFile, "tls_key": pki.KeyFile,
		"data_dir": filepath.Join(t.TempDir(), "unused"), "ledger": dbURL,
		"makers":             []testMaker{{ID: "konka", PublicKey: maker.PublicKey().String(), TokenSHA256: hash("konka shared token")}},
		"payer_token_sha256": hash("payer shared token"),
		"limits":             map[string]any{"device_batches_per_minute": 100000, "address_requests_per_second": 100000, "address_burst": 100000},
	}
	b, _ := json.Marshal(cfg)
	cfgFile := writeFile(t, "config.json", string(b))

	servers := make([]*server, 4)
	for i := range servers {
		servers[i] = startServer(t, ctx, bin, cfgFile, env)
	}
	defer func() {
		for _, s := range servers {
			s.cmd.Process.Kill()
		}
	}()
	cl := &client{t: t, shift: shift, c: &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: pki.ClientConfig()}}}
	defer cl.c.CloseIdleConnections()

	// The fleet: 24 devices, each a genesis and the 28 days of February in batches of
	// up to 5 records. Devices 0..3 also sign a second record at seq 29 (another day 28).
	const nDevices, forkers = 24, 4
	month := time.Date(2027, time.February, 1, 0, 0, 0, 0, time.UTC)
	type plan struct {
		dev     *collectortest.Device
		batches [][][]byte
		fork    []byte // the other record at seq 29, nil for an honest device
	}
	plans := make([]*plan, nDevices)
	for i := range plans {
		d := collectortest.NewDevice(t, fmt.Sprint("shared ", i))
		d.Cert = collectortest.Certify(t, maker, "konka", d.Key.PublicKey(), fmt.Sprint("shared serial ", i), month.AddDate(0, -1, 0))
		p := &plan{dev: d}
		recs := [][]byte{d.Genesis()}
		for day := 1; day <= 28; day++ {
			date := proof.NewDate(2027, time.February, day)
			if day == 28 && i < forkers {
				alt := *d
				p.fork = alt.Day(date, 3000+uint32(i), 7)
			}
			recs = append(recs, d.Day(date, 900+uint32(i)*7, 3))
		}
		for len(recs) > 0 {
			n := min(5, len(recs))
			p.batches, recs = append(p.batches, recs[:n]), recs[n:]
		}
		plans[i] = p
	}

	// The victim is killed once a quarter of the batches have been answered.
	victim := servers[3]
	var mu sync.Mutex
	answered, killed := 0, false
	total := 0
	for _, p := range plans {
		total += len(p.batches)
	}
	alive := func() []*server {
		mu.Lock()
		defer mu.Unlock()
		if killed {
			return servers[:3]
		}
		return servers
	}
	// send posts records through s; it reports whether every record is linked: each
	// answered accepted, or duplicate when it already was. It counts the accepted
	// answers of each record: never more than one, whichever collector answers.
	var acceptedMu sync.Mutex
	accepted := map[proof.Hash]int{}
	send := func(s *server, recs [][]byte) ([]string, bool) {
		v, err := cl.post(s.url, recs)
		if err != nil {
			return nil, false
		}
		ok := true
		acceptedMu.Lock()
		defer acceptedMu.Unlock()
		for j, verdict := range v {
			switch verdict {
			case "accepted":
				accepted[proof.HashRecord(recs[j])]++
			case "duplicate":
			default:
				ok = false
			}
		}
		return v, ok
	}
	forkVerdicts := make([][2]string, forkers)
	var wg sync.WaitGroup
	for i, p := range plans {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for k, batch := range p.batches {
				for attempt := 0; ; attempt++ {
					if ctx.Err() != nil || attempt > 200 {
						t.Errorf("device %d batch %d: not linked after %d attempts", i, k, attempt)
						return
					}
					ss := alive()
					a, b := ss[rng.IntN(len(ss))], ss[rng.IntN(len(ss))]
					if last := len(batch) - 1; p.fork != nil && k == len(p.batches)-1 { // seq 29 has two versions
						var ga bool
						var inner sync.WaitGroup
						inner.Go(func() { _, ga = send(a, batch[:last]) })
						inner.Go(func() { send(b, batch[:last]) })
						inner.Wait()
						if !ga {
							continue
						}
						var r1, r2 []string
						inner.Go(func() { r1, _ = send(a, batch[last:]) })
						inner.Go(func() { r2, _ = send(b, [][]byte{p.fork}) })
						inner.Wait()
						if len(r1) != 1 || len(r2) != 1 {
							continue // an answer lost to the kill: send both again
						}
						forkVerdicts[i] = [2]string{r1[0], r2[0]}
						break
					}
					var ga bool
					var inner sync.WaitGroup
					inner.Go(func() { _, ga = send(a, batch) })
					inner.Go(func() { send(b, batch) })
					inner.Wait()
					if ga {
						break
					}
				}
				mu.Lock()
				answered++
				if answered == total/4 && !killed {
					killed = true
					victim.cmd.Process.Signal(syscall.SIGKILL)
				}
				mu.Unlock()
				if t.Failed() {
					return
				}
			}
		})
	}
	wg.Wait()
	if !killed {
		t.Fatal("the victim was never killed")
	}
	if code := victim.wait(t); code != -int(syscall.SIGKILL) {
		t.Errorf("the victim exited %d, want killed by SIGKILL", code)
	}
	for h, n := range accepted {
		if n > 1 {
			t.Errorf("record %x answered accepted %d times", h[:8], n)
		}
	}
	for i, v := range forkVerdicts {
		if got := []string{v[0], v[1]}; !(got[0] == "accepted" && got[1] == "rejected chain_fork") && !(got[1] == "accepted" && got[0] == "rejected chain_fork") {
			t.Errorf("device %d: the two records at seq 10 got %q and %q, want one accepted and one chain_fork", i, v[0], v[1])
		}
	}

	// Every chain is whole and verifies, read straight from the database.
	l, err := pgledger.Open(dbURL, pgledger.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.View(func(tx ledger.Tx) error {
		devices := 0
		err := tx.Devices(func(d *ledger.Device) error {
			devices++
			heads := 0
			err := tx.Heads(d.ID, func(h *ledger.Head) error {
				heads++
				if h.Seq != 29 || h.Counts.Accepted != 28 {
					t.Errorf("device %s epoch %d: head seq %d, %d accepted; want 29 and 28", d.ID, h.Epoch, h.Seq, h.Counts.Accepted)
				}
				var prev proof.Hash
				next := uint64(1)
				err := tx.Records(d.ID, h.Epoch, 1, h.Seq, func(seq uint64, r *ledger.Record) error {
					rec, err := proof.Decode(r.Bytes)
					switch {
					case err != nil:
						return fmt.Errorf("seq %d: %w", seq, err)
					case seq != next || rec.Seq != seq || rec.PrevHash != prev:
						return fmt.Errorf("seq %d: not linked to the record before it", seq)
					case proof.VerifyEncoded(r.Bytes, d.PublicKey) != nil:
						return fmt.Errorf("seq %d: bad signature", seq)
					}
					prev, next = proof.HashRecord(r.Bytes), next+1
					return nil
				})
				if err == nil && (next != h.Seq+1 || prev != h.Hash) {
					err = fmt.Errorf("%d records stored below head seq %d, or the head's hash is not the last record's", next-1, h.Seq)
				}
				if err != nil {
					t.Errorf("device %s epoch %d: %v", d.ID, h.Epoch, err)
				}
				return nil
			})
			if heads != 1 {
				t.Errorf("device %s: %d epochs, want 1", d.ID, heads)
			}
			forked := 0
			for i := range forkers {
				if plans[i].dev.ID() == d.ID {
					forked = 1
				}
			}
			if d.ForkEvidence != uint32(forked) {
				t.Errorf("device %s: %d fork evidence, want %d", d.ID, d.ForkEvidence, forked)
			}
			return err
		})
		if devices != nDevices {
			t.Errorf("%d devices stored, want %d", devices, nDevices)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The claim, through a live collector: no sale is registered, so every device with
	// its 28 active days is unregistered, and the forked ones refused.
	status, body := cl.get(servers[rand.IntN(3)].url+"/v1/claims?month=2027-02", "payer shared token")
	want := fmt.Sprintf("2027-02 provisional konka paid 0 eligible 0 CNY 0 held 0 refused %d late 0 unregistered %d", forkers, nDevices-forkers)
	if got := claimFigures(body); status != 200 || got != want {
		t.Errorf("claims: %d %s\nwant %s", status, got, want)
	}
	if t.Failed() {
		for i, s := range servers {
			t.Logf("collector %d:\n%s", i, lastLog(s.logText(), 20))
		}
	}
}

func lastLog(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
