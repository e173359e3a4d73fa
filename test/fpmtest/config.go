// config.go holds Options and writes the php.ini, php-fpm.conf and pool
// directives that a master started by Start runs with.

package fpmtest

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Options configures one php-fpm master with a single pool.
type Options struct {
	// Addr is the listen address, "host:port" with a loopback host, for
	// example FreePort(t, "127.0.0.2"). Required.
	Addr string

	// DocRoot is the directory the workers chdir to; scripts are addressed
	// by absolute SCRIPT_FILENAME, so FPM itself needs no docroot. Empty
	// means PHPDir().
	DocRoot string

	// MaxChildren is the number of workers (pm = static). 0 means 4: enough
	// for concurrency tests, few enough for 2-core CI machines.
	MaxChildren int

	// MaxRequests is pm.max_requests, the requests a worker serves before
	// it is replaced. 0 means unlimited.
	MaxRequests int

	// RequestTerminateTimeout is request_terminate_timeout: a worker still
	// running a request after this long is killed by the master, which
	// makes FPM close the connection without an END_REQUEST. FPM counts
	// whole seconds, so a positive value is rounded up to a second or more.
	// 0 means no limit.
	RequestTerminateTimeout time.Duration

	// Extra holds more pool directives, for example
	// {"php_admin_value[memory_limit]": "32M", "clear_env": "no"}. A key that
	// is also one of the defaults in poolDefaults replaces it.
	Extra map[string]string
}

// withDefaults returns o with empty fields filled in.
func (o Options) withDefaults() Options {
	if o.DocRoot == "" {
		o.DocRoot = PHPDir()
	}
	if o.MaxChildren <= 0 {
		o.MaxChildren = 4
	}
	return o
}

// phpINI is the php.ini every master runs with (passed with -c), so the
// host's /etc/php/8.2/fpm/php.ini does not change what tests see. The
// conf.d directory of the package is still scanned, which only loads
// extensions (opcache, ctype, ...).
const phpINI = `; written by fpmtest
; Errors never go into response bodies; with no error_log set, FPM sends
; them to the web server as FastCGI STDERR records ("PHP message: ...").
display_errors = Off
display_startup_errors = Off
html_errors = Off
log_errors = On
error_reporting = E_ALL
; No PHP output buffer: echo goes to FPM's FastCGI buffer and flush() sends
; it as a STDOUT record at once. implicit_flush would flush after every echo.
output_buffering = 0
implicit_flush = Off
zlib.output_compression = Off
expose_php = Off
short_open_tag = Off
variables_order = "GPCS"
register_argc_argv = Off
request_order = "GP"
memory_limit = 128M
max_execution_time = 30
date.timezone = UTC
; PHP's default, written out because it changes SCRIPT_NAME and PATH_INFO:
; when SCRIPT_FILENAME names no file, FPM walks it back to one that exists
; and moves the rest into PATH_INFO.
cgi.fix_pathinfo = 1
`

// poolDefaults are the pool directives every master starts with; Options
// fields and Extra are applied over them.
func poolDefaults() map[string]string {
	return map[string]string{
		"pm":                      "static",
		"ping.path":               "/fpm-ping",
		"ping.response":           "pong",
		"pm.status_path":          "/fpm-status",
		"catch_workers_output":    "yes",
		"decorate_workers_output": "no",
		// The workers' environment is emptied so that $_SERVER holds only
		// the FastCGI params the gateway sent, plus PHP's own keys and the
		// USER and HOME that FPM always sets for the pool user. With
		// "no", the test runner's environment, including any HTTP_PROXY,
		// would show up in $_SERVER and spoil the CGI param checks.
		"clear_env":                               "yes",
		"security.limit_extensions":               ".php",
		"php_admin_value[upload_max_filesize]":    "64M",
		"php_admin_value[post_max_size]":          "64M",
		"php_admin_value[output_buffering]":       "0",
		"php_admin_value[max_file_uploads]":       "20",
		"php_admin_flag[zlib.output_compression]": "off",
	}
}

// files are the paths of what Start writes in the master's directory.
type files struct {
	dir, ini, conf, pid, errorLog, accessLog string
}

func newFiles(dir string) files {
	return files{
		dir:       dir,
		ini:       filepath.Join(dir, "php.ini"),
		conf:      filepath.Join(dir, "php-fpm.conf"),
		pid:       filepath.Join(dir, "php-fpm.pid"),
		errorLog:  filepath.Join(dir, "php-fpm.log"),
		accessLog: filepath.Join(dir, "access.log"),
	}
}

// write writes php.ini and php-fpm.conf for o into f.dir.
func (f files) write(o Options) error {
	if err := os.WriteFile(f.ini, []byte(phpINI), 0o644); err != nil {
		return fmt.Errorf("write php.ini: %w", err)
	}
	if err := os.WriteFile(f.conf, []byte(f.fpmConf(o)), 0o644); err != nil {
		return fmt.Errorf("write php-fpm.conf: %w", err)
	}
	return nil
}

// fpmConf renders php-fpm.conf with one pool named "fpmtest".
func (f files) fpmConf(o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "; written by fpmtest\n[global]\n")
	fmt.Fprintf(&b, "pid = %s\n", f.pid)
	fmt.Fprintf(&b, "error_log = %s\n", f.errorLog)
	// notice is needed: Start waits for "ready to handle connections".
	fmt.Fprintf(&b, "log_level = notice\n")
	fmt.Fprintf(&b, "daemonize = no\n")
	// How long SIGQUIT (Stop) lets workers finish their requests before the
	// master escalates to SIGTERM and SIGKILL.
	fmt.Fprintf(&b, "process_control_timeout = 10s\n")

	pool := poolDefaults()
	pool["listen"] = o.Addr
	pool["chdir"] = o.DocRoot
	pool["pm.max_children"] = fmt.Sprint(o.MaxChildren)
	pool["pm.max_requests"] = fmt.Sprint(o.MaxRequests)
	pool["request_terminate_timeout"] = fmt.Sprint(ceilSeconds(o.RequestTerminateTimeout))
	pool["access.log"] = f.accessLog
	// %f is SCRIPT_FILENAME as FPM resolved it; %Q%q the query string.
	pool["access.format"] = `"%R %m %r%Q%q %s %{mili}dms script=%f"`
	if os.Geteuid() == 0 {
		// Allowed by --allow-to-run-as-root. As another user FPM ignores
		// user and group with a notice, so they are left out.
		pool["user"] = "root"
		pool["group"] = "root"
	}
	for k, v := range o.Extra {
		pool[k] = v
	}

	fmt.Fprintf(&b, "\n[fpmtest]\n")
	for _, k := range slices.Sorted(maps.Keys(pool)) {
		fmt.Fprintf(&b, "%s = %s\n", k, pool[k])
	}
	return b.String()
}

// ceilSeconds rounds d up to whole seconds; 0 or less stays 0.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(math.Ceil(d.Seconds()))
}
