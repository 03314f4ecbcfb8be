package store

import (
	"amos.example/amosd/proof"
	bolt "go.etcd.io/bbolt"
)

// LowerDateFloor lowers the head's LastDate to d if it is after d: the dates after d
// were minted on a clock that believed time now contradicts, and the next epoch may
// mint them again (docs/store-and-epochs.md). It does nothing without a head or when
// LastDate is not after d.
func (s *Store) LowerDateFloor(d proof.Date) error {
	return s.update("lower the date floor", func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHead)
		v := b.Get(keyValue)
		if v == nil {
			return nil
		}
		h, err := decodeHead(v)
		if err != nil {
			return err
		}
		if h.LastDate <= d {
			return nil
		}
		h.LastDate = d
		return b.Put(keyValue, encodeHead(h))
	})
}
