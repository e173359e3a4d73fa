package fastcgi

// params.go encodes and decodes FastCGI name-value pairs, the body of
// FCGI_PARAMS, FCGI_GET_VALUES and FCGI_GET_VALUES_RESULT. Each length is one
// byte when under 128, else four bytes with the high bit set.

import (
	"encoding/binary"
	"fmt"
)

// Param is one name-value pair. Order is kept: params are sent as given.
type Param struct {
	Name, Value string
}

// maxPairLen bounds a single name or value; four-byte lengths carry 31 bits.
const maxPairLen = 1<<31 - 1

// appendSize appends the 1- or 4-byte encoding of n.
func appendSize(b []byte, n int) []byte {
	if n < 128 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// readSize decodes a 1- or 4-byte length at the start of b and returns it and
// the number of bytes it took, or 0, 0 if b is too short.
func readSize(b []byte) (int, int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0]>>7 == 0 {
		return int(b[0]), 1
	}
	if len(b) < 4 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint32(b) &^ (1 << 31)), 4
}

// AppendParam appends the encoding of one name-value pair to b.
func AppendParam(b []byte, name, value string) []byte {
	b = appendSize(b, len(name))
	b = appendSize(b, len(value))
	b = append(b, name...)
	return append(b, value...)
}

// EncodeParams returns the encoding of ps, as carried by FCGI_PARAMS.
func EncodeParams(ps []Param) []byte {
	n := 0
	for _, p := range ps {
		n += 8 + len(p.Name) + len(p.Value)
	}
	b := make([]byte, 0, n)
	for _, p := range ps {
		b = AppendParam(b, p.Name, p.Value)
	}
	return b
}

// DecodeParams decodes a complete FCGI_PARAMS stream. A truncated pair or a
// length that runs past the end is an ErrProtocol. The names and values are
// slices of one string, so a request's params cost two allocations, not
// two per pair; keeping one of them keeps that string.
func DecodeParams(b []byte) ([]Param, error) {
	n := 0
	for rest := b; len(rest) > 0; n++ {
		var err error
		if _, _, rest, err = nextPair(rest); err != nil {
			break // the second pass reports it, after the whole pairs
		}
	}
	ps := make([]Param, 0, n)
	all := string(b)
	for len(b) > 0 {
		nl, vl, rest, err := nextPair(b)
		if err != nil {
			return ps, err
		}
		off := len(all) - len(rest) - nl - vl
		ps = append(ps, Param{Name: all[off : off+nl], Value: all[off+nl : off+nl+vl]})
		b = rest
	}
	return ps, nil
}

// nextPair reads the lengths of the pair at the start of b, and returns
// them and what follows the pair.
func nextPair(b []byte) (nl, vl int, rest []byte, err error) {
	nl, k := readSize(b)
	if k == 0 {
		return 0, 0, nil, protocolError("params: truncated name length")
	}
	b = b[k:]
	vl, k = readSize(b)
	if k == 0 {
		return 0, 0, nil, protocolError("params: truncated value length")
	}
	b = b[k:]
	if nl > len(b) || vl > len(b)-nl {
		return 0, 0, nil, protocolError("params: pair of %d+%d bytes runs past the %d bytes left", nl, vl, len(b))
	}
	return nl, vl, b[nl+vl:], nil
}

// checkParams reports a pair too long to encode.
func checkParams(ps []Param) error {
	for _, p := range ps {
		if len(p.Name) > maxPairLen || len(p.Value) > maxPairLen {
			return fmt.Errorf("fastcgi: param %.40q is longer than %d bytes", p.Name, maxPairLen)
		}
	}
	return nil
}
