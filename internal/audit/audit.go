// Package audit keeps an append-only log of security-relevant events:
// publish, promote, yank, key and token changes, and agent activations.
// Each event is one JSON line, fsynced before Append returns. When the file
// passes its size limit it is rotated (log → log.1 → log.2 …), keeping a
// bounded number of old files.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is one audited action.
type Event struct {
	Time     time.Time         `json:"time"`
	Action   string            `json:"action"` // publish, promote, yank, keys.init, token.keygen, token.issue, activate
	Actor    string            `json:"actor,omitempty"`
	Host     string            `json:"host,omitempty"`
	Release  string            `json:"release,omitempty"`
	Version  string            `json:"version,omitempty"`
	Channel  string            `json:"channel,omitempty"`
	InfoHash string            `json:"infohash,omitempty"`
	Tenant   string            `json:"tenant,omitempty"`
	Site     string            `json:"site,omitempty"`
	Details  map[string]string `json:"details,omitempty"`
}

// Defaults for rotation.
const (
	DefaultMaxSize = 16 << 20
	DefaultKeep    = 5
)

// Log appends events to a file. It is safe for concurrent use within a
// process; separate processes may share a file (O_APPEND writes of one
// line are atomic on local filesystems), but only one should rotate it.
type Log struct {
	path    string
	maxSize int64
	keep    int

	mu sync.Mutex
}

// Open prepares a log at path (created 0640 on first append).
func Open(path string, maxSize int64, keep int) (*Log, error) {
	if path == "" {
		return nil, errors.New("audit log path is empty")
	}
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if keep <= 0 {
		keep = DefaultKeep
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Log{path: path, maxSize: maxSize, keep: keep}, nil
}

// Append writes e as one line and fsyncs it. Time, Actor and Host are
// filled in when empty.
func (l *Log) Append(e Event) error {
	if e.Action == "" {
		return errors.New("audit event without an action")
	}
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	if e.Actor == "" {
		if u, err := user.Current(); err == nil {
			e.Actor = u.Username
		}
	}
	if e.Host == "" {
		e.Host, _ = os.Hostname()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, err := os.Stat(l.path); err == nil && st.Size()+int64(len(line)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return fmt.Errorf("audit log rotate: %w", err)
		}
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := f.Write(line); err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	return f.Close()
}

// rotate shifts log.N-1 → log.N … log → log.1, dropping the oldest.
func (l *Log) rotate() error {
	os.Remove(l.path + "." + strconv.Itoa(l.keep))
	for i := l.keep - 1; i >= 1; i-- {
		from := l.path + "." + strconv.Itoa(i)
		if err := os.Rename(from, l.path+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Rename(l.path, l.path+".1")
}

// Filter selects events; zero fields match everything.
type Filter struct {
	Action  string
	Release string
	Since   time.Time
}

func (f Filter) match(e Event) bool {
	return (f.Action == "" || e.Action == f.Action || strings.HasPrefix(e.Action, f.Action+".")) &&
		(f.Release == "" || e.Release == f.Release) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since))
}

// Read returns the events of the log at path and its rotated files, oldest
// first, that match f. A line that does not parse is reported as an error
// naming the file and line: an audit log must not be silently skipped.
func Read(path string, f Filter) ([]Event, error) {
	files := []string{path}
	for i := 1; ; i++ {
		p := path + "." + strconv.Itoa(i)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append(files, p)
	}
	var out []Event
	for i := len(files) - 1; i >= 0; i-- {
		fh, err := os.Open(files[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for n := 1; sc.Scan(); n++ {
			if len(strings.TrimSpace(sc.Text())) == 0 {
				continue
			}
			var e Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				fh.Close()
				return nil, fmt.Errorf("%s:%d: %w", files[i], n, err)
			}
			if f.match(e) {
				out = append(out, e)
			}
		}
		err = sc.Err()
		fh.Close()
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
