package proof

import "strconv"

// MakerKeys looks up the registered public key of a maker_id.
type MakerKeys func(makerID string) (PublicKey, bool)

// Chain is the verified head of one device's chain in one epoch: everything needed to
// verify the next record. Its fields are exported so that a verifier can persist it.
type Chain struct {
	DeviceID  DeviceID
	PublicKey PublicKey
	Epoch     uint32
	Seq       uint64 // seq of the head record
	Head      Hash   // hash of the head record
	LastDate  Date   // date of the last activity record, 0 before the first
	// Cert is the certificate of the genesis, nil if it had none. CertVerified says
	// whether its signature was checked against the maker's registered key.
	Cert         *Certificate
	CertVerified bool
}

// StartChain verifies a genesis record and returns the chain it starts. With makers
// nil, a certificate is checked for format and key only, not against the maker's key.
func StartChain(encoded []byte, makers MakerKeys) (*Chain, *Record, error) {
	rec, err := Decode(encoded)
	if err != nil {
		return nil, nil, err
	}
	g, ok := rec.Genesis()
	if !ok {
		return nil, rec, &ChainError{Epoch: rec.Epoch, Seq: rec.Seq, Err: ErrChainStart, Detail: "first record is not a genesis"}
	}
	if err := VerifyEncoded(encoded, g.PublicKey); err != nil {
		return nil, rec, err
	}
	c := &Chain{
		DeviceID:  rec.DeviceID,
		PublicKey: g.PublicKey,
		Epoch:     rec.Epoch,
		Seq:       rec.Seq,
		Head:      HashRecord(encoded),
		Cert:      g.Cert,
	}
	if g.Cert != nil && makers != nil {
		key, known := makers(g.Cert.MakerID)
		if !known {
			return nil, rec, &ChainError{Epoch: rec.Epoch, Seq: rec.Seq, Err: ErrUnknownMaker, Detail: "maker_id " + g.Cert.MakerID}
		}
		if err := g.Cert.Verify(key); err != nil {
			return nil, rec, &ChainError{Epoch: rec.Epoch, Seq: rec.Seq, Err: err}
		}
		c.CertVerified = true
	}
	return c, rec, nil
}

// Append verifies that encoded is the next record of the chain (same device and epoch,
// signed by the device key, seq +1, prev_hash the head's hash, a date after the last)
// and advances the head. On error the chain is unchanged.
func (c *Chain) Append(encoded []byte) (*Record, error) {
	rec, err := Decode(encoded)
	if err != nil {
		return nil, err
	}
	fail := func(err error, detail string) (*Record, error) {
		return rec, &ChainError{Epoch: rec.Epoch, Seq: rec.Seq, Err: err, Detail: detail}
	}
	switch {
	case rec.DeviceID != c.DeviceID:
		return fail(ErrChainDevice, "device "+rec.DeviceID.String()+", chain of "+c.DeviceID.String())
	case rec.Epoch != c.Epoch:
		return fail(ErrChainEpoch, "")
	}
	if err := VerifyEncoded(encoded, c.PublicKey); err != nil {
		return rec, err
	}
	a, ok := rec.Activity()
	switch {
	case !ok:
		return fail(ErrChainGenesis, "")
	case rec.Seq != c.Seq+1:
		return fail(ErrChainSeq, "head is seq "+strconv.FormatUint(c.Seq, 10))
	case rec.PrevHash != c.Head:
		return fail(ErrChainPrev, "")
	case a.Date <= c.LastDate:
		return fail(ErrChainDate, a.Date.String()+" is not after "+c.LastDate.String())
	}
	c.Seq, c.Head, c.LastDate = rec.Seq, HashRecord(encoded), a.Date
	return rec, nil
}

// VerifyChain verifies a whole epoch's chain, genesis first, and returns its head.
func VerifyChain(records [][]byte, makers MakerKeys) (*Chain, error) {
	if len(records) == 0 {
		return nil, &ChainError{Err: ErrChainStart, Detail: "no records"}
	}
	c, _, err := StartChain(records[0], makers)
	if err != nil {
		return nil, err
	}
	for _, b := range records[1:] {
		if _, err := c.Append(b); err != nil {
			return nil, err
		}
	}
	return c, nil
}
