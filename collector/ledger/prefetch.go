package ledger

import "amos.example/amosd/proof"

// BucketKey is one key of one bucket.
type BucketKey struct {
	Bucket Bucket
	Key    []byte
}

// Prefetcher is a KV that reads many keys at once, in one round trip to its database;
// a later Get of a prefetched key is answered from what was read. Tx.Prefetch uses it
// when the KV has it; a KV in memory or on a local file needs none.
type Prefetcher interface {
	Prefetch(keys []BucketKey) error
}

// Streamer is a KV that scans faster when fn does not use the transaction: Stream is
// Scan with k and v valid only until fn returns, and fn must not call the KV (a
// database sends the whole range as one stream of rows, not in pages).
type Streamer interface {
	Stream(b Bucket, from, to []byte, fn func(k, v []byte) error) error
}

// stream is Scan, through Stream when the KV has it; fn must not use the transaction
// and must copy what it keeps of k and v.
func stream(kv KV, b Bucket, from, to []byte, fn func(k, v []byte) error) error {
	if s, ok := kv.(Streamer); ok {
		return s.Stream(b, from, to, fn)
	}
	return kv.Scan(b, from, to, fn)
}

// ChainMonth is a device's epoch and one month of its activity.
type ChainMonth struct {
	ID    proof.DeviceID
	Epoch uint32
	Month MonthKey // 0: no month
}

// Prefetch reads at once what deciding records of these device-epochs reads: the
// devices, the chain heads and the month aggregates. It is a hint: the answers of the
// transaction are the same with it or without it.
func (t ledgerTx) Prefetch(chains []ChainMonth) error {
	p, ok := t.kv.(Prefetcher)
	if !ok || len(chains) == 0 {
		return nil
	}
	keys := make([]BucketKey, 0, 3*len(chains))
	seen := map[string]bool{}
	add := func(b Bucket, k []byte) {
		if s := string(rune(b)) + string(k); !seen[s] {
			seen[s] = true
			keys = append(keys, BucketKey{b, k})
		}
	}
	for _, c := range chains {
		add(bucketDevices, c.ID[:])
		add(bucketChains, headKey(c.ID, c.Epoch))
		if c.Month != 0 {
			add(bucketDays, daysKey(c.Month, c.ID, c.Epoch))
		}
	}
	return p.Prefetch(keys)
}

// Forker is a KV whose snapshot other readers can share. Fork returns a read-only KV
// that sees exactly what this one sees, to be used from another goroutine at the same
// time as this one (on a database, another connection), and the function that ends it,
// to be called before this transaction ends. It returns a nil KV when it cannot: the
// database cannot share a snapshot, or this transaction may write.
type Forker interface {
	Fork() (KV, func(), error)
}

// Fork implements Tx.Fork.
func (t ledgerTx) Fork() (Tx, func(), error) {
	f, ok := t.kv.(Forker)
	if !ok {
		return nil, nil, nil
	}
	kv, done, err := f.Fork()
	if err != nil || kv == nil {
		return nil, nil, err
	}
	return ledgerTx{kv}, done, nil
}
