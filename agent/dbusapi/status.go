package dbusapi

import (
	"github.com/godbus/dbus/v5"

	"amos.example/amosd/store"
)

// Status is the agent's state for the Status method of docs/dbus-api.md.
type Status struct {
	Version                 string
	DeviceID                string
	Epoch                   uint32
	LastSeq                 uint64
	Queued                  uint32
	DeadLetter              uint32
	Consent                 bool
	TodayDate               uint32
	TodayInteractiveSeconds uint32
	ClockTrusted            bool
	SpoofedSignals          uint64
	StoreBytes              uint64
	Sources                 []string
	CertProblem             string
	Recovery                *store.Recovery // the last recovery from a corrupt store, nil if none
	RecoveryOutcome         *store.Outcome  // what the daemon made of it, nil if not recorded
	LastSyncUnix            int64
	LastSyncResult          string
	NextRetryUnix           int64
}

// Variants returns the status as the a{sv} of docs/dbus-api.md's Status method.
func (s Status) Variants() map[string]dbus.Variant {
	v := map[string]dbus.Variant{
		"version":                   dbus.MakeVariant(s.Version),
		"device_id":                 dbus.MakeVariant(s.DeviceID),
		"epoch":                     dbus.MakeVariant(s.Epoch),
		"last_seq":                  dbus.MakeVariant(s.LastSeq),
		"queued":                    dbus.MakeVariant(s.Queued),
		"dead_letter":               dbus.MakeVariant(s.DeadLetter),
		"consent":                   dbus.MakeVariant(s.Consent),
		"today_date":                dbus.MakeVariant(s.TodayDate),
		"today_interactive_seconds": dbus.MakeVariant(s.TodayInteractiveSeconds),
		"last_sync_unix":            dbus.MakeVariant(s.LastSyncUnix),
		"last_sync_result":          dbus.MakeVariant(s.LastSyncResult),
		"next_retry_unix":           dbus.MakeVariant(s.NextRetryUnix),
		"clock_trusted":             dbus.MakeVariant(s.ClockTrusted),
		"spoofed_signals":           dbus.MakeVariant(s.SpoofedSignals),
		"store_bytes":               dbus.MakeVariant(s.StoreBytes),
		"sources":                   dbus.MakeVariant(s.Sources),
		"cert_problem":              dbus.MakeVariant(s.CertProblem),
	}
	if r := s.Recovery; r != nil {
		rec := map[string]dbus.Variant{
			"at":           dbus.MakeVariant(r.At),
			"cause":        dbus.MakeVariant(r.Cause),
			"corrupt_path": dbus.MakeVariant(r.CorruptPath),
			"salvaged":     dbus.MakeVariant(r.Salvaged),
		}
		if o := s.RecoveryOutcome; o != nil {
			rec["old_epoch"] = dbus.MakeVariant(o.OldEpoch)
			rec["new_epoch"] = dbus.MakeVariant(o.NewEpoch)
			rec["consent"] = dbus.MakeVariant(o.Consent)
		}
		v["last_recovery"] = dbus.MakeVariant(rec)
	}
	return v
}
