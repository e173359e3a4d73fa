// cpus.go pins the processes the lab starts to CPUs, for the benchmark's
// split mode (BenchConfig.Split).

package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// The CPUs of BenchConfig.Split: the application side (wrk, Apache,
// php-fpm) on one core, the hop (fcgigate, the relay) on the other, as if
// the gateway ran on a one-core host of its own.
const (
	splitAppCPUs = "0"
	splitHopCPUs = "1"
)

// TasksetBinary returns the path of util-linux's taskset.
func TasksetBinary() (string, error) {
	p, err := findBinary("taskset")
	if err != nil {
		return "", fmt.Errorf("taskset, which pins processes to CPUs, is missing (Debian: apt-get install util-linux): %w", err)
	}
	return p, nil
}

// pinnedCommand returns the program and arguments that run bin with args
// on the CPUs in cpus, a list as taskset -c takes it ("1", "0-3,6"): bin
// and args themselves if cpus is empty, else taskset -c cpus bin args....
// taskset sets its own affinity and execs bin, so bin starts pinned (there
// is no moment in which it runs elsewhere), keeps taskset's PID and passes
// the affinity on to every process and thread it starts.
func pinnedCommand(cpus, bin string, args ...string) (string, []string, error) {
	if cpus == "" {
		return bin, args, nil
	}
	taskset, err := TasksetBinary()
	if err != nil {
		return "", nil, fmt.Errorf("pin %s to CPUs %s: %w", bin, cpus, err)
	}
	return taskset, append([]string{"-c", cpus, bin}, args...), nil
}

// cpuCount returns how many CPUs a list such as taskset -c takes ("1",
// "0-3,6") names; at least 1, so that a list it cannot read still counts
// as one core.
func cpuCount(list string) int {
	n := 0
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, errA := strconv.Atoi(lo)
		b, errB := strconv.Atoi(hi)
		switch {
		case !isRange && errA == nil:
			n++
		case isRange && errA == nil && errB == nil && b >= a:
			n += b - a + 1
		}
	}
	return max(n, 1)
}

// cpusAllowed returns the CPUs process pid may run on, as the kernel lists
// them in /proc/<pid>/status ("1", "0-1").
func cpusAllowed(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("/proc/%d/status: no Cpus_allowed_list", pid)
}

// checkTreeCPUs returns an error unless process pid and all its
// descendants (an Apache's children, php-fpm's or nginx's workers) may
// run on exactly the CPUs in want, in the kernel's notation.
func checkTreeCPUs(pid int, want string) error {
	procs, err := allProcs()
	if err != nil {
		return err
	}
	tree := descendants(procs, pid)
	if len(tree) == 0 {
		return fmt.Errorf("cpus of pid %d: no such process", pid)
	}
	for _, s := range tree {
		got, err := cpusAllowed(s.PID)
		if errors.Is(err, fs.ErrNotExist) && s.PID != pid {
			continue // a child that exited meanwhile
		}
		if err != nil {
			return fmt.Errorf("cpus of pid %d (under %d): %w", s.PID, pid, err)
		}
		if got != want {
			return fmt.Errorf("pid %d (under %d) may run on CPUs %s, want %s", s.PID, pid, got, want)
		}
	}
	return nil
}
