package ledger

import (
	"fmt"

	"amos.example/amosd/proof"
)

// Ledger is the collector's durable state: devices, chain heads, records, active days
// and fork evidence. Bolt implements it on one bbolt file, Mem in memory; a
// fleet-scale backend implements it on a database with transactions.
type Ledger interface {
	// View runs fn in a consistent read-only snapshot.
	View(fn func(Tx) error) error
	// Update runs fn in one durable transaction: when Update returns nil, everything
	// fn wrote is on stable storage; when fn or the commit fails, nothing is.
	Update(fn func(Tx) error) error
	// Close releases the ledger.
	Close() error
}

// Tx is one transaction of a Ledger. Values it returns are the caller's to keep.
// Lookups of something absent return nil and no error; write methods of a read-only
// transaction fail with ErrReadOnly; undecodable stored values with ErrCorrupt.
type Tx interface {
	// Prefetch tells the transaction what the next lookups will be, so that a
	// database can answer them in one round trip; it changes no answer.
	Prefetch(chains []ChainMonth) error

	Device(id proof.DeviceID) (*Device, error)
	PutDevice(d *Device) error
	// Devices calls fn for every device in device_id order.
	Devices(fn func(*Device) error) error

	Head(id proof.DeviceID, epoch uint32) (*Head, error)
	PutHead(h *Head) error
	// Heads calls fn for every epoch of the device in epoch order.
	Heads(id proof.DeviceID, fn func(*Head) error) error

	Record(id proof.DeviceID, epoch uint32, seq uint64) (*Record, error)
	PutRecord(id proof.DeviceID, epoch uint32, seq uint64, r *Record) error
	// Records calls fn for every stored record of the epoch with a seq from first
	// to last, inclusive, in seq order.
	Records(id proof.DeviceID, epoch uint32, first, last uint64, fn func(seq uint64, r *Record) error) error

	// AddForkEvidence keeps a record that contradicts the device's stored chain;
	// it reports false if the identical record is already kept.
	AddForkEvidence(id proof.DeviceID, record []byte) (bool, error)
	// ForkEvidence calls fn for every record kept as fork evidence of the device.
	ForkEvidence(id proof.DeviceID, fn func(record []byte) error) error

	// Sale returns the registered sale of a serial tag.
	Sale(serial [32]byte) (*Sale, error)
	// PutSale registers or replaces a sale (the collector never replaces one).
	PutSale(s *Sale) error
	// Sales calls fn for every registered sale in serial_tag order.
	Sales(fn func(*Sale) error) error

	// ClosedMonth returns the claim stored when month m closed, nil if it is not.
	ClosedMonth(m MonthKey) (*ClosedMonth, error)
	// PutClosedMonth stores a month's claim; ErrExists if the month is already closed.
	PutClosedMonth(c *ClosedMonth) error

	// AddDecision appends a decision on a held device, setting its N.
	AddDecision(d *Decision) error
	// Decisions calls fn for every decision of month m, by device_id then N.
	Decisions(m MonthKey, fn func(*Decision) error) error

	// AddLate counts one record of month m of the device that arrived after m closed.
	AddLate(m MonthKey, id proof.DeviceID) error
	// Late calls fn for every device with late records of month m.
	Late(m MonthKey, fn func(id proof.DeviceID, records uint32) error) error

	// AddDay appends an accepted activity record of the device's epoch to the
	// aggregate of its month; days are added in seq order, their dates increasing.
	AddDay(id proof.DeviceID, epoch uint32, d *Day) error
	// MonthDays calls fn for every device-epoch with accepted days in month m, in
	// device_id then epoch order, each with its days in seq order; days is valid only
	// until fn returns.
	MonthDays(m MonthKey, fn func(id proof.DeviceID, epoch uint32, days []Day) error) error
	// DeviceMonthDays is MonthDays for one device (days valid until fn returns).
	DeviceMonthDays(m MonthKey, id proof.DeviceID, fn func(epoch uint32, days []Day) error) error

	// MonthDayBatches is MonthDays decoded by up to workers goroutines at once: it calls
	// fn from them, each call with consecutive device-epochs of the month in key order,
	// every epoch of a device in the same call, and how many devices of the month came
	// before them. runs is valid only until fn returns.
	MonthDayBatches(m MonthKey, workers int, fn func(first int, runs []DayRun) error) error
	// MonthDayRangeBatches is MonthDayBatches for the device_ids in [from, to), nil
	// meaning no bound; first counts the devices of the range.
	MonthDayRangeBatches(m MonthKey, from, to []byte, workers int, fn func(first int, runs []DayRun) error) error
	// DeviceBatches is Devices decoded by up to workers goroutines at once, for what
	// claims read: it calls fn from them, each call with consecutive devices in
	// device_id order and how many devices came before them. devs and what they hold are
	// valid only until fn returns. Their PublicKey is left zero: neither it nor what
	// ingest checked before storing a device is checked again.
	DeviceBatches(workers int, fn func(first int, devs []Device) error) error
	// DeviceRangeBatches is DeviceBatches for the device_ids in [from, to), nil meaning
	// no bound; first counts the devices of the range.
	DeviceRangeBatches(from, to []byte, workers int, fn func(first int, devs []Device) error) error
	// SaleBatches is Sales decoded by up to workers goroutines at once: it calls fn from
	// them, each call with consecutive sales in serial_tag order, valid only until fn
	// returns, and how many sales came before them.
	SaleBatches(workers int, fn func(first int, sales []Sale) error) error

	// Fork returns another read-only Tx that sees exactly what this one sees, so that
	// one goroutine scans a range while another scans another at the same time (on a
	// database, on a second connection sharing this transaction's snapshot), and the
	// function that ends it, to call before this transaction ends. It returns a nil Tx
	// when the backend cannot or need not: a local one, an engine that cannot share
	// its snapshot, a transaction that may write; then scan in this one.
	Fork() (Tx, func(), error)
}

