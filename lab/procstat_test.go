package lab

import (
	"errors"
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want procStat
		err  bool
	}{
		{
			name: "nginx worker",
			in:   "4242 (nginx) S 4240 4240 20120 0 -1 4194624 1200 0 0 0 731 412 0 0 20 0 1 0 48484 3133440 359 18446744073709551615 0 0 0\n",
			want: procStat{PID: 4242, State: 'S', PPID: 4240, PGRP: 4240, UTime: 731, STime: 412},
		},
		{
			name: "comm with spaces and parentheses",
			in:   "125 (php-fpm: pool (a) b) R 123 123 123 0 -1 0 0 0 0 0 5 6 7 8 20 0 1 0",
			want: procStat{PID: 125, State: 'R', PPID: 123, PGRP: 123, UTime: 5, STime: 6, CUTime: 7, CSTime: 8},
		},
		{
			name: "zombie",
			in:   "9 (x) Z 1 9 9 0 -1 0 0 0 0 0 1 2 0 0",
			want: procStat{PID: 9, State: 'Z', PPID: 1, PGRP: 9, UTime: 1, STime: 2},
		},
		{name: "too few fields", in: "126 (x) S 1 126 126 0 -1 0 0 0 0 0 1", err: true},
		{name: "no comm", in: "garbage", err: true},
		{name: "bad pid", in: "x (a) S 1 1 1 0 -1 0 0 0 0 0 1 2 0 0", err: true},
		{name: "bad utime", in: "1 (a) S 1 1 1 0 -1 0 0 0 0 0 u 2 0 0", err: true},
		{name: "long state", in: "1 (a) SS 1 1 1 0 -1 0 0 0 0 0 1 2 0 0", err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStat([]byte(tt.in))
			if tt.err {
				if !errors.Is(err, errStatFormat) {
					t.Fatalf("parseProcStat = %+v, %v; want errStatFormat", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseProcStat = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestProcStatCPU(t *testing.T) {
	s := procStat{UTime: 150, STime: 50, CUTime: 20, CSTime: 30}
	if got, want := s.CPU(), 2500*time.Millisecond; got != want {
		t.Fatalf("CPU = %v, want %v", got, want)
	}
}

func TestDescendants(t *testing.T) {
	procs := []procStat{
		{PID: 1, PPID: 0},
		{PID: 10, PPID: 1}, // master
		{PID: 11, PPID: 10},
		{PID: 12, PPID: 10},
		{PID: 13, PPID: 12}, // grandchild
		{PID: 20, PPID: 1},  // unrelated
	}
	var got []int
	for _, s := range descendants(procs, 10) {
		got = append(got, s.PID)
	}
	want := []int{10, 11, 12, 13}
	if len(got) != len(want) {
		t.Fatalf("descendants = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("descendants = %v, want %v", got, want)
		}
	}
	if d := descendants(procs, 99); d != nil {
		t.Fatalf("descendants of missing pid = %v, want nil", d)
	}
}

// TestReadProcStatSelf reads the test's own entry, which needs no server.
func TestReadProcStatSelf(t *testing.T) {
	s, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != os.Getpid() || s.PPID != os.Getppid() {
		t.Fatalf("readProcStat(self) = %+v; pid %d ppid %d", s, os.Getpid(), os.Getppid())
	}
	if _, n, err := TreeCPU(os.Getpid()); err != nil || n < 1 {
		t.Fatalf("TreeCPU(self) = %d procs, %v", n, err)
	}
}
