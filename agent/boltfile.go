package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// bbolt trusts its file: garbage in the meta or data pages makes Open or
// a later read panic (loadFreelist, page type checks), and a file shorter
// than its meta page says faults (SIGBUS) on the mmap. Either killed the
// agent at start, in a loop under systemd. Every bbolt call of the agent
// goes through noPanic, and a file is checked end to end when opened.

// ErrCorrupt marks a database file that cannot be read as bbolt.
var ErrCorrupt = errors.New("corrupt database file")

// corruptError says which file is corrupt and why.
type corruptError struct {
	path string
	err  error
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.path, ErrCorrupt, e.err)
}

func (e *corruptError) Unwrap() []error { return []error{ErrCorrupt, e.err} }

// noPanic runs fn, turning a panic or a memory fault inside it (bbolt
// reading a corrupt or truncated file) into an error naming path.
func noPanic(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{path: path, err: fmt.Errorf("bbolt panicked: %v", r)}
		}
	}()
	return fn()
}

// openBoltChecked opens path and reads all of it once (bbolt's own
// consistency check, then check, if set, over every record). A file bbolt
// cannot read comes back as a *corruptError; a locked file or an
// operating-system error (permissions, I/O) as itself, naming the file.
func openBoltChecked(path string, opts *bolt.Options, check func(*bolt.Tx) error) (*bolt.DB, error) {
	// The page layout first, under bbolt's lock: bbolt itself trusts the
	// page ids it reads (a cycle made it loop for ever, a garbage freelist
	// count can make it allocate without bound).
	unlock, ok := lockForCheck(path)
	if !ok {
		return nil, fmt.Errorf("%s is locked: is another agent running on this cache? %w", path, berrors.ErrTimeout)
	}
	lerr := checkBoltLayout(path)
	unlock()
	if lerr != nil {
		return nil, &corruptError{path: path, err: lerr}
	}
	var db *bolt.DB
	err := noPanic(path, func() error {
		var err error
		db, err = bolt.Open(path, 0o640, opts)
		return err
	})
	if err != nil {
		var ce *corruptError
		var pe *fs.PathError
		switch {
		case errors.As(err, &ce):
			return nil, err
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("%s is locked: is another agent running on this cache? %w", path, err)
		case errors.As(err, &pe):
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		// ErrInvalid, ErrChecksum, ErrVersionMismatch, short files: what
		// bbolt says about bytes it cannot use.
		return nil, &corruptError{path: path, err: err}
	}
	err = noPanic(path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			if err := walk(tx); err != nil {
				return err
			}
			if check != nil {
				return check(tx)
			}
			return nil
		})
	})
	if err != nil {
		noPanic(path, db.Close)
		var ce *corruptError
		if !errors.As(err, &ce) {
			err = &corruptError{path: path, err: err}
		}
		return nil, err
	}
	return db, nil
}

// Recovery is one thing the agent did about damaged state at start: a
// database moved aside, a release re-adopted or removed. Shown in status.
type Recovery struct {
	File    string    `json:"file"`
	Action  string    `json:"action"`
	MovedTo string    `json:"moved_to,omitempty"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// openBoltRecovering opens path like openBoltChecked; a corrupt file is
// renamed to <path>.corrupt-<UTC time> (kept for a post-mortem, never
// deleted) and a fresh database is created in its place. The returned
// Recovery is nil when the file was fine.
func openBoltRecovering(path, what string, log *slog.Logger, opts *bolt.Options, check func(*bolt.Tx) error) (*bolt.DB, *Recovery, error) {
	st, statErr := os.Stat(path)
	db, err := openBoltChecked(path, opts, check)
	var ce *corruptError
	if err == nil && statErr == nil && st.Size() == 0 {
		// bbolt quietly makes a new database in an empty file: say so, it
		// means the records were lost (truncated by a crash or by hand).
		log.Warn(what+" was an empty file: started a fresh one", "file", path)
		return db, &Recovery{File: path, Action: "was empty (0 bytes); started a fresh " + what, At: time.Now().UTC()}, nil
	}
	if err == nil && statErr == nil {
		// A file cut short of what its meta page says can still hold all
		// its live pages (they read back above): keep it, but say so.
		var want int64
		noPanic(path, func() error {
			return db.View(func(tx *bolt.Tx) error { want = tx.Size(); return nil })
		})
		if st.Size() < want {
			log.Warn(what+" is shorter than it should be, but every record reads back: kept", "file", path, "bytes", st.Size(), "want_bytes", want)
			return db, &Recovery{File: path, Action: fmt.Sprintf("kept: truncated to %d of %d bytes, but every record reads back", st.Size(), want), At: time.Now().UTC()}, nil
		}
	}
	if err == nil || !errors.As(err, &ce) {
		return db, nil, err
	}
	now := time.Now().UTC()
	moved := path + ".corrupt-" + now.Format("20060102T150405.000000000Z")
	if rerr := os.Rename(path, moved); rerr != nil {
		return nil, nil, fmt.Errorf("%w; moving it aside failed: %w", err, rerr)
	}
	syncDir(filepath.Dir(path))
	log.Error(what+" is corrupt: moved aside, starting a fresh one", "file", path, "moved_to", moved, "err", ce.err)
	db, err = openBoltChecked(path, opts, check)
	if err != nil {
		return nil, nil, fmt.Errorf("fresh %s after moving the corrupt one to %s: %w", what, moved, err)
	}
	return db, &Recovery{File: path, Action: "moved aside; started a fresh " + what, MovedTo: moved, Reason: ce.err.Error(), At: now}, nil
}

// walk reads every bucket, key and value once, so that a corrupt page
// panics or faults here, inside noPanic, rather than later in some other
// goroutine. (bbolt's Tx.Check runs in a goroutine of its own, where a
// fault cannot be recovered.)
func walk(tx *bolt.Tx) error {
	var sink byte
	var walkBucket func(b *bolt.Bucket, depth int) error
	walkBucket = func(b *bolt.Bucket, depth int) error {
		if depth > 32 {
			return errors.New("buckets nested more than 32 deep")
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) > 0 {
				sink ^= k[len(k)-1]
			}
			if v != nil {
				if len(v) > 0 {
					sink ^= v[0] ^ v[len(v)-1]
				}
				return nil
			}
			sub := b.Bucket(k)
			if sub == nil {
				return fmt.Errorf("key %q has no value and is not a bucket", k)
			}
			return walkBucket(sub, depth+1)
		})
	}
	err := tx.ForEach(func(name []byte, b *bolt.Bucket) error {
		if err := walkBucket(b, 0); err != nil {
			return fmt.Errorf("bucket %q: %w", name, err)
		}
		return nil
	})
	_ = sink
	return err
}
