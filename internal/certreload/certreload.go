// Package certreload keeps TLS material that is read from files (a
// certificate and its key, a CA bundle) current without a restart: the
// files are read again when their contents change, checked at most every
// CheckEvery when the material is asked for (that is, on a new
// connection), and at once on Reload (SIGHUP). A new set that does not
// load — half written, a key that does not match, a certificate that does
// not verify — leaves the old one in force and is logged once.
package certreload

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckEvery is how often, at most, the files are looked at for changes.
const CheckEvery = 2 * time.Second

// Describer is material that names itself in the log line of a reload
// (serial, expiry), as slog key-value pairs.
type Describer interface{ Describe() []any }

// Files is material of type T loaded from a set of files.
type Files[T any] struct {
	what  string
	paths []string
	load  func() (T, error)
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	cur     T
	stamp   [sha256.Size]byte // contents of the files cur was loaded from
	bad     [sha256.Size]byte // contents of the last set that failed to load
	checked time.Time
}

// Open loads the material now (an error here is the caller's to report)
// and returns its keeper. what names it in logs ("peer TLS certificate");
// paths are the files load reads; log may be nil (slog.Default).
func Open[T any](what string, paths []string, load func() (T, error), log *slog.Logger) (*Files[T], error) {
	if log == nil {
		log = slog.Default()
	}
	f := &Files[T]{what: what, paths: paths, load: load, log: log, every: CheckEvery}
	stamp := f.digest()
	cur, err := load()
	if err != nil {
		return nil, err
	}
	f.cur, f.stamp, f.checked = cur, stamp, time.Now()
	return f, nil
}

// SetCheckEvery changes how often the files are looked at (tests).
func (f *Files[T]) SetCheckEvery(d time.Duration) {
	f.mu.Lock()
	f.every = d
	f.mu.Unlock()
}

// Current returns the material in force, loading the files again first if
// they changed since they were last looked at (at most every CheckEvery).
func (f *Files[T]) Current() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.checked) >= f.every {
		f.checked = time.Now()
		if d := f.digest(); d != f.stamp && d != f.bad {
			f.reloadLocked(d) // its error is logged; the old material stays
		}
	}
	return f.cur
}

// Reload loads the files now, changed or not (SIGHUP). On error the
// material in force stays and the error is returned (and logged).
func (f *Files[T]) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checked = time.Now()
	return f.reloadLocked(f.digest())
}

func (f *Files[T]) reloadLocked(d [sha256.Size]byte) error {
	cur, err := f.load()
	if err != nil {
		f.bad = d
		f.log.Error(f.what+" files do not load; the previous ones stay in force", "files", f.paths, "err", err)
		return fmt.Errorf("%s: %w", f.what, err)
	}
	if d != f.stamp {
		attrs := []any{"files", f.paths}
		if dsc, ok := any(cur).(Describer); ok {
			attrs = append(attrs, dsc.Describe()...)
		}
		f.log.Info(f.what+" reloaded", attrs...)
	}
	f.cur, f.stamp, f.bad = cur, d, [sha256.Size]byte{}
	return nil
}

// digest hashes the files' contents (and any error reading them, so that
// a missing file is a change too). The files are small PEM files.
func (f *Files[T]) digest() [sha256.Size]byte {
	h := sha256.New()
	for _, p := range f.paths {
		b, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(h, "%s: error %v\x00", p, err)
			continue
		}
		fmt.Fprintf(h, "%s: %d\x00", p, len(b))
		h.Write(b)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}
