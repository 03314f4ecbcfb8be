// Package collector is the reference cloud side of amosd: it verifies every uploaded
// record, keeps every device's chains in a durable ledger, and computes each maker's
// monthly claim (docs/protocol.md, the server side; docs/eligibility.md, the claim rules).
//
// # Ingest
//
// Collector.Ingest takes the records of one batch and answers one Result per record, in
// request order. Decoding, signature and certificate checks run first, outside any
// ledger transaction and in parallel across cores; the chain decisions then run in
// request order inside ONE ledger write transaction (one fsync per batch), so that the
// records of a batch may build on each other (a genesis, then days of the same device).
// Each record gets the first verdict that applies:
//
//   - bad_format (rejected): proof.Decode refuses the bytes (bad_cert instead when the
//     cause is the genesis's certificate: malformed, or certifying another key); or an
//     activity record in the right place of its chain whose date is not after the
//     chain's last date.
//   - bad_signature (rejected): the device key is known (the genesis in the batch, or
//     the ledger) and the signature does not verify.
//   - unknown_device (rejected): an activity record of a device_id whose genesis was
//     never linked (no epoch of that key is known).
//   - duplicate: the identical bytes are stored at (device, epoch, seq) with an
//     accepted verdict. Identical bytes stored with a rejected verdict (see "links"
//     below) get that same rejected verdict again: verdicts are deterministic.
//   - chain_fork (rejected): different bytes at a stored (device, epoch, seq), or a
//     record at head+1 whose prev_hash is not the head's hash. Both prove that the
//     device key signed two histories (a cloned key, a store rolled back): the device
//     is flagged, the evidence kept, and it is never eligible again.
//   - chain_gap (retry): the device is known but this epoch's genesis is not (it may
//     still be in the device's queue), or seq is beyond head+1.
//   - uncertified_limit (retry): a genesis of a new device that no registered maker
//     certified (no certificate, an unknown maker, a certificate its maker did not
//     sign) while the budget of such devices (Options.UncertifiedDevicesPerHour, a
//     token bucket on the collector's clock) is spent; and that device's later records
//     in the batch (instead of unknown_device). Nothing of them is stored; the device
//     sends them again later.
//   - unknown_maker (rejected): a genesis whose certificate names a maker_id that the
//     registry does not have.
//   - bad_cert (rejected): a genesis whose certificate is not signed by its maker's
//     registered key, or that attributes the device key to another maker or
//     serial_tag than the certificate first credited to it.
//   - future_date (rejected): an activity date after the server's current date in the
//     record's own utc_offset_minutes.
//   - stale (rejected): an activity date more than 13 months before the server's date
//     in that zone.
//   - implausible_mint (rejected): a minted_at no daemon writes (docs/protocol.md
//     10.6); a genesis certificate issued in the future is bad_cert.
//   - late (rejected): an activity record of a month that had closed when it arrived.
//   - accepted: stored. A genesis without certificate is accepted and leaves the
//     device unattributed: recorded, never paid.
//
// # Links
//
// A record that is authentic (its signature verifies) and in place (a new epoch's
// genesis, or seq = head+1 with prev_hash = head hash and a date after the last one) is
// always stored as the next link of its chain, even when its verdict is rejected for
// its content (bad_cert, unknown_maker, future_date, stale, implausible_mint, late):
// the device moves it to its dead-letter bucket and never re-sends it, and without the
// link every later record of the epoch would wait forever on chain_gap. Only accepted activity records count as
// days. So every stored chain is exactly a chain that proof.VerifyChain accepts.
//
// # Claims
//
// Claims are computed by package collector/claim (docs/eligibility.md): every device key
// with an accepted day in the month gets an outcome (paid, held, refused, unregistered,
// ineligible) from its active days, the payer's sales registry (ImportSales), the
// fleet anomaly signals of package collector/signals and the payer's decisions
// (Decide). A month closes at its scheduled moment: its claim is then computed once
// and stored, and activity records of it that arrive later are linked as late.
//
// # Storage
//
// A ledger.Ledger (package collector/ledger) holds the state: ledger.Bolt keeps it in
// one bbolt file, data_dir/collector.db (fsync'd on every commit, a lock timeout,
// Tx.Check at open, never repaired or moved aside), and ledger.Mem in memory (offline
// verification, tests). It keeps each device (its key, the credited certificate, its
// fork evidence) and each of its epochs' chains: the linked records by seq with their
// verdicts, and the head with its counters. Claims and device reports read the stored
// records themselves: dates increase with seq along every chain, so a month's records
// of an epoch are found by binary search.
//
// Batches that wait for the ledger at the same time are committed together (group
// commit): each batch is still all or nothing and durable before it is answered, and
// a failure of the shared transaction is retried batch by batch.
package collector
