package fastcgi

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSizeCodec(t *testing.T) {
	tests := []struct {
		n    int
		want []byte
	}{
		{0, []byte{0}},
		{127, []byte{127}},
		{128, []byte{0x80, 0, 0, 128}},
		{65535, []byte{0x80, 0, 0xff, 0xff}},
		{maxPairLen, []byte{0xff, 0xff, 0xff, 0xff}},
	}
	for _, tt := range tests {
		got := appendSize(nil, tt.n)
		if !bytes.Equal(got, tt.want) {
			t.Errorf("appendSize(%d) = %x, want %x", tt.n, got, tt.want)
		}
		n, k := readSize(got)
		if n != tt.n || k != len(tt.want) {
			t.Errorf("readSize(%x) = %d, %d; want %d, %d", got, n, k, tt.n, len(tt.want))
		}
	}
	for _, short := range [][]byte{nil, {0x80}, {0x80, 0, 0}} {
		if _, k := readSize(short); k != 0 {
			t.Errorf("readSize(%x) took %d bytes of a truncated length", short, k)
		}
	}
}

func TestParamsVectors(t *testing.T) {
	long := strings.Repeat("v", 200)
	tests := []struct {
		name string
		ps   []Param
		want []byte
	}{
		{"empty", nil, []byte{}},
		{"short", []Param{{"A", "bc"}}, []byte{1, 2, 'A', 'b', 'c'}},
		{"empty value", []Param{{"X", ""}}, []byte{1, 0, 'X'}},
		{"long value", []Param{{"K", long}}, append([]byte{1, 0x80, 0, 0, 200, 'K'}, long...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := EncodeParams(tt.ps)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("EncodeParams = %x, want %x", got, tt.want)
			}
			back, err := DecodeParams(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != len(tt.ps) {
				t.Fatalf("round trip gave %d params, want %d", len(back), len(tt.ps))
			}
			for i := range back {
				if back[i] != tt.ps[i] {
					t.Errorf("param %d = %+v, want %+v", i, back[i], tt.ps[i])
				}
			}
		})
	}
}

func TestDecodeParamsErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"truncated name length":  {0x80, 0},
		"truncated value length": {1},
		"value past end":         {1, 5, 'A', 'b'},
		"huge length":            {0xff, 0xff, 0xff, 0xff, 0, 'x'},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeParams(b); !errors.Is(err, ErrProtocol) {
				t.Fatalf("DecodeParams(%x) error = %v, want ErrProtocol", b, err)
			}
		})
	}
}

func TestHeaderPadding(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 65535} {
		var h header
		h.init(typeStdout, 1, n)
		if (n+int(h.PaddingLength))%8 != 0 || h.PaddingLength > 7 {
			t.Errorf("content %d: padding %d does not align to 8", n, h.PaddingLength)
		}
	}
}

func TestWriteRecordBytes(t *testing.T) {
	var buf bytes.Buffer
	b := make([]byte, headerLen+maxContent+8)
	if err := writeRecord(&buf, b, typeStdout, 1, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 6, 0, 1, 0, 5, 3, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("record = %x, want %x", buf.Bytes(), want)
	}
}

func TestRecordReader(t *testing.T) {
	big := bytes.Repeat([]byte{'z'}, maxContent)
	var stream bytes.Buffer
	b := make([]byte, headerLen+maxContent+8)
	writeRecord(&stream, b, typeStdout, 1, []byte("ab"))
	writeRecord(&stream, b, typeStdout, 1, big)
	writeRecord(&stream, b, typeEndRequest, 1, endRequestBody(0, statusRequestComplete))
	rr := &recordReader{r: &stream}
	want := []struct {
		t recType
		n int
	}{{typeStdout, 2}, {typeStdout, maxContent}, {typeEndRequest, 8}}
	for i, w := range want {
		rec, err := rr.next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if rec.h.Type != w.t || len(rec.Content) != w.n {
			t.Fatalf("record %d = %s with %d bytes, want %s with %d", i, rec.h.Type, len(rec.Content), w.t, w.n)
		}
	}
	if _, err := rr.next(); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}

func TestRecordReaderErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"bad version":       {2, 6, 0, 1, 0, 0, 0, 0},
		"truncated header":  {1, 6, 0},
		"truncated content": {1, 6, 0, 1, 0, 9, 0, 0, 'a'},
		"truncated padding": {1, 6, 0, 1, 0, 1, 7, 0, 'a', 0},
	} {
		t.Run(name, func(t *testing.T) {
			rr := &recordReader{r: bytes.NewReader(b)}
			if _, err := rr.next(); !errors.Is(err, ErrProtocol) {
				t.Fatalf("error = %v, want ErrProtocol", err)
			}
		})
	}
}
