// Package store keeps amosd's durable state in one fsync'd bbolt file (SPEC §10): the
// chain head, the day's tally, the queue of unacknowledged records, dead-letter records,
// consent and sync state.
package store
