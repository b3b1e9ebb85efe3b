package token

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// ErrRevoked is returned for a token on the revocation list.
var ErrRevoked = errors.New("token revoked")

// MaxRevocations bounds a revocation list so that a mistaken file cannot
// take the origin's memory.
const MaxRevocations = 1_000_000

// Revocations is a revocation list: token ids and fingerprints, one per
// line, '#' starting a comment. The origin reads it from a local file
// that it re-reads when the file changes; the list lives with the origin,
// the only party that checks tokens, so a revocation takes effect at once
// and needs neither the catalog keys nor a publish.
type Revocations struct {
	path string

	mu      sync.RWMutex
	ids     map[string]struct{}
	modTime time.Time
	size    int64
}

// OpenRevocations reads the list at path. The file must exist (an empty
// file revokes nothing): a typo in the path must not silently revoke
// nothing.
func OpenRevocations(path string) (*Revocations, error) {
	r := &Revocations{path: path}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Path is the file the list is read from.
func (r *Revocations) Path() string { return r.path }

// Reload re-reads the file if it changed since the last read and reports
// whether it did. On error the previous list stays in force.
func (r *Revocations) Reload() (bool, error) {
	st, err := os.Stat(r.path)
	if err != nil {
		return false, fmt.Errorf("revocation list: %w", err)
	}
	r.mu.RLock()
	same := st.ModTime().Equal(r.modTime) && st.Size() == r.size && r.ids != nil
	r.mu.RUnlock()
	if same {
		return false, nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return false, fmt.Errorf("revocation list: %w", err)
	}
	defer f.Close()
	ids, err := ParseRevocations(f)
	if err != nil {
		return false, fmt.Errorf("revocation list %s: %w", r.path, err)
	}
	r.mu.Lock()
	r.ids, r.modTime, r.size = ids, st.ModTime(), st.Size()
	r.mu.Unlock()
	return true, nil
}

// Len is how many entries are in force.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}

// Check returns ErrRevoked if the token (its claims' id or its
// fingerprint) is on the list.
func (r *Revocations) Check(c Claims, tok string) error {
	if r == nil {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c.ID != "" {
		if _, ok := r.ids[c.ID]; ok {
			return ErrRevoked
		}
	}
	if _, ok := r.ids[Fingerprint(tok)]; ok {
		return ErrRevoked
	}
	return nil
}

// ParseRevocations reads a revocation list.
func ParseRevocations(rd io.Reader) (map[string]struct{}, error) {
	ids := map[string]struct{}{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 4096), 4096)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		id := strings.TrimSpace(string(line))
		if id == "" {
			continue
		}
		if !validID(id) {
			return nil, fmt.Errorf("line %d: %q is not a token id or fingerprint", n, id)
		}
		if len(ids) >= MaxRevocations {
			return nil, fmt.Errorf("more than %d entries", MaxRevocations)
		}
		ids[id] = struct{}{}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return ids, nil
}

// Revoke appends an id (or fingerprint) to the list file, creating it.
func Revoke(path, id, note string) error {
	if !validID(id) {
		return fmt.Errorf("%q is not a token id or fingerprint", id)
	}
	note = strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f {
			return ' '
		}
		return c
	}, note)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	line := id
	if note != "" {
		line += " # " + note
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
