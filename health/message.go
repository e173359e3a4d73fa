package health

// message.go holds the encoding of what gateways gossip: verdicts, load
// digests and the push-pull state, and their validation on receipt.
//
// A message is one kind byte and a small JSON object with one-letter keys:
//
//	'V' verdict    {"b":"127.0.0.3:9000","s":"down","r":"dial: connection refused","o":"gw1","v":1732600000000000001}
//	'L' load       {"n":"gw1","q":42,"c":"cfg-3f2a","l":{"127.0.0.2:9000":3,"127.0.0.3:9000":2}}
//	'S' state      {"v":[verdict, ...]}   (push-pull: every verdict known)
//
// JSON keeps the messages readable in a packet capture and easy to check;
// with one-letter keys a verdict is about 100 bytes and a digest about 25
// bytes per backend, so a digest of 40 backends still fits in one UDP
// packet. Memberlist encrypts and authenticates them when a keyring is set.
// Anything that does not decode, or decodes to a value out of range, is
// dropped whole.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Message kinds, the first byte of each message.
const (
	msgVerdict byte = 'V'
	msgLoad    byte = 'L'
	msgState   byte = 'S'
)

// Limits on what a peer may send; a message past them is dropped.
const (
	maxMessage    = 1 << 20 // bytes: push-pull state included
	maxAddr       = 256     // bytes of a backend address or node name
	maxReason     = 256     // bytes of a reason
	maxBackends   = 4096    // entries in a digest or verdicts in a state
	maxInFlight   = 1 << 20 // requests on one backend
	maxConfigVers = 128     // bytes of a config version
)

// errBadMessage is wrapped by every decoding error.
var errBadMessage = errors.New("health: bad gossip message")

type wireVerdict struct {
	B string       `json:"b"`
	S VerdictState `json:"s"`
	R string       `json:"r,omitempty"`
	O string       `json:"o"`
	V uint64       `json:"v"`
}

type wireLoad struct {
	N string         `json:"n"`
	Q uint64         `json:"q"`
	C string         `json:"c,omitempty"`
	L map[string]int `json:"l"`
}

type wireState struct {
	V []wireVerdict `json:"v"`
}

func toWire(v Verdict) wireVerdict {
	return wireVerdict{B: v.Backend, S: v.State, R: v.Reason, O: v.Observer, V: v.Version}
}

func (w wireVerdict) verdict() (Verdict, error) {
	v := Verdict{Backend: w.B, State: w.S, Reason: w.R, Observer: w.O, Version: w.V}
	switch {
	case !validAddr(v.Backend):
		return v, fmt.Errorf("%w: verdict: backend %q is not host:port", errBadMessage, clip(v.Backend))
	case !v.State.valid():
		return v, fmt.Errorf("%w: verdict: state %q", errBadMessage, clip(string(v.State)))
	case v.Observer == "" || len(v.Observer) > maxAddr:
		return v, fmt.Errorf("%w: verdict: observer %q", errBadMessage, clip(v.Observer))
	case len(v.Reason) > maxReason:
		return v, fmt.Errorf("%w: verdict: reason of %d bytes", errBadMessage, len(v.Reason))
	case v.Version == 0:
		return v, fmt.Errorf("%w: verdict: version 0", errBadMessage)
	}
	return v, nil
}

func encodeVerdict(v Verdict) []byte { return encode(msgVerdict, toWire(v)) }

func encodeLoad(d LoadDigest) []byte {
	return encode(msgLoad, wireLoad{N: d.Node, Q: d.Seq, C: d.Config, L: d.InFlight})
}

func encodeState(vs []Verdict) []byte {
	w := wireState{V: make([]wireVerdict, len(vs))}
	for i, v := range vs {
		w.V[i] = toWire(v)
	}
	return encode(msgState, w)
}

func encode(kind byte, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("health: encode gossip message: " + err.Error()) // plain structs of strings and numbers
	}
	return append([]byte{kind}, b...)
}

// decoded is one message received: exactly one field is set.
type decoded struct {
	verdict *Verdict
	load    *LoadDigest
	state   []Verdict
}

// decode checks and decodes one message. It never panics, whatever buf
// holds.
func decode(buf []byte) (decoded, error) {
	var out decoded
	if len(buf) < 2 {
		return out, fmt.Errorf("%w: %d bytes", errBadMessage, len(buf))
	}
	if len(buf) > maxMessage {
		return out, fmt.Errorf("%w: %d bytes, more than %d", errBadMessage, len(buf), maxMessage)
	}
	body := buf[1:]
	switch buf[0] {
	case msgVerdict:
		var w wireVerdict
		if err := json.Unmarshal(body, &w); err != nil {
			return out, fmt.Errorf("%w: verdict: %w", errBadMessage, err)
		}
		v, err := w.verdict()
		if err != nil {
			return out, err
		}
		out.verdict = &v
	case msgLoad:
		var w wireLoad
		if err := json.Unmarshal(body, &w); err != nil {
			return out, fmt.Errorf("%w: load: %w", errBadMessage, err)
		}
		switch {
		case w.N == "" || len(w.N) > maxAddr:
			return out, fmt.Errorf("%w: load: node %q", errBadMessage, clip(w.N))
		case len(w.C) > maxConfigVers:
			return out, fmt.Errorf("%w: load: config version of %d bytes", errBadMessage, len(w.C))
		case len(w.L) > maxBackends:
			return out, fmt.Errorf("%w: load: %d backends", errBadMessage, len(w.L))
		}
		for addr, n := range w.L {
			if !validAddr(addr) || n < 0 || n > maxInFlight {
				return out, fmt.Errorf("%w: load: %q = %d", errBadMessage, clip(addr), n)
			}
		}
		if w.L == nil {
			w.L = map[string]int{}
		}
		out.load = &LoadDigest{Node: w.N, Seq: w.Q, Config: w.C, InFlight: w.L}
	case msgState:
		var w wireState
		if err := json.Unmarshal(body, &w); err != nil {
			return out, fmt.Errorf("%w: state: %w", errBadMessage, err)
		}
		if len(w.V) > maxBackends*16 {
			return out, fmt.Errorf("%w: state: %d verdicts", errBadMessage, len(w.V))
		}
		out.state = make([]Verdict, 0, len(w.V))
		for _, wv := range w.V {
			v, err := wv.verdict()
			if err != nil {
				return decoded{}, err
			}
			out.state = append(out.state, v)
		}
	default:
		return out, fmt.Errorf("%w: unknown kind 0x%02x", errBadMessage, buf[0])
	}
	return out, nil
}

// validAddr reports whether s is host:port with a port number.
func validAddr(s string) bool {
	if s == "" || len(s) > maxAddr {
		return false
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

// clip shortens s for a log line.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
