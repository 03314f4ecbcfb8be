package fleetsim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"amos.example/amosd/agent/config"
	"amos.example/amosd/proof"
	"amos.example/amosd/store"
	"amos.example/amosd/transport"
	"amos.example/amosd/upload"
)

// Device is one simulated handset on the real code paths: its records are signed and
// chained by proof, queued in a real bbolt store (store.Store) or in memory, and
// uploaded by the real transport.Client over TLS through the daemon's own upload step
// (upload.Engine).
type Device struct {
	Index  int
	Key    proof.Signer       // Ed25519 or P-256
	Cert   *proof.Certificate // nil: an unattributed handset
	Chain  [][]byte           // the key's attestation chain (DER, leaf first) its genesis carries; nil: none
	Offset int                // utc_offset_minutes of the reporting zone

	epoch  uint32
	seq    uint64
	prev   proof.Hash
	bootID [16]byte
	q      queue
	client *transport.Client
	up     *upload.Engine // made by Connect, over q: the daemon's upload step
}

// DeviceKey derives the Ed25519 key of device index for a seed.
func DeviceKey(seed uint64, index int) (*proof.KeySigner, error) {
	s := sha256.Sum256(fmt.Appendf(nil, "fleetsim device %d %d", seed, index))
	return proof.NewKeySigner(s[:])
}

// DeviceP256Key derives the ECDSA P-256 key of device index for a seed (a key
// distinct from DeviceKey's).
func DeviceP256Key(seed uint64, index int) (*proof.P256Signer, error) {
	s := sha256.Sum256(fmt.Appendf(nil, "fleetsim p256 device %d %d", seed, index))
	for {
		k, err := proof.NewP256Signer(s[:])
		if !errors.Is(err, proof.ErrRange) {
			return k, err
		}
		s = sha256.Sum256(s[:]) // a scalar not below the group order (p < 2^-32)
	}
}

// SerialTag derives a factory serial_tag (docs/protocol.md recommends an HMAC of the IMEI).
func SerialTag(seed uint64, label string) [32]byte {
	return sha256.Sum256(fmt.Appendf(nil, "fleetsim serial %d %s", seed, label))
}

// Certify signs the maker certificate of key for serial, issued at issued.
func Certify(m Maker, key proof.PublicKey, serial [32]byte, model string, issued time.Time) (*proof.Certificate, error) {
	c := &proof.Certificate{DevicePublicKey: key, SerialTag: serial, MakerID: m.ID, Model: model, IssuedAt: issued.Unix()}
	if _, err := c.Sign(m.Key); err != nil {
		return nil, err
	}
	return c, nil
}

// NewDevice returns a handset with an in-memory queue, not connected yet.
func NewDevice(index int, key proof.Signer, cert *proof.Certificate, offset int) *Device {
	d := &Device{Index: index, Key: key, Cert: cert, Offset: offset, q: &memQueue{}}
	id := key.PublicKey().DeviceID()
	copy(d.bootID[:], id[16:])
	return d
}

// ID returns the device_id.
func (d *Device) ID() proof.DeviceID { return d.Key.PublicKey().DeviceID() }

// UseStore replaces the in-memory queue by a real amosd store (bbolt, fsync on every
// commit) in dir. Call it before Connect and the first record.
func (d *Device) UseStore(dir string) error {
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		return err
	}
	d.q = storeQueue{st}
	return nil
}

// Connect makes the device's transport.Client for srv, configured as amosd's is.
func (d *Device) Connect(srv *Server) error {
	c, err := transport.New(transport.Config{ServerURL: srv.URL, CAFile: srv.CAFile, Timeout: 30 * time.Second,
		BatchRecords: proof.MaxBatchRecords, UserAgent: "amosd/fleetsim"})
	if err != nil {
		return err
	}
	d.client = c
	sync := config.Default().Sync
	d.up = upload.New(upload.Options{Queue: d.q, Client: c, Clock: deviceClock{boot: time.Now()},
		Backoff:      transport.NewBackoff(time.Duration(sync.InitialBackoff), time.Duration(sync.MaxBackoff)),
		BatchRecords: proof.MaxBatchRecords, Timeout: 30 * time.Second, BootID: d.bootID})
	return nil
}

