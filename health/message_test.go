package health

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestMessageVectors(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"verdict", encodeVerdict(Verdict{Backend: "127.0.0.3:9000", State: StateDown, Reason: "dial: connection refused", Observer: "gw1", Version: 7}),
			`V{"b":"127.0.0.3:9000","s":"down","r":"dial: connection refused","o":"gw1","v":7}`},
		{"verdict without reason", encodeVerdict(Verdict{Backend: "127.0.0.3:9000", State: StateUp, Observer: "gw1", Version: 8}),
			`V{"b":"127.0.0.3:9000","s":"up","o":"gw1","v":8}`},
		{"load", encodeLoad(LoadDigest{Node: "gw2", Seq: 42, Config: "3f2a", InFlight: map[string]int{"127.0.0.2:9000": 3, "127.0.0.3:9000": 2}}),
			`L{"n":"gw2","q":42,"c":"3f2a","l":{"127.0.0.2:9000":3,"127.0.0.3:9000":2}}`},
		{"state", encodeState([]Verdict{{Backend: "127.0.0.2:9000", State: StateSuspect, Reason: "timeout", Observer: "gw3", Version: 1}}),
			`S{"v":[{"b":"127.0.0.2:9000","s":"suspect","r":"timeout","o":"gw3","v":1}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("encoded\n%s\nwant\n%s", tt.got, tt.want)
			}
			if _, err := decode(tt.got); err != nil {
				t.Errorf("decode: %v", err)
			}
		})
	}
}

func TestMessageRoundTrip(t *testing.T) {
	v := Verdict{Backend: "[::1]:9000", State: StateDown, Reason: "timeout", Observer: "gw1", Version: 1 << 62}
	m, err := decode(encodeVerdict(v))
	if err != nil || m.verdict == nil || *m.verdict != v {
		t.Fatalf("verdict: %+v %v", m, err)
	}
	d := LoadDigest{Node: "gw1", Seq: 3, InFlight: map[string]int{"127.0.0.2:9000": 4}}
	m, err = decode(encodeLoad(d))
	if err != nil || m.load == nil || !reflect.DeepEqual(*m.load, d) {
		t.Fatalf("load: %+v %v", m, err)
	}
	vs := []Verdict{v, {Backend: "127.0.0.2:9000", State: StateUp, Observer: "gw2", Version: 2}}
	m, err = decode(encodeState(vs))
	if err != nil || !reflect.DeepEqual(m.state, vs) {
		t.Fatalf("state: %+v %v", m, err)
	}
}

func TestMessageGarbage(t *testing.T) {
	bad := []string{
		"",
		"V",
		"X{}",
		"V{",
		"V[]",
		`V{"b":"nohost","s":"down","o":"gw1","v":1}`,
		`V{"b":"127.0.0.2:0","s":"down","o":"gw1","v":1}`,
		`V{"b":"127.0.0.2:9000","s":"dead","o":"gw1","v":1}`,
		`V{"b":"127.0.0.2:9000","s":"down","o":"","v":1}`,
		`V{"b":"127.0.0.2:9000","s":"down","o":"gw1","v":0}`,
		`V{"b":"127.0.0.2:9000","s":"down","o":"gw1","v":-1}`,
		`L{"n":"","q":1,"l":{}}`,
		`L{"n":"gw1","q":1,"l":{"127.0.0.2:9000":-1}}`,
		`L{"n":"gw1","q":1,"l":{"x":1}}`,
		`L{"n":"gw1","q":1,"l":[1,2]}`,
		`S{"v":[{"b":"127.0.0.2:9000","s":"up","o":"gw1","v":1},{"b":"","s":"up","o":"gw1","v":1}]}`,
		"V" + string(bytes.Repeat([]byte{0xff}, 100)),
	}
	for _, b := range bad {
		if m, err := decode([]byte(b)); err == nil || !errors.Is(err, errBadMessage) {
			t.Errorf("decode(%q) = %+v, %v; want errBadMessage", b, m, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodeVerdict(Verdict{Backend: "127.0.0.3:9000", State: StateDown, Observer: "gw1", Version: 7}))
	f.Add(encodeLoad(LoadDigest{Node: "gw2", Seq: 1, InFlight: map[string]int{"127.0.0.2:9000": 3}}))
	f.Add(encodeState([]Verdict{{Backend: "127.0.0.2:9000", State: StateUp, Observer: "gw3", Version: 1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decode(b) // must not panic
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		var again []byte
		switch {
		case m.verdict != nil:
			again = encodeVerdict(*m.verdict)
		case m.load != nil:
			again = encodeLoad(*m.load)
		default:
			again = encodeState(m.state)
		}
		m2, err := decode(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoded %q: %+v %v, want %+v", again, m2, err, m)
		}
	})
}
