package fastcgi

// record.go defines the raw protocol: record types, the 8-byte header, the
// fixed bodies of BEGIN_REQUEST, END_REQUEST and UNKNOWN_TYPE, and a reader
// and writer of whole records.

import (
	"encoding/binary"
	"io"
	"strconv"
)

// recType is the type of a FastCGI record.
type recType uint8

const (
	typeBeginRequest    recType = 1
	typeAbortRequest    recType = 2
	typeEndRequest      recType = 3
	typeParams          recType = 4
	typeStdin           recType = 5
	typeStdout          recType = 6
	typeStderr          recType = 7
	typeData            recType = 8
	typeGetValues       recType = 9
	typeGetValuesResult recType = 10
	typeUnknownType     recType = 11
)

func (t recType) String() string {
	switch t {
	case typeBeginRequest:
		return "BEGIN_REQUEST"
	case typeAbortRequest:
		return "ABORT_REQUEST"
	case typeEndRequest:
		return "END_REQUEST"
	case typeParams:
		return "PARAMS"
	case typeStdin:
		return "STDIN"
	case typeStdout:
		return "STDOUT"
	case typeStderr:
		return "STDERR"
	case typeData:
		return "DATA"
	case typeGetValues:
		return "GET_VALUES"
	case typeGetValuesResult:
		return "GET_VALUES_RESULT"
	case typeUnknownType:
		return "UNKNOWN_TYPE"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Roles and flags of FCGI_BEGIN_REQUEST.
const (
	roleResponder  = 1
	roleAuthorizer = 2
	roleFilter     = 3

	flagKeepConn = 1
)

// Protocol statuses of FCGI_END_REQUEST.
const (
	statusRequestComplete = 0
	statusCantMultiplex   = 1
	statusOverloaded      = 2
	statusUnknownRole     = 3
)

const (
	version1 = 1

	headerLen = 8
	// maxContent is the largest content a single record can carry.
	maxContent = 65535
	// maxPad is the largest padding a record may carry.
	maxPad = 255
)

// header is the fixed 8-byte prefix of every record.
type header struct {
	Version       uint8
	Type          recType
	ID            uint16
	ContentLength uint16
	PaddingLength uint8
}

// init fills h for a record of type t carrying n content bytes, padded to a
// multiple of 8 as the specification recommends.
func (h *header) init(t recType, id uint16, n int) {
	h.Version = version1
	h.Type = t
	h.ID = id
	h.ContentLength = uint16(n)
	h.PaddingLength = uint8(-n & 7)
}

func (h *header) encode(b []byte) {
	b[0] = h.Version
	b[1] = uint8(h.Type)
	binary.BigEndian.PutUint16(b[2:4], h.ID)
	binary.BigEndian.PutUint16(b[4:6], h.ContentLength)
	b[6] = h.PaddingLength
	b[7] = 0
}

func (h *header) decode(b []byte) {
	h.Version = b[0]
	h.Type = recType(b[1])
	h.ID = binary.BigEndian.Uint16(b[2:4])
	h.ContentLength = binary.BigEndian.Uint16(b[4:6])
	h.PaddingLength = b[6]
}

// record is one record as read: its header and its content, without padding.
// Content aliases the reader's buffer and is valid until the next read.
type record struct {
	h       header
	Content []byte
}

// recordReader reads whole records from r into one reused buffer.
type recordReader struct {
	r   io.Reader
	buf [headerLen + maxContent + maxPad]byte
}

// next reads the next record. It returns io.EOF only when the stream ends
// cleanly between records; a stream that ends inside a record yields an
// ErrProtocol-wrapped io.ErrUnexpectedEOF.
func (rr *recordReader) next() (record, error) {
	var rec record
	if _, err := io.ReadFull(rr.r, rr.buf[:headerLen]); err != nil {
		if err == io.ErrUnexpectedEOF {
			return rec, protocolError("truncated record header: %v", err)
		}
		return rec, err
	}
	rec.h.decode(rr.buf[:headerLen])
	if rec.h.Version != version1 {
		return rec, protocolError("invalid header version %d", rec.h.Version)
	}
	n := int(rec.h.ContentLength) + int(rec.h.PaddingLength)
	if _, err := io.ReadFull(rr.r, rr.buf[headerLen:headerLen+n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return rec, protocolError("truncated %s record (%d bytes expected): %v", rec.h.Type, n, err)
	}
	rec.Content = rr.buf[headerLen : headerLen+int(rec.h.ContentLength)]
	return rec, nil
}

// writeRecord writes one record of type t with content c, which must not be
// longer than maxContent, using buf (at least headerLen+len(c)+7 bytes) to
// send header, content and padding in one write.
func writeRecord(w io.Writer, buf []byte, t recType, id uint16, c []byte) error {
	var h header
	h.init(t, id, len(c))
	n := headerLen + len(c) + int(h.PaddingLength)
	b := buf[:n]
	h.encode(b)
	copy(b[headerLen:], c)
	clear(b[headerLen+len(c):])
	_, err := w.Write(b)
	return err
}

// beginRequestBody encodes the body of FCGI_BEGIN_REQUEST.
func beginRequestBody(role uint16, flags uint8) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, role)
	b[2] = flags
	return b
}

// endRequestBody encodes the body of FCGI_END_REQUEST.
func endRequestBody(appStatus uint32, protocolStatus uint8) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint32(b, appStatus)
	b[4] = protocolStatus
	return b
}