// Close releases the store and the connections.
func (d *Device) Close() error {
	if d.client != nil {
		d.client.CloseIdleConnections()
	}
	return d.q.close()
}

// Queued returns the number of records waiting for the server.
func (d *Device) Queued() int { return d.q.len() }

// Genesis starts the next epoch with a genesis minted at at (reason 1 for the first
// epoch, 2 afterwards) carrying the device's certificate and attestation chain.
func (d *Device) Genesis(at time.Time) ([]byte, error) {
	d.epoch++
	reason := proof.ReasonFirstStart
	if d.epoch > 1 {
		reason = proof.ReasonStoreRecreated
	}
	d.seq, d.prev = 0, proof.Hash{}
	return d.mint(&proof.Record{MintedAt: at.Unix(), UptimeMS: 20_000,
		Body: &proof.Genesis{PublicKey: d.Key.PublicKey(), Cert: d.Cert, Attestation: d.Chain, Reason: reason}})
}

// Day mints the activity record of a.Date at at (normally just after its local
// midnight), with a.UTCOffsetMinutes set to the device's zone.
func (d *Device) Day(at time.Time, a proof.ActivityDay, flags proof.Flags) ([]byte, error) {
	a.UTCOffsetMinutes = int16(d.Offset)
	return d.mint(&proof.Record{Flags: flags, MintedAt: at.Unix(), UptimeMS: 20_000 + d.seq*86_400_000, Body: &a})
}

func (d *Device) mint(r *proof.Record) ([]byte, error) {
	if d.epoch == 0 {
		return nil, errors.New("fleetsim: an activity record before the genesis")
	}
	r.DeviceID, r.Epoch, r.Seq, r.PrevHash, r.BootID = d.ID(), d.epoch, d.seq+1, d.prev, d.bootID
	raw, err := r.Sign(d.Key)
	if err != nil {
		return nil, fmt.Errorf("fleetsim: device %d: %w", d.Index, err)
	}
	if err := d.q.mint(raw); err != nil {
		return nil, fmt.Errorf("fleetsim: device %d: %w", d.Index, err)
	}
	d.seq, d.prev = r.Seq, proof.HashRecord(raw)
	return raw, nil
}

// SyncStats adds up what uploads cost and settled.
type SyncStats struct {
	Syncs, Requests          int
	Acked, Dead              int
	BytesSent, BytesReceived int64
	WireBytes                int64
	ServerWaits              int // 429 or 503 answers whose Retry-After was honoured
	ServerWait               time.Duration
	DeadReasons              map[string]int
}

// Add adds o to s.
func (s *SyncStats) Add(o SyncStats) {
	s.Syncs += o.Syncs
	s.Requests += o.Requests
	s.Acked += o.Acked
	s.Dead += o.Dead
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.WireBytes += o.WireBytes
	s.ServerWaits += o.ServerWaits
	s.ServerWait += o.ServerWait
	for k, v := range o.DeadReasons {
		if s.DeadReasons == nil {
			s.DeadReasons = map[string]int{}
		}
		s.DeadReasons[k] += v
	}
}

// maxServerWaits bounds how often one Sync honours a Retry-After before giving up.
const maxServerWaits = 20

