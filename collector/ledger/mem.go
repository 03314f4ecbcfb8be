package ledger

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
)

// Mem is a Ledger in memory, with the same values and transaction semantics as Bolt
// but no durability: for offline verification and tests.
type Mem struct {
	mu      sync.RWMutex
	buckets [numBuckets]map[string][]byte
	closed  bool
}

var _ Ledger = (*Mem)(nil)

// NewMem returns an empty Mem.
func NewMem() *Mem {
	m := &Mem{}
	for i := range m.buckets {
		m.buckets[i] = map[string][]byte{}
	}
	return m
}

// View implements Ledger.
func (m *Mem) View(fn func(Tx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrClosed
	}
	return fn(NewTx(&memKV{m: m}))
}

// Update implements Ledger: on an error or a panic of fn every write is undone.
func (m *Mem) Update(fn func(Tx) error) (err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	kv := &memKV{m: m, writable: true}
	done := false
	defer func() {
		if !done || err != nil {
			kv.rollback()
		}
	}()
	err = fn(NewTx(kv))
	done = true
	return err
}

// Close implements Ledger.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

type undo struct {
	b       Bucket
	key     string
	old     []byte
	existed bool
}

type memKV struct {
	m        *Mem
	writable bool
	undo     []undo
}

func (k *memKV) Get(b Bucket, key []byte) ([]byte, error) { return k.m.buckets[b][string(key)], nil }

func (k *memKV) Put(b Bucket, key, value []byte) error {
	if !k.writable {
		return fmt.Errorf("collector: put %s: %w", b, ErrReadOnly)
	}
	s := string(key)
	old, existed := k.m.buckets[b][s]
	k.undo = append(k.undo, undo{b, s, old, existed})
	k.m.buckets[b][s] = bytes.Clone(value)
	return nil
}

func (k *memKV) rollback() {
	for i := len(k.undo) - 1; i >= 0; i-- {
		u := k.undo[i]
		if u.existed {
			k.m.buckets[u.b][u.key] = u.old
		} else {
			delete(k.m.buckets[u.b], u.key)
		}
	}
	k.undo = nil
}

func (k *memKV) Scan(b Bucket, from, to []byte, fn func(k, v []byte) error) error {
	var keys []string
	for key := range k.m.buckets[b] {
		if (from == nil || key >= string(from)) && (to == nil || key < string(to)) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	for _, key := range keys {
		v, ok := k.m.buckets[b][key]
		if !ok {
			continue
		}
		if err := fn([]byte(key), v); err != nil {
			return err
		}
	}
	return nil
}

func (k *memKV) First(b Bucket, from, to []byte) ([]byte, error) {
	var best string
	found := false
	for key := range k.m.buckets[b] {
		if key >= string(from) && (to == nil || key < string(to)) && (!found || key < best) {
			best, found = key, true
		}
	}
	if !found {
		return nil, nil
	}
	return []byte(best), nil
}
