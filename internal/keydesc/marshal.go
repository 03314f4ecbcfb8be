package keydesc

import (
	"encoding/asn1"
	"fmt"
	"sort"
)

type keyDescription struct {
	AttestationVersion       int
	AttestationSecurityLevel asn1.Enumerated
	KeyMintVersion           int
	KeyMintSecurityLevel     asn1.Enumerated
	AttestationChallenge     []byte
	UniqueID                 []byte
	SoftwareEnforced         asn1.RawValue
	HardwareEnforced         asn1.RawValue
}

type rootOfTrust struct {
	VerifiedBootKey   []byte
	DeviceLocked      bool
	VerifiedBootState asn1.Enumerated
}

type rootOfTrustHash struct {
	VerifiedBootKey   []byte
	DeviceLocked      bool
	VerifiedBootState asn1.Enumerated
	VerifiedBootHash  []byte
}

// Marshal encodes d as DER, the content of the extension's extnValue. The
// AuthorizationList elements are written in increasing tag order, Extra merged in; a
// tag of Extra that a field also sets, or an Extra value that is not one DER value, is
// ErrInvalid.
func Marshal(d *Description) ([]byte, error) {
	if d == nil {
		return nil, fmt.Errorf("%w: nil", ErrInvalid)
	}
	sw, err := marshalList(&d.SoftwareEnforced)
	if err != nil {
		return nil, fmt.Errorf("softwareEnforced: %w", err)
	}
	hw, err := marshalList(&d.HardwareEnforced)
	if err != nil {
		return nil, fmt.Errorf("hardwareEnforced: %w", err)
	}
	return asn1.Marshal(keyDescription{
		AttestationVersion:       d.AttestationVersion,
		AttestationSecurityLevel: asn1.Enumerated(d.AttestationSecurityLevel),
		KeyMintVersion:           d.KeyMintVersion,
		KeyMintSecurityLevel:     asn1.Enumerated(d.KeyMintSecurityLevel),
		AttestationChallenge:     nonNil(d.AttestationChallenge),
		UniqueID:                 nonNil(d.UniqueID),
		SoftwareEnforced:         asn1.RawValue{FullBytes: sw},
		HardwareEnforced:         asn1.RawValue{FullBytes: hw},
	})
}

// marshalList encodes l as a DER SEQUENCE of EXPLICIT tagged elements.
func marshalList(l *AuthorizationList) ([]byte, error) {
	var els []Element
	add := func(tag int, v any, params string) error {
		der, err := asn1.MarshalWithParams(v, params)
		if err != nil {
			return fmt.Errorf("%w: tag %d: %w", ErrInvalid, tag, err)
		}
		els = append(els, Element{Tag: tag, Value: der})
		return nil
	}
	var err error
	try := func(tag int, v any, params string) {
		if err == nil {
			err = add(tag, v, params)
		}
	}
	if l.Purpose != nil {
		try(TagPurpose, l.Purpose, "set")
	}
	if l.Digest != nil {
		try(TagDigest, l.Digest, "set")
	}
	if l.NoAuthRequired {
		try(TagNoAuthRequired, asn1.NullRawValue, "")
	}
	if l.CreationDateTime != nil {
		try(TagCreationDateTime, *l.CreationDateTime, "")
	}
	if r := l.RootOfTrust; r != nil {
		if r.VerifiedBootHash != nil {
			try(TagRootOfTrust, rootOfTrustHash{nonNil(r.VerifiedBootKey), r.DeviceLocked, asn1.Enumerated(r.VerifiedBootState), r.VerifiedBootHash}, "")
		} else {
			try(TagRootOfTrust, rootOfTrust{nonNil(r.VerifiedBootKey), r.DeviceLocked, asn1.Enumerated(r.VerifiedBootState)}, "")
		}
	}
	for _, tag := range []int{TagAlgorithm, TagKeySize, TagECCurve, TagOrigin, TagOSVersion, TagOSPatchLevel, TagVendorPatchLevel, TagBootPatchLevel} {
		if p := *l.intField(tag); p != nil {
			try(tag, *p, "")
		}
	}
	for _, tag := range []int{TagAttestationApplicationID, TagAttestationIDBrand, TagAttestationIDDevice, TagAttestationIDProduct,
		TagAttestationIDSerial, TagAttestationIDIMEI, TagAttestationIDMEID, TagAttestationIDManufacturer, TagAttestationIDModel, TagAttestationIDSecondIMEI} {
		if b := *l.bytesField(tag); b != nil {
			try(tag, b, "")
		}
	}
	if err != nil {
		return nil, err
	}
	known := len(els)
	for _, e := range l.Extra {
		for _, k := range els[:known] {
			if k.Tag == e.Tag {
				return nil, fmt.Errorf("%w: Extra tag %d is also a decoded field", ErrInvalid, e.Tag)
			}
		}
		var rv asn1.RawValue
		if rest, err := asn1.Unmarshal(e.Value, &rv); err != nil || len(rest) != 0 || e.Tag < 0 {
			return nil, fmt.Errorf("%w: Extra tag %d: not one DER value", ErrInvalid, e.Tag)
		}
		els = append(els, e)
	}
	sort.SliceStable(els, func(i, j int) bool { return els[i].Tag < els[j].Tag })
	var body []byte
	for i, e := range els {
		if i > 0 && els[i-1].Tag == e.Tag {
			return nil, fmt.Errorf("%w: tag %d twice", ErrInvalid, e.Tag)
		}
		der, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: e.Tag, IsCompound: true, Bytes: e.Value})
		if err != nil {
			return nil, fmt.Errorf("%w: tag %d: %w", ErrInvalid, e.Tag, err)
		}
		body = append(body, der...)
	}
	return asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSequence, IsCompound: true, Bytes: body})
}