// Sync uploads the queue with the daemon's own upload step (upload.Engine, as
// agent/sync.go's attempt runs it): the oldest batch, its answer settled in the queue
// with the sync state, again until the queue is empty or a batch was short. A
// Retry-After (429, 503) is waited out in real time, as long as the engine says (the
// server's wait and the device's jitter); any other failure, or a record the server
// keeps (chain_gap), ends it with an error: a simulated fleet on a healthy collector
// expects none.
func (d *Device) Sync(ctx context.Context) (SyncStats, error) {
	st := SyncStats{Syncs: 1}
	for {
		step := d.up.Step(ctx)
		if step.Empty {
			return st, nil
		}
		res := step.Result
		if res == nil {
			return st, fmt.Errorf("fleetsim: device %d: %w", d.Index, step.StoreErr)
		}
		st.Requests += res.Requests
		st.BytesSent += res.BytesSent
		st.BytesReceived += res.BytesReceived
		st.WireBytes += res.WireBytes
		if step.StoreErr != nil {
			return st, fmt.Errorf("fleetsim: device %d: %w", d.Index, step.StoreErr)
		}
		st.Acked += len(res.Acked)
		st.Dead += len(res.Dead)
		for _, r := range res.Dead {
			if st.DeadReasons == nil {
				st.DeadReasons = map[string]int{}
			}
			st.DeadReasons[r.Reason]++
		}
		var ra *transport.RetryAfterError
		switch {
		case errors.As(step.UploadErr, &ra) && st.ServerWaits < maxServerWaits:
			st.ServerWaits++
			st.ServerWait += step.Wait
			t := time.NewTimer(step.Wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return st, ctx.Err()
			}
			continue
		case step.UploadErr != nil:
			return st, fmt.Errorf("fleetsim: device %d: %w", d.Index, step.UploadErr)
		case len(res.Kept) > 0:
			return st, fmt.Errorf("fleetsim: device %d: the server kept %d records (chain_gap)", d.Index, len(res.Kept))
		}
		if !step.Full {
			return st, nil
		}
	}
}

// queue is where minted records wait for the server: upload.Queue, and what the
// simulation needs besides.
type queue interface {
	upload.Queue
	mint(rec []byte) error
	len() int
	close() error
}

// memQueue keeps records in memory, with the store's semantics.
type memQueue struct{ items []store.Item }

func (q *memQueue) mint(rec []byte) error {
	r, err := proof.Decode(rec)
	if err != nil {
		return err
	}
	q.items = append(q.items, store.Item{Key: uint64(len(q.items)), ID: store.RecordID{Epoch: r.Epoch, Seq: r.Seq}, Record: rec})
	return nil
}

// Peek is store.Store.Peek: at most maxRecords and maxBytes as a wire batch, at
// least one record when any is queued.
func (q *memQueue) Peek(maxRecords, maxBytes int) ([]store.Item, error) {
	size, n := 0, 0
	for _, it := range q.items {
		if n >= maxRecords || (n > 0 && size+2+len(it.Record) > maxBytes) {
			break
		}
		size += 2 + len(it.Record)
		n++
	}
	return q.items[:n:n], nil
}

// Settle removes acknowledged and refused records (the simulation keeps no
// dead-letter) and counts them.
func (q *memQueue) Settle(st store.Settlement) (store.SettleResult, error) {
	acked, dead := map[store.RecordID]bool{}, map[store.RecordID]bool{}
	for _, id := range st.Acked {
		acked[id] = true
	}
	for _, r := range st.Dead {
		dead[r.ID] = true
	}
	var res store.SettleResult
	kept := q.items[:0]
	for _, it := range q.items {
		switch {
		case acked[it.ID]:
			res.Acked++
		case dead[it.ID]:
			res.Dead++
		default:
			kept = append(kept, it)
		}
	}
	clear(q.items[len(kept):])
	q.items = kept
	return res, nil
}

func (q *memQueue) len() int     { return len(q.items) }
func (q *memQueue) close() error { return nil }

// storeQueue is amosd's own store.
type storeQueue struct{ *store.Store }

func (q storeQueue) mint(rec []byte) error {
	_, err := q.Mint(rec, nil)
	return err
}

func (q storeQueue) len() int {
	c, err := q.Counts()
	if err != nil {
		return -1
	}
	return c.Queued
}

func (q storeQueue) close() error { return q.Close() }

// deviceClock is a simulated handset's clock: the machine's wall clock, and the time
// since the device was made as its CLOCK_BOOTTIME.
type deviceClock struct{ boot time.Time }

func (c deviceClock) Now() time.Time          { return time.Now() }
func (c deviceClock) Boottime() time.Duration { return time.Since(c.boot) }
