// Package selfupdate replaces the running swarmship binary with a newer
// one the agent downloaded and verified like any release. The new binary
// is tried first as a child process from a staged copy next to the
// installed one; only once it reports healthy is it renamed over the
// installed path (one rename in the same directory), the old one kept as
// <binary>.prev. A kill -9 at any step leaves the installed path holding
// either the old binary or the new one that was proven healthy.
package selfupdate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// HealthEnv names the file a binary on trial writes once healthy (its
// first successful catalog refresh, status API up). A process that sees
// it set is on trial and does not update itself.
const HealthEnv = "SWARMSHIP_SELFUPDATE_HEALTH"

// MaxAttempts bounds trials interrupted by a crash of the trying agent
// (kill -9, power loss) before the version counts as bad.
const MaxAttempts = 3

// State is what the agent remembers about updating itself; it lives in
// the cache directory and only the process between two agent runs writes it.
type State struct {
	// Bad maps versions that failed their trial to why; they are not
	// tried again until cleared (`swarmship selfupdate clear`).
	Bad map[string]string `json:"bad,omitempty"`
	// Trial is the version being tried; set before the trial starts, so
	// a crash mid-trial is noticed at the next start.
	Trial    string `json:"trial,omitempty"`
	From     string `json:"from,omitempty"` // version the trial would replace
	Attempts int    `json:"attempts,omitempty"`
	// Previous is the version kept at <binary>.prev.
	Previous string `json:"previous,omitempty"`
	Last     *Event `json:"last,omitempty"`
}

// Event is the outcome of the latest update attempt.
type Event struct {
	Version string    `json:"version"`
	From    string    `json:"from,omitempty"`
	Result  string    `json:"result"` // updated or rolled back
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Results of an attempt.
const (
	Updated    = "updated"
	RolledBack = "rolled back"
)

// Load reads the state; a missing file is the zero State.
func Load(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("self-update state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("self-update state %s: %w", path, err)
	}
	return s, nil
}

// Save writes the state atomically.
func Save(path string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("self-update state: %w", err)
	}
	return writeAtomic(path, bytes.NewReader(b), 0o640)
}

// MarkBad records that version failed and why.
func (s *State) MarkBad(version, from, reason string, now time.Time) {
	if s.Bad == nil {
		s.Bad = map[string]string{}
	}
	s.Bad[version] = reason
	s.Trial, s.From, s.Attempts = "", "", 0
	s.Last = &Event{Version: version, From: from, Result: RolledBack, Reason: reason, At: now}
}

// Recover finishes what a crash interrupted, at the start of an agent
// running version own: the update to own is done if it was on trial
// (killed after the rename, before the state was saved); a trial that
// crashed too often marks its version bad. It reports whether s changed.
func (s *State) Recover(own string, now time.Time) bool {
	switch {
	case s.Trial == "":
		return false
	case s.Trial == own:
		s.Previous = s.From
		s.Last = &Event{Version: own, From: s.From, Result: Updated, At: now}
		s.Trial, s.From, s.Attempts = "", "", 0
	case s.Attempts >= MaxAttempts:
		s.MarkBad(s.Trial, own, fmt.Sprintf("trial interrupted %d times", s.Attempts), now)
	default:
		return false
	}
	return true
}

// PrevPath is where the replaced binary is kept.
func PrevPath(bin string) string { return bin + ".prev" }

// StagedPath is where a new binary waits for its trial.
func StagedPath(bin string) string {
	return filepath.Join(filepath.Dir(bin), "."+filepath.Base(bin)+".next")
}

// Stage copies src (a verified release file) next to bin, executable.
func Stage(bin, src string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("stage: %w", err)
	}
	defer f.Close()
	dst := StagedPath(bin)
	if err := writeAtomic(dst, f, 0o755); err != nil {
		return "", fmt.Errorf("stage %s: %w", dst, err)
	}
	return dst, nil
}

// Install keeps the binary at bin as PrevPath(bin), then renames staged
// over bin. Each step is one rename in bin's directory: bin is never
// missing, and holds the old or the new binary.
func Install(bin, staged string) error {
	old, err := os.Open(bin)
	if err != nil {
		return fmt.Errorf("keep previous binary: %w", err)
	}
	err = writeAtomic(PrevPath(bin), old, 0o755)
	old.Close()
	if err != nil {
		return fmt.Errorf("keep previous binary: %w", err)
	}
	afterStep("prev-kept")
	if err := os.Rename(staged, bin); err != nil {
		return fmt.Errorf("install %s: %w", bin, err)
	}
	syncDir(filepath.Dir(bin))
	return nil
}

// Cleanup removes what an interrupted update left next to bin: the staged
// binary and temp files. Call it only when no update runs.
func Cleanup(bin string) {
	os.Remove(StagedPath(bin))
	tmps, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), ".tmp-*"+filepath.Base(bin)+"*"))
	for _, t := range tmps {
		os.Remove(t)
	}
}

// Restore puts the kept previous binary back at bin (an operator's
// rollback of an update that passed its trial). The kept copy stays.
func Restore(bin string) error {
	prev, err := os.Open(PrevPath(bin))
	if err != nil {
		return fmt.Errorf("restore previous binary: %w", err)
	}
	defer prev.Close()
	return writeAtomic(bin, prev, 0o755)
}

// Health is what a binary on trial writes to the HealthEnv file.
type Health struct {
	Version string `json:"version"`
	PID     int    `json:"pid"`
}

// WriteHealth writes the health marker if this process is on trial.
func WriteHealth(version string) error {
	path := os.Getenv(HealthEnv)
	if path == "" {
		return nil
	}
	b, _ := json.Marshal(Health{Version: version, PID: os.Getpid()})
	return writeAtomic(path, bytes.NewReader(b), 0o640)
}

// OnTrial reports whether this process is a binary on trial.
func OnTrial() bool { return os.Getenv(HealthEnv) != "" }

// Trial runs staged with args as a child and waits until it writes the
// health marker naming version, exits, or timeout passes. The child is
// stopped (SIGTERM, then SIGKILL after grace) before Trial returns; it
// dies with this process if this one is killed. nil means healthy.
func Trial(ctx context.Context, staged string, args []string, version, marker string, timeout, grace time.Duration) error {
	os.Remove(marker)
	defer os.Remove(marker)
	cmd := exec.Command(staged, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), HealthEnv+"="+marker)
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("exited before reporting healthy: %v", err)
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-deadline.C:
			stop()
			return fmt.Errorf("not healthy within %s", timeout)
		case <-tick.C:
			b, err := os.ReadFile(marker)
			if err != nil {
				continue
			}
			var h Health
			if json.Unmarshal(b, &h) != nil {
				continue // being written
			}
			stop()
			if h.Version != version {
				// Installing it would make the agent update again forever.
				return fmt.Errorf("binary reports version %q, the release says %q", h.Version, version)
			}
			return nil
		}
	}
}

// writeAtomic copies r to path through a temp file in its directory,
// synced, then renamed.
func writeAtomic(path string, r io.Reader, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}
