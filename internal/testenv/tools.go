// Package testenv starts and finds the real programs that tests run
// against (an S3 server, other BitTorrent clients). When a program is
// missing, tests skip on a developer machine and fail in CI (CI=true), so
// that CI never passes by skipping.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// InCI reports whether the tests run in CI, i.e. $CI is a true value.
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// FindTool returns the path of the executable name, looked up on $PATH and
// then in $SWARMSHIP_TOOLS, or "" if it is in neither.
func FindTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if dir := os.Getenv("SWARMSHIP_TOOLS"); dir != "" {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// RequireTool returns the path of the executable name (see FindTool). If it
// is missing the test is skipped, or fails when running in CI.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if p := FindTool(name); p != "" {
		return p
	}
	msg := name + " not found on $PATH or in $SWARMSHIP_TOOLS (scripts/test.sh installs it)"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
