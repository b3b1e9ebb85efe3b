// Package policy holds the branch-network rules of a swarmship agent as pure
// functions: weekly schedules in a site's time zone, rate-limit profiles,
// pre-seed (off-peak) download windows, cache quotas and garbage collection,
// P2P modes, metered/battery throttling and tenancy/residency/locality.
//
// Nothing here does I/O, reads the clock or starts goroutines: the caller
// passes the current time, the *time.Location (time.LoadLocation reads
// tzdata, so the caller does that), the contents of sysfs files and the
// state of its cache. That keeps every rule testable with a table.
//
// Config types carry yaml tags, and the scalar types (Window, Rate, Mode)
// implement encoding.TextUnmarshaler, so gopkg.in/yaml.v3 decodes
// "Mon-Fri 08:00-18:00", "2Mbit" and "download-only" straight into them
// with validation.
package policy
