package certreload

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A change is picked up at the next check; a set that does not load is
// logged once however often it is looked at, and the old material stays;
// a missing file is a change like any other.
func TestFilesReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "v")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	var logs bytes.Buffer
	loads := 0
	f, err := Open("test material", []string{p}, func() (string, error) {
		loads++
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(string(b), "bad") {
			return "", errors.New("bad contents")
		}
		return string(b), nil
	}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	f.SetCheckEvery(0)
	if got := f.Current(); got != "one" {
		t.Fatalf("Current %q", got)
	}
	if loads != 1 {
		t.Fatalf("unchanged files loaded %d times", loads)
	}
	write("two")
	if got := f.Current(); got != "two" {
		t.Fatalf("after a change: %q", got)
	}
	write("bad1")
	for range 5 {
		if got := f.Current(); got != "two" {
			t.Fatalf("a bad set replaced the material: %q", got)
		}
	}
	if n := strings.Count(logs.String(), "do not load"); n != 1 {
		t.Fatalf("bad set logged %d times, want once:\n%s", n, logs.String())
	}
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), "bad contents") {
		t.Fatalf("Reload of a bad set: %v", err)
	}
	os.Remove(p)
	if got := f.Current(); got != "two" {
		t.Fatalf("a missing file replaced the material: %q", got)
	}
	write("three")
	if got := f.Current(); got != "three" {
		t.Fatalf("after the fix: %q", got)
	}

	// Without SetCheckEvery, files are looked at no more than every
	// CheckEvery: a change right after a check waits for the next one.
	f.SetCheckEvery(time.Hour)
	write("four")
	if got := f.Current(); got != "three" {
		t.Fatalf("looked at the files before the interval: %q", got)
	}
	if err := f.Reload(); err != nil || f.Current() != "four" {
		t.Fatalf("Reload: %v, %q", err, f.Current())
	}
}
