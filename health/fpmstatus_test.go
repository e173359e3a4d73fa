package health

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fpmJSON is what php-fpm 8.2 printed for /fpm-status?json, the probe being
// the one active process of a static pool of four.
const fpmJSON = `{"pool":"fpmtest","process manager":"static","start time":1795673723,"start since":0,"accepted conn":6,"listen queue":0,"max listen queue":0,"listen queue len":4096,"idle processes":3,"active processes":1,"total processes":4,"max active processes":2,"max children reached":0,"slow requests":0}`

func TestParseFPMStatus(t *testing.T) {
	got, err := ParseFPMStatus([]byte(fpmJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := FPMStatus{
		Pool: "fpmtest", ProcessManager: "static", StartTime: time.Unix(1795673723, 0),
		AcceptedConn: 6, ListenQueueLen: 4096, IdleProcesses: 3, ActiveProcesses: 1,
		TotalProcesses: 4, MaxActiveProcesses: 2,
	}
	if got != want {
		t.Fatalf("ParseFPMStatus =\n%+v\nwant\n%+v", got, want)
	}
}

func TestParseFPMStatusAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want func(FPMStatus) bool
	}{
		{"white space and newline", "\n " + fpmJSON + "\n", func(s FPMStatus) bool { return s.TotalProcesses == 4 }},
		{"unknown fields ignored", `{"listen queue":2,"idle processes":0,"active processes":5,"total processes":5,"memory peak":123,"processes":[{"pid":1}]}`,
			func(s FPMStatus) bool { return s.ListenQueue == 2 && s.ActiveProcesses == 5 && s.Pool == "" }},
		{"optional fields missing", `{"listen queue":0,"idle processes":1,"active processes":1,"total processes":2}`,
			func(s FPMStatus) bool { return s.StartTime.IsZero() && s.TotalProcesses == 2 }},
		{"big counters", `{"accepted conn":18446744073709551,"slow requests":9007199254740993,"listen queue":0,"idle processes":1,"active processes":1,"total processes":2}`,
			func(s FPMStatus) bool {
				return s.AcceptedConn == 18446744073709551 && s.SlowRequests == 9007199254740993
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseFPMStatus([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(s) {
				t.Fatalf("unexpected result %+v", s)
			}
		})
	}
}

func TestParseFPMStatusRejects(t *testing.T) {
	tests := []struct {
		name, in, msg string
	}{
		{"empty", "", "unexpected end"},
		{"garbage", "pool: www\nprocess manager: static\n", "invalid character"},
		{"html", "<html><body>File not found.</body></html>", "invalid character"},
		{"truncated", fpmJSON[:len(fpmJSON)/2], "unexpected end"},
		{"truncated by one byte", fpmJSON[:len(fpmJSON)-1], "unexpected end"},
		{"trailing garbage", fpmJSON + "xyz", "invalid character"},
		{"two objects", fpmJSON + fpmJSON, "invalid character"},
		{"null", "null", "missing"},
		{"empty object", "{}", `missing ["listen queue" "idle processes" "active processes" "total processes"]`},
		{"array", "[1,2]", "cannot unmarshal array"},
		{"string", `"pong"`, "cannot unmarshal string"},
		{"count as string", `{"listen queue":"0","idle processes":1,"active processes":1,"total processes":2}`, "cannot unmarshal string"},
		{"fractional count", `{"listen queue":0.5,"idle processes":1,"active processes":1,"total processes":2}`, "cannot unmarshal number 0.5"},
		{"negative count", `{"listen queue":0,"idle processes":-1,"active processes":1,"total processes":2}`, `"idle processes" is -1`},
		{"overflow", `{"listen queue":0,"idle processes":1,"active processes":1,"total processes":99999999999999999999999}`, "cannot unmarshal number"},
		{"one field missing", `{"listen queue":0,"idle processes":1,"total processes":2}`, `missing ["active processes"]`},
		{"pool not a string", `{"pool":5,"listen queue":0,"idle processes":1,"active processes":1,"total processes":2}`, "cannot unmarshal number"},
		{"binary", "\x00\x01\xff\xfe{", "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseFPMStatus([]byte(tt.in))
			if !errors.Is(err, ErrStatusFormat) {
				t.Fatalf("ParseFPMStatus(%q) = %+v, %v; want ErrStatusFormat", tt.in, s, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
			if s != (FPMStatus{}) {
				t.Errorf("a failed parse returned %+v, want the zero value", s)
			}
		})
	}
}

func TestFPMStatusLoad(t *testing.T) {
	tests := []struct {
		name                     string
		s                        FPMStatus
		busy, penalty, maxConcur int
	}{
		// The probe is the only active process.
		{"idle static", FPMStatus{ProcessManager: "static", IdleProcesses: 3, ActiveProcesses: 1, TotalProcesses: 4}, 0, 0, 4},
		// Under load the scoreboard's total is no guide: limit unknown.
		{"one spare", FPMStatus{ProcessManager: "static", IdleProcesses: 1, ActiveProcesses: 3, TotalProcesses: 4}, 2, 0, 0},
		{"no idle worker", FPMStatus{ProcessManager: "static", IdleProcesses: 0, ActiveProcesses: 4, TotalProcesses: 4}, 3, 0, 0},
		{"queue", FPMStatus{ProcessManager: "static", ListenQueue: 5, IdleProcesses: 0, ActiveProcesses: 4, TotalProcesses: 4}, 3, 5, 0},
		{"miscounted under load", FPMStatus{ProcessManager: "static", IdleProcesses: 1, ActiveProcesses: 54, TotalProcesses: 55}, 53, 0, 0},
		{"dynamic: limit unknown", FPMStatus{ProcessManager: "dynamic", IdleProcesses: 1, ActiveProcesses: 1, TotalProcesses: 2}, 0, 0, 0},
		{"ondemand, no workers", FPMStatus{ProcessManager: "ondemand"}, 0, 0, 0},
		{"zero", FPMStatus{}, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Busy(); got != tt.busy {
				t.Errorf("Busy = %d, want %d", got, tt.busy)
			}
			if got := tt.s.Penalty(); got != tt.penalty {
				t.Errorf("Penalty = %d, want %d", got, tt.penalty)
			}
			if got := tt.s.MaxConcurrent(); got != tt.maxConcur {
				t.Errorf("MaxConcurrent = %d, want %d", got, tt.maxConcur)
			}
		})
	}
}

func FuzzParseFPMStatus(f *testing.F) {
	f.Add([]byte(fpmJSON))
	f.Add([]byte(`{"listen queue":0,"idle processes":1,"active processes":1,"total processes":2}`))
	f.Add([]byte(fpmJSON[:40]))
	f.Add([]byte("pool: www\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseFPMStatus(b)
		if err != nil {
			if !errors.Is(err, ErrStatusFormat) {
				t.Fatalf("error %v does not wrap ErrStatusFormat", err)
			}
			return
		}
		if s.ListenQueue < 0 || s.IdleProcesses < 0 || s.ActiveProcesses < 0 || s.TotalProcesses < 0 || s.AcceptedConn < 0 {
			t.Fatalf("accepted negative counts: %+v", s)
		}
		if s.Penalty() < 0 || s.Busy() < 0 || s.MaxConcurrent() < 0 {
			t.Fatalf("negative load signals from %+v", s)
		}
	})
}
