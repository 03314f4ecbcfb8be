package fleetsim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"amos.example/amosd/proof"
	"amos.example/amosd/store"
	"amos.example/amosd/transport"
)

// Device is one simulated handset on the real code paths: its records are signed and
// chained by proof, queued in a real bbolt store (store.Store) or in memory, and
// uploaded by the real transport.Client over TLS, the way agent/sync.go does it.
type Device struct {
	Index  int
	Key    *proof.KeySigner
	Cert   *proof.Certificate // nil: an unattributed handset
	Offset int                // utc_offset_minutes of the reporting zone

	epoch  uint32
	seq    uint64
	prev   proof.Hash
	bootID [16]byte
	q      queue
	client *transport.Client
}

// DeviceKey derives the Ed25519 key of device index for a seed.
func DeviceKey(seed uint64, index int) (*proof.KeySigner, error) {
	s := sha256.Sum256(fmt.Appendf(nil, "fleetsim device %d %d", seed, index))
	return proof.NewKeySigner(s[:])
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
func NewDevice(index int, key *proof.KeySigner, cert *proof.Certificate, offset int) *Device {
	d := &Device{Index: index, Key: key, Cert: cert, Offset: offset, q: &memQueue{}}
	id := key.PublicKey().DeviceID()
	copy(d.bootID[:], id[16:])
	return d
}

// ID returns the device_id.
func (d *Device) ID() proof.DeviceID { return d.Key.PublicKey().DeviceID() }

// UseStore replaces the in-memory queue by a real amosd store (bbolt, fsync on every
// commit) in dir. Call it before the first record.
func (d *Device) UseStore(dir string) error {
	st, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		return err
	}
	d.q = &storeQueue{st: st}
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
// epoch, 2 afterwards) carrying the device's certificate.
func (d *Device) Genesis(at time.Time) ([]byte, error) {
	d.epoch++
	reason := proof.ReasonFirstStart
	if d.epoch > 1 {
		reason = proof.ReasonStoreRecreated
	}
	d.seq, d.prev = 0, proof.Hash{}
	return d.mint(&proof.Record{MintedAt: at.Unix(), UptimeMS: 20_000,
		Body: &proof.Genesis{PublicKey: d.Key.PublicKey(), Cert: d.Cert, Reason: reason}})
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

// Sync uploads the queue as agent/sync.go's attempt does: the oldest batch of at most
// 256 records, its answer settled in the queue, again until the queue is empty or a
// batch was short. A Retry-After (429, 503) is honoured in real time; any other
// failure, or a record the server keeps (chain_gap), ends it with an error: a
// simulated fleet on a healthy collector expects none.
func (d *Device) Sync(ctx context.Context) (SyncStats, error) {
	st := SyncStats{Syncs: 1}
	for {
		recs, err := d.q.peek(proof.MaxBatchRecords)
		if err != nil || len(recs) == 0 {
			return st, err
		}
		res, uerr := d.client.Upload(ctx, recs)
		st.Requests += res.Requests
		st.BytesSent += res.BytesSent
		st.BytesReceived += res.BytesReceived
		st.WireBytes += res.WireBytes
		if err := d.q.settle(res); err != nil {
			return st, err
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
		case errors.As(uerr, &ra) && st.ServerWaits < maxServerWaits:
			st.ServerWaits++
			st.ServerWait += ra.After
			t := time.NewTimer(ra.After)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return st, ctx.Err()
			}
			continue
		case uerr != nil:
			return st, fmt.Errorf("fleetsim: device %d: %w", d.Index, uerr)
		case len(res.Kept) > 0:
			return st, fmt.Errorf("fleetsim: device %d: the server kept %d records (chain_gap)", d.Index, len(res.Kept))
		}
		if len(recs) < proof.MaxBatchRecords {
			return st, nil
		}
	}
}

// queue is where minted records wait for the server.
type queue interface {
	mint(rec []byte) error
	peek(n int) ([][]byte, error) // oldest first
	settle(res *transport.Result) error
	len() int
	close() error
}

// memQueue keeps records in memory.
type memQueue struct{ recs [][]byte }

func (q *memQueue) mint(rec []byte) error { q.recs = append(q.recs, rec); return nil }

func (q *memQueue) peek(n int) ([][]byte, error) {
	return q.recs[:min(n, len(q.recs))], nil
}

func (q *memQueue) settle(res *transport.Result) error {
	done := map[transport.RecordID]bool{}
	for _, id := range res.Acked {
		done[id] = true
	}
	for _, r := range res.Dead {
		done[r.ID] = true
	}
	kept := q.recs[:0]
	for _, rec := range q.recs {
		r, err := proof.Decode(rec)
		if err != nil {
			return err
		}
		if !done[transport.RecordID{Epoch: r.Epoch, Seq: r.Seq}] {
			kept = append(kept, rec)
		}
	}
	clear(q.recs[len(kept):])
	q.recs = kept
	return nil
}

func (q *memQueue) len() int     { return len(q.recs) }
func (q *memQueue) close() error { return nil }

// storeQueue is amosd's own store.
type storeQueue struct{ st *store.Store }

func (q *storeQueue) mint(rec []byte) error {
	_, err := q.st.Mint(rec, nil)
	return err
}

func (q *storeQueue) peek(n int) ([][]byte, error) {
	items, err := q.st.Peek(n, proof.MaxBatchBytes)
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it.Record
	}
	return out, err
}

func (q *storeQueue) settle(res *transport.Result) error {
	var s store.Settlement
	for _, id := range res.Acked {
		s.Acked = append(s.Acked, store.RecordID{Epoch: id.Epoch, Seq: id.Seq})
	}
	for _, r := range res.Dead {
		s.Dead = append(s.Dead, store.Refusal{ID: store.RecordID{Epoch: r.ID.Epoch, Seq: r.ID.Seq}, Reason: r.Reason})
	}
	if len(s.Acked) == 0 && len(s.Dead) == 0 {
		return nil
	}
	_, err := q.st.Settle(s)
	return err
}

func (q *storeQueue) len() int {
	c, err := q.st.Counts()
	if err != nil {
		return -1
	}
	return c.Queued
}

func (q *storeQueue) close() error { return q.st.Close() }
