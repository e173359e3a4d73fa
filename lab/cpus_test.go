package lab

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// needTaskset returns taskset's path, or skips the test where it is
// missing, except under CI.
func needTaskset(t *testing.T) string {
	t.Helper()
	p, err := TasksetBinary()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

func TestPinnedCommand(t *testing.T) {
	// Without CPUs the command is left alone, and taskset is not needed.
	bin, args, err := pinnedCommand("", "/usr/bin/wrk", "-t2", "http://127.0.0.1:1/")
	if err != nil || bin != "/usr/bin/wrk" || !slices.Equal(args, []string{"-t2", "http://127.0.0.1:1/"}) {
		t.Errorf(`pinnedCommand("") = %q %q, %v; want /usr/bin/wrk ["-t2" "http://127.0.0.1:1/"]`, bin, args, err)
	}
	bin, args, err = pinnedCommand("", "/usr/sbin/nginx")
	if err != nil || bin != "/usr/sbin/nginx" || len(args) != 0 {
		t.Errorf(`pinnedCommand("", no args) = %q %q, %v`, bin, args, err)
	}

	taskset := needTaskset(t)
	tests := []struct {
		cpus string
		bin  string
		args []string
		want []string
	}{
		{"1", "/usr/sbin/nginx", []string{"-p", "/tmp/x/", "-c", "nginx.conf"}, []string{"-c", "1", "/usr/sbin/nginx", "-p", "/tmp/x/", "-c", "nginx.conf"}},
		{"0", "/usr/sbin/php-fpm8.2", nil, []string{"-c", "0", "/usr/sbin/php-fpm8.2"}},
		{"0-1,3", "bin/fcgigate", []string{"serve"}, []string{"-c", "0-1,3", "bin/fcgigate", "serve"}},
	}
	for _, tt := range tests {
		in := slices.Clone(tt.args)
		bin, args, err := pinnedCommand(tt.cpus, tt.bin, in...)
		if err != nil || bin != taskset || !slices.Equal(args, tt.want) {
			t.Errorf("pinnedCommand(%q, %q, %q) = %q %q, %v; want %q %q", tt.cpus, tt.bin, tt.args, bin, args, err, taskset, tt.want)
		}
		if !slices.Equal(in, tt.args) {
			t.Errorf("pinnedCommand changed its args to %q", in)
		}
	}
}

// TestPinnedCommandRuns runs a pinned shell, which must see only its CPU
// and have the PID it was started with: taskset execs the program, so the
// lab's stop by PID reaches the program itself.
func TestPinnedCommandRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	needTaskset(t)
	// The first CPU the test itself may run on.
	own, err := cpusAllowed(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cpu := strings.FieldsFunc(own, func(r rune) bool { return r == '-' || r == ',' })[0]
	bin, args, err := pinnedCommand(cpu, "/bin/sh", "-c", `echo $$; grep Cpus_allowed_list /proc/self/status`)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q, want a PID and the Cpus_allowed_list line", out)
	}
	if lines[0] != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("the shell's PID is %s, the started process's %d", lines[0], cmd.Process.Pid)
	}
	if got := strings.Fields(lines[1]); len(got) != 2 || got[1] != cpu {
		t.Errorf("the shell may run on %q, want CPU %s", lines[1], cpu)
	}
}

func TestCPUsAllowed(t *testing.T) {
	got, err := cpusAllowed(os.Getpid())
	if err != nil || got == "" {
		t.Fatalf("cpusAllowed(self) = %q, %v", got, err)
	}
	if err := checkTreeCPUs(os.Getpid(), got); err != nil {
		t.Errorf("checkTreeCPUs(self, %q): %v", got, err)
	}
	if err := checkTreeCPUs(os.Getpid(), got+",99"); err == nil {
		t.Errorf("checkTreeCPUs(self, %q) found nothing wrong", got+",99")
	}
}

func TestCPUCount(t *testing.T) {
	for list, want := range map[string]int{"1": 1, "0-1": 2, "0-3,6": 5, "2,4": 2, "": 1, "x": 1, "3-1": 1} {
		if got := cpuCount(list); got != want {
			t.Errorf("cpuCount(%q) = %d, want %d", list, got, want)
		}
	}
	if got := (RelayOptions{}).Workers(); got != "auto" {
		t.Errorf("unpinned relay workers = %q, want auto", got)
	}
	if got := (RelayOptions{CPUs: "1"}).Workers(); got != "1" {
		t.Errorf("relay pinned to one CPU: workers = %q, want 1", got)
	}
}
