// procstat.go reads processes' CPU time and family from /proc/<pid>/stat.

package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the times in /proc/<pid>/stat (USER_HZ, what
// `getconf CLK_TCK` prints). The kernel reports them in this unit whatever
// its internal tick rate, and it is 100 on every Linux architecture Go
// supports, so it is a constant here rather than a cgo sysconf call.
const userHZ = 100

// procStat holds the fields of /proc/<pid>/stat that the lab uses.
type procStat struct {
	PID   int
	State byte // R, S, D, Z, ...
	PPID  int
	PGRP  int
	// CPU time in clock ticks (1/userHZ s): the process's own, user and
	// system, and that of its children it has waited for.
	UTime, STime, CUTime, CSTime uint64
}

// CPU is the process's own CPU time plus that of its reaped children. The
// children's share keeps a worker's CPU time in the sum after it exits and
// its master reaps it.
func (s procStat) CPU() time.Duration {
	ticks := s.UTime + s.STime + s.CUTime + s.CSTime
	return time.Duration(ticks) * (time.Second / userHZ)
}

var errStatFormat = errors.New("lab: malformed /proc/<pid>/stat")

// parseProcStat parses a /proc/<pid>/stat line:
//
//	pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt
//	majflt cmajflt utime stime cutime cstime ...
//
// comm may hold spaces and parentheses, so the fields after it are counted
// from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("%w: no (comm): %.60q", errStatFormat, b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return procStat{}, fmt.Errorf("%w: pid: %w", errStatFormat, err)
	}
	f := bytes.Fields(b[end+1:])
	// f[0] is field 3 (state); cstime is field 17.
	if len(f) < 15 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("%w: %d fields after comm: %.60q", errStatFormat, len(f), b)
	}
	s := procStat{PID: pid, State: f[0][0]}
	ints := []*int{&s.PPID, &s.PGRP}
	for i, p := range ints {
		if *p, err = strconv.Atoi(string(f[1+i])); err != nil {
			return procStat{}, fmt.Errorf("%w: field %d: %w", errStatFormat, 4+i, err)
		}
	}
	ticks := []*uint64{&s.UTime, &s.STime, &s.CUTime, &s.CSTime}
	for i, p := range ticks {
		// cutime and cstime are signed in the kernel (long) but never
		// negative in practice.
		if *p, err = strconv.ParseUint(string(f[11+i]), 10, 64); err != nil {
			return procStat{}, fmt.Errorf("%w: field %d: %w", errStatFormat, 14+i, err)
		}
	}
	return s, nil
}

// readProcStat reads /proc/<pid>/stat.
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// allProcs reads the stat of every process in /proc. Processes that exit
// while it runs are left out.
func allProcs() ([]procStat, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []procStat
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readProcStat(pid)
		if err != nil {
			continue // exited meanwhile, or not readable
		}
		out = append(out, s)
	}
	return out, nil
}

// groupMembers returns the PIDs of the live (not zombie) processes in
// process group pgid.
func groupMembers(pgid int) ([]int, error) {
	procs, err := allProcs()
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, s := range procs {
		if s.PGRP == pgid && s.State != 'Z' && s.State != 'X' {
			pids = append(pids, s.PID)
		}
	}
	return pids, nil
}

// descendants returns root and every process below it in the parent tree
// of procs, root first. (The kernel's /proc/<pid>/task/<tid>/children would
// say the same but needs CONFIG_PROC_CHILDREN, which many kernels lack.)
func descendants(procs []procStat, root int) []procStat {
	children := make(map[int][]procStat)
	var out []procStat
	for _, s := range procs {
		children[s.PPID] = append(children[s.PPID], s)
		if s.PID == root {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil
	}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i].PID]...)
	}
	return out
}

// TreeCPU returns the CPU time used so far by process pid and all its
// descendants (for nginx: the master and its workers; for php-fpm: the
// master and its children), with the number of processes counted. Take it
// before and after a measurement and subtract.
func TreeCPU(pid int) (time.Duration, int, error) {
	procs, err := allProcs()
	if err != nil {
		return 0, 0, err
	}
	tree := descendants(procs, pid)
	if len(tree) == 0 {
		return 0, 0, fmt.Errorf("cpu of pid %d: no such process", pid)
	}
	var sum time.Duration
	for _, s := range tree {
		sum += s.CPU()
	}
	return sum, len(tree), nil
}
