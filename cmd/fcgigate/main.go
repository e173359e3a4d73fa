// Command fcgigate is the fcgigate gateway: an HTTP front that balances
// requests over pools of PHP-FPM backends spoken to over FastCGI.
//
// Usage:
//
//	fcgigate serve -config FILE      run the gateway
//	fcgigate validate -config FILE   check a configuration file
//	fcgigate version                 print the version
//
// "fcgigate COMMAND -h" describes each command.
package main

// main.go dispatches to the subcommands; each lives in its own file as a
// function of its arguments and output streams, so tests run it in-process.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// version is set at link time: -ldflags "-X main.version=v1.2.3". When it
// is not, the module version from the build info is used, if any.
var version = "dev"

const usage = `fcgigate is a load-balancing FastCGI gateway.

Usage:
  fcgigate serve -config FILE      run the gateway
  fcgigate validate -config FILE   check a configuration file
  fcgigate version                 print the version

Run "fcgigate COMMAND -h" for a command's flags.
`

// gcPercent is the garbage collector's target (as GOGC) when GOGC is not
// set: the heap may grow to 5 times what is live before a collection. A
// gateway's live heap is small, a few MB (buffers are pooled and reused),
// while it allocates some 2 KB per request, so at Go's default of 100 it
// collected 10 times a second at 25,000 requests a second. Each time the
// collector's worker took one of the Ps for about a millisecond, and the
// requests queued behind it made fcgigate's slowest 1% slower. At 400
// that happens a quarter as often, for about 16 MB more memory at peak.
const gcPercent = 400

// setGCPercent applies gcPercent unless getenv("GOGC") is set (then Go
// has applied it), and returns the percent in force.
func setGCPercent(getenv func(string) string) int {
	if getenv("GOGC") != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return old
	}
	debug.SetGCPercent(gcPercent)
	return gcPercent
}

func main() {
	setGCPercent(os.Getenv)
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command in args and returns the process's exit code: 0 on
// success, 1 on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "version":
		return printVersion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "fcgigate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// parseFlags parses a subcommand's flags, taking no positional arguments.
// Help (-h) goes to stdout, a usage error to stderr. If ok is false the
// command should return code.
func parseFlags(fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = func() {
		fmt.Fprint(&out, help)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
		return 0, false
	case err != nil:
		stderr.Write(out.Bytes())
		return 2, false
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "fcgigate %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

const versionHelp = `Usage: fcgigate version

Prints the version of fcgigate and of the Go toolchain that built it.
`

func printVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fs, versionHelp, args, stdout, stderr); !ok {
		return code
	}
	v := version
	if info, ok := debug.ReadBuildInfo(); ok && v == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	fmt.Fprintf(stdout, "fcgigate %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}
