package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) by a Store when a key does not exist.
var ErrNotFound = errors.New("object not found")

// ErrReadOnly is returned (wrapped) by stores that cannot be written, such as
// a catalog read over plain HTTP.
var ErrReadOnly = errors.New("store is read-only")

// ErrExists is returned (wrapped) by PutIfAbsent when the key already
// holds an object: another writer got there first.
var ErrExists = errors.New("object already exists")

// ErrNoConditionalWrite is returned (wrapped) when a catalog writer needs
// a create-only write and the store offers none. Such stores are refused
// for writing catalogs rather than given a weaker lock.
var ErrNoConditionalWrite = errors.New("store offers no create-only write, so concurrent publishers could lose each other's releases")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key  string
	Size int64
	// ModTime is when the object was last written, where the store knows
	// it (List fills it in for directories and S3); gc uses it to tell
	// an abandoned upload from one in flight.
	ModTime time.Time
}

// CreateOnlyStore is implemented by stores that can create an object only
// if its key is free, atomically against other writers: the directory
// store (link(2) of a complete temporary file) and S3 (If-None-Match: *).
// Catalog commits are built on it.
type CreateOnlyStore interface {
	Store
	// PutIfAbsent stores size bytes from r under key unless key already
	// holds an object, in which case it fails with an error wrapping
	// ErrExists and leaves the object untouched. Of several writers racing
	// on one free key exactly one succeeds. Readers never see a partial
	// object.
	PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error
}

// Copier is implemented by stores that copy objects without moving the
// bytes through the caller (a hard link on a directory, CopyObject on S3).
type Copier interface {
	// Copy replaces dst with the content of src, atomically for readers of
	// dst. A missing src wraps ErrNotFound.
	Copy(ctx context.Context, src, dst string) error
}

// Composer is implemented by stores that can build an object from byte
// ranges of objects they hold plus new bytes, moving only the new bytes
// through the caller (S3: a multipart upload of UploadPartCopy and uploaded
// parts; a directory: the ranges are copied on its host).
type Composer interface {
	// Compose stores at dst the concatenation of parts, replacing any
	// object there, atomically for readers of dst: on error dst is
	// unchanged. Every part but the last must be at least MinPartSize
	// bytes long. A missing source wraps ErrNotFound; a range outside its
	// source, or a reader yielding fewer than Len bytes, fails.
	Compose(ctx context.Context, dst string, parts []Part) error
	// MinPartSize is the shortest part, other than the last, that
	// Compose accepts.
	MinPartSize() int64
}

// Part is one piece of a composed object: Len bytes of the object Src
// from offset Off when Src is set, else the next Len bytes of R.
type Part struct {
	Src      string
	Off, Len int64
	R        io.Reader
}

// PutIfAbsent is the create-only write of s, or an error wrapping
// ErrNoConditionalWrite when s has none.
func PutIfAbsent(ctx context.Context, s Store, key string, r io.Reader, size int64) error {
	c, ok := s.(CreateOnlyStore)
	if !ok {
		return fmt.Errorf("%s: %w", s, ErrNoConditionalWrite)
	}
	return c.PutIfAbsent(ctx, key, r, size)
}

// CopyObject copies src to dst inside s: server-side where s can, else by
// streaming the bytes through this process.
func CopyObject(ctx context.Context, s Store, src, dst string) error {
	if c, ok := s.(Copier); ok {
		return c.Copy(ctx, src, dst)
	}
	st, err := s.Stat(ctx, src)
	if err != nil {
		return err
	}
	rc, err := s.Get(ctx, src)
	if err != nil {
		return err
	}
	defer rc.Close()
	return s.Put(ctx, dst, rc, st.Size)
}

// Store is where a catalog lives: a directory, an S3 bucket/prefix, or a
// read-only HTTP mirror. Keys are slash-separated relative paths such as
// "metadata/timestamp.json" or "data/app/1.0/bin/app"; a Store never lets a
// key escape its root. Every implementation passes catalog/storetest.
type Store interface {
	// Put stores size bytes read from r under key, replacing any existing
	// object. Readers see either the whole old object or the whole new one,
	// never a partial write. If r yields a different number of bytes than
	// size, Put fails and the previous object (if any) is left intact.
	Put(ctx context.Context, key string, r io.Reader, size int64) error

	// Get opens the object at key for reading. The caller closes it. A
	// missing key gives an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// GetRange opens length bytes of key starting at offset. length < 0 means
	// to the end. A range that runs past the end is cut short there (the
	// reader yields fewer bytes). length 0 yields nothing for any offset from
	// 0 to the size, and GetRange(key, 0, -1) opens any object whole, even an
	// empty one; otherwise an offset at or past the end, or a negative one,
	// is an error that does not wrap ErrNotFound. A missing key wraps
	// ErrNotFound.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's size. A missing key wraps ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List returns every object whose key starts with prefix, sorted by key.
	// The prefix is a plain string prefix, not a directory: "data/ap"
	// matches "data/app/x" and "data/apple". A prefix with no objects gives
	// an empty list, not an error.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// String names the store for humans and log lines (no secrets).
	String() string
}

// URLer is implemented by stores whose objects can be fetched over HTTP
// with Range requests (a BEP 19 web seed). ObjectURL returns the URL of key
// for anonymous readers, or "" when the store has no such address.
type URLer interface {
	ObjectURL(key string) string
}

// CleanKey checks that key is a relative slash path that stays inside the
// store: no empty, ".", ".." or absolute components, no backslashes or
// control characters.
func CleanKey(key string) error {
	if key == "" {
		return errors.New("empty key")
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("key %q is absolute", key)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("key %q contains a control character or backslash", key)
		}
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("key %q has an empty, '.' or '..' component", key)
		}
	}
	if path.Clean(key) != key {
		return fmt.Errorf("key %q is not clean", key)
	}
	return nil
}

// ReadAll reads a whole object, refusing objects larger than limit bytes so
// that a hostile catalog cannot exhaust memory.
func ReadAll(ctx context.Context, s Store, key string, limit int64) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", key, s, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s in %s is larger than the %d-byte limit", key, s, limit)
	}
	return b, nil
}