// MaxForkEvidence is how many distinct contradicting records are kept per device.
const MaxForkEvidence = 64

// Device is what the ledger knows of one device key.
type Device struct {
	ID        proof.DeviceID
	PublicKey proof.PublicKey
	FirstSeen int64 // server time when its first genesis was linked, unix seconds
	// ForkEvidence counts the distinct records kept that contradict its chains (at
	// most MaxForkEvidence). Any at all flags the device: it is never eligible.
	ForkEvidence uint32
	// Cert is the certificate credited to the device: the first one that verified
	// against the registry at ingest. Nil for an unattributed device.
	Cert         []byte
	CertMakerKey proof.PublicKey // the maker key Cert verified against
	CertEpoch    uint32          // the epoch whose genesis carried Cert
	// Attestation is the verdict on the key's attestation chain, made once when the
	// first genesis carrying a chain was received; nil if none has been.
	Attestation *Attestation

	parsed *proof.Certificate // Cert as decoded from the ledger, kept for Certificate
}

// Attestation is the collector's verdict on a device key's hardware attestation
// (docs/attestation.md), as stored.
type Attestation struct {
	Accepted      bool     `json:"accepted"`
	Reason        string   `json:"reason,omitempty"` // why it was refused
	Detail        string   `json:"detail,omitempty"`
	SecurityLevel string   `json:"security_level,omitempty"`
	OSPatchLevel  int      `json:"os_patch_level,omitempty"`
	VerifiedAt    int64    `json:"verified_at"`       // unix seconds: the "as of" time of the verdict
	Epoch         uint32   `json:"epoch"`             // whose genesis carried the chain
	Serials       []string `json:"serials,omitempty"` // of the chain's certificates, for the status list
}

// Forked reports whether the device key is known to have signed two histories.
func (d *Device) Forked() bool { return d.ForkEvidence > 0 }

// Certificate decodes the credited certificate, nil if there is none.
func (d *Device) Certificate() (*proof.Certificate, error) {
	if len(d.Cert) == 0 {
		return nil, nil
	}
	if d.parsed != nil {
		c := *d.parsed
		return &c, nil
	}
	c, err := proof.ParseCertificate(d.Cert)
	if err != nil {
		return nil, fmt.Errorf("device %s: stored certificate: %v: %w", d.ID, err, ErrCorrupt)
	}
	return c, nil
}

// SharedCertificate is Certificate without the copy: the certificate it returns may be
// d's own, which nobody may modify.
func (d *Device) SharedCertificate() (*proof.Certificate, error) {
	if d.parsed != nil && len(d.Cert) > 0 {
		return d.parsed, nil
	}
	return d.Certificate()
}

// Head is the head of one device's chain in one epoch, with its counters.
type Head struct {
	DeviceID proof.DeviceID
	Epoch    uint32
	Seq      uint64     // seq of the last linked record
	Hash     proof.Hash // its record hash
	LastDate proof.Date // date of the last linked activity record, 0 before the first
	// Genesis is the verdict of the epoch's genesis: VerdictAccepted, VerdictBadCert,
	// VerdictUnknownMaker or VerdictImplausible.
	Genesis Verdict
	Counts  Counts
	Updated int64 // server time of the last link, unix seconds
}

// Counts count the linked records of an epoch.
type Counts struct {
	Accepted   uint32 // accepted activity records: days that count
	FutureDate uint32 // linked, rejected future_date
	Stale      uint32 // linked, rejected stale
	// Records (genesis included) carrying each flag of docs/protocol.md.
	ClockUnconfirmed uint32
	ClockJumped      uint32
	TallyLost        uint32
	Debuggable       uint32
}

// Record is a linked record and the verdict it got.
type Record struct {
	Verdict Verdict
	Bytes   []byte
}

// Verdict is what the ledger stores with a linked record: the result it got. Only
// these are ever linked: a record rejected for anything but its content (bad_format,
// bad_signature, chain_fork...) never is.
type Verdict uint8

// The stored verdict codes.
const (
	VerdictAccepted     Verdict = 0
	VerdictBadCert      Verdict = 1 // rejected bad_cert
	VerdictUnknownMaker Verdict = 2 // rejected unknown_maker
	VerdictFutureDate   Verdict = 3 // rejected future_date
	VerdictStale        Verdict = 4 // rejected stale
	VerdictLate         Verdict = 5 // rejected late: its month had closed when it arrived
	VerdictImplausible  Verdict = 6 // rejected implausible_mint: minted_at no daemon writes
)

var verdictNames = [...]string{"accepted", "bad_cert", "unknown_maker", "future_date", "stale", "late", "implausible_mint"}

// Valid reports whether v is one of the stored verdict codes.
func (v Verdict) Valid() bool { return int(v) < len(verdictNames) }

// String returns "accepted" or the rejection reason of docs/protocol.md.
func (v Verdict) String() string {
	if v.Valid() {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}
