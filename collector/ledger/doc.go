// Package ledger keeps the collector's durable state (devices, chain heads, linked
// records and fork evidence) behind one transactional interface, with a bbolt and an
// in-memory implementation.
package ledger
