// validate.go is "fcgigate validate": load a configuration file and report
// whether it is good.

package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/fcgigate/fcgigate/config"
)

const validateHelp = `Usage: fcgigate validate -config FILE

Checks a configuration file the way "serve" would load it, with ${VAR}
expanded from the environment, and prints "FILE: ok" or every problem found,
each as FILE:LINE: message. Exits 1 if the file is not valid.

Flags:
`

func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	path := fs.String("config", "", "the configuration `file` (required)")
	if code, ok := parseFlags(fs, validateHelp, args, stdout, stderr); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "fcgigate validate: -config is required")
		return 2
	}
	if _, err := config.Load(*path); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return 0
}
