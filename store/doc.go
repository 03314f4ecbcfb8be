// Package store keeps amosd's durable state in one fsync'd bbolt file (docs/store-and-epochs.md): the
// chain head, the day's tally, the queue of unacknowledged records, dead-letter records,
// consent and sync state.
package store
