// Package config reads fcgigate's TOML configuration file into the Config
// types of the packages it configures, applies their defaults and validates
// them, and reports every problem with the file name and line:
//
//	fcgigate.toml:12: pool.read_timeout: "5x" is not a duration (use e.g. "30s")
//	fcgigate.toml:7: unknown key "lisen" in [server] (did you mean "listen"?)
//
// The file has a [server] table, an optional [fastcgi] table (the FastCGI
// front), a [log] table and one [[pool]] table per
// backend pool, each with an optional [pool.params] table, and the optional
// [consul], [admin] and [register] tables of Consul discovery and
// self-registration (a pool then names a service instead of its backends);
// see deploy/fcgigate.example.toml for every key and its default. A key that is
// absent, or set to its zero value (0, "", []), takes its default.
//
// Value syntax beyond plain TOML:
//
//   - Durations are strings in time.ParseDuration syntax: "250ms", "30s", "1m30s".
//   - Sizes are integers (bytes) or strings with a unit: "512", "64KiB",
//     "1MiB", "1GiB" (powers of 1024) or "64KB", "1MB", "1GB" (powers of 1000).
//   - Every string value, including array elements, durations, sizes and
//     params, has ${NAME} replaced by the environment variable NAME; an unset
//     variable is an error (a set but empty one is not). "$${" stands for a
//     literal "${"; any other "$" is kept as it is. Keys are not expanded.
//
// This package reads files and the environment and nothing else; it starts
// no goroutines.
package config
