package catalog

import "os"

// crashAt names the step at which CrashPoint kills this process, for the
// tests that show a publish killed at any step is completed by a re-run.
// Empty (the normal case) disables it.
var crashAt = os.Getenv("SWARMSHIP_CRASH_AT")

// CrashPoint kills the process with SIGKILL, as `kill -9` would, when the
// environment variable SWARMSHIP_CRASH_AT names step. Steps of a publish:
// payload, torrent, manifest, commit, targets, snapshot, place.
func CrashPoint(step string) {
	if crashAt != "" && crashAt == step {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill() // SIGKILL on Unix
		}
		select {} // SIGKILL cannot be caught; wait for it to land
	}
}
