// render.go renders the server configuration templates of deploy/bench.

package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// TemplatesDir returns the directory of the configuration templates in the
// repository at repo: deploy/bench.
func TemplatesDir(repo string) string { return filepath.Join(repo, "deploy", "bench") }

// templateFuncs are the functions the templates may call.
var templateFuncs = template.FuncMap{"toml": tomlString}

// renderTemplate executes the template file dir/name with data and writes
// the result to dst.
func renderTemplate(dir, name, dst string, data any) error {
	src := filepath.Join(dir, name)
	t, err := template.New(name).Funcs(templateFuncs).Option("missingkey=error").ParseFiles(src)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return fmt.Errorf("template: %w", err)
	}
	if err := os.WriteFile(dst, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("template %s: %w", src, err)
	}
	return nil
}

// copyFile copies the file dir/name to dst.
func copyFile(dir, name, dst string) error {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
