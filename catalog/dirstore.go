package catalog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// dirTempPrefix starts the name of every temporary file a DirStore writes.
// Such files are never listed, and keys whose last component starts with it
// are refused so that an object can never be mistaken for one.
const dirTempPrefix = ".swarmship-tmp-"

// DirStore is a Store in a local directory: key "a/b/c" is the file
// root/a/b/c. Writes are atomic (temporary file, fsync, rename, fsync of the
// directory). All file access goes through an os.Root, so no key, and no
// symbolic link met on the way to a key, can reach outside the directory;
// symbolic links that stay inside it are followed.
//
// A DirStore is safe for concurrent use.
type DirStore struct {
	root string // absolute, symlinks resolved
}

var _ Store = (*DirStore)(nil)

// NewDirStore opens the existing directory root as a Store. It does not
// create the directory (see OpenOrCreateStore).
func NewDirStore(root string) (*DirStore, error) {
	if root == "" {
		return nil, errors.New("dir store: empty directory name")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("dir store %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("dir store %s: directory does not exist", abs)
		}
		return nil, fmt.Errorf("dir store %s: %w", abs, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("dir store %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dir store %s: not a directory", abs)
	}
	return &DirStore{root: real}, nil
}

// Root returns the absolute path of the store's directory, with symbolic
// links resolved.
func (d *DirStore) Root() string { return d.root }

// String returns the store's file:// URL.
func (d *DirStore) String() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(d.root)}).String()
}

func (d *DirStore) open() (*os.Root, error) {
	r, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d, err)
	}
	return r, nil
}

// checkKey validates key for this store.
func (d *DirStore) checkKey(key string) error {
	if err := CleanKey(key); err != nil {
		return fmt.Errorf("%s: %w", d, err)
	}
	if strings.HasPrefix(path.Base(key), dirTempPrefix) {
		return fmt.Errorf("%s: key %q uses the reserved prefix %q", d, key, dirTempPrefix)
	}
	return nil
}

// fsErr wraps an error from the file system for key, mapping "does not
// exist" (including a file where a parent directory was expected) to
// ErrNotFound.
func (d *DirStore) fsErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s %s in %s: %w", op, key, d, ErrNotFound)
	}
	return fmt.Errorf("%s %s in %s: %w", op, key, d, err)
}

// openObject opens key for reading and checks that it is a regular file
// (a directory is not an object).
func (d *DirStore) openObject(ctx context.Context, op, key string) (*os.File, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	if err := d.checkKey(key); err != nil {
		return nil, 0, err
	}
	r, err := d.open()
	if err != nil {
		return nil, 0, err
	}
	defer r.Close()
	f, err := r.Open(filepath.FromSlash(key))
	if err != nil {
		return nil, 0, d.fsErr(op, key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, d.fsErr(op, key, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s %s in %s: not a regular file: %w", op, key, d, ErrNotFound)
	}
	return f, fi.Size(), nil
}

// Get implements Store.
func (d *DirStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := d.openObject(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// GetRange implements Store.
func (d *DirStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get %s in %s: negative offset %d", key, d, offset)
	}
	f, size, err := d.openObject(ctx, "get", key)
	if err != nil {
		return nil, err
	}
	n, err := rangeLength(size, offset, length)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s in %s: %w", key, d, err)
	}
	return readCloser{io.NewSectionReader(f, offset, n), f}, nil
}

// Stat implements Store.
func (d *DirStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, err
	}
	if err := d.checkKey(key); err != nil {
		return ObjectInfo{}, err
	}
	r, err := d.open()
	if err != nil {
		return ObjectInfo{}, err
	}
	defer r.Close()
	fi, err := r.Stat(filepath.FromSlash(key))
	if err != nil {
		return ObjectInfo{}, d.fsErr("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, fmt.Errorf("stat %s in %s: not a regular file: %w", key, d, ErrNotFound)
	}
	return ObjectInfo{Key: key, Size: fi.Size()}, nil
}

// Put implements Store. The object is first written to a temporary file
// next to its final name, synced, and renamed into place; the directory is
// synced afterwards. On any failure the temporary file is removed and the
// previous object is untouched. Directories are created with mode 0755 and
// files with mode 0644 (both subject to the umask).
func (d *DirStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	return d.write(ctx, key, r, size, false)
}

// PutIfAbsent implements CreateOnlyStore: the object is written to a
// temporary file and synced as for Put, then hard-linked to its name;
// link(2) fails if the name exists, so of racing writers exactly one wins
// and readers never see a partial file.
func (d *DirStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	return d.write(ctx, key, r, size, true)
}

func (d *DirStore) write(ctx context.Context, key string, r io.Reader, size int64, createOnly bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.checkKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("put %s in %s: negative size %d", key, d, size)
	}
	root, err := d.open()
	if err != nil {
		return err
	}
	defer root.Close()

	dir := path.Dir(key)
	if dir != "." {
		if err := mkdirAllSynced(root, dir); err != nil {
			return fmt.Errorf("put %s in %s: %w", key, d, err)
		}
	}
	if createOnly {
		// Fail before uploading when the answer is already known.
		if _, err := root.Lstat(filepath.FromSlash(key)); err == nil {
			return fmt.Errorf("put %s in %s: %w", key, d, ErrExists)
		}
	}
	tmp, f, err := createTemp(root, dir)
	if err != nil {
		return fmt.Errorf("put %s in %s: %w", key, d, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			root.Remove(tmp)
		}
	}()

	if _, err := io.Copy(f, newExactReader(ctx, r, size)); err != nil {
		return fmt.Errorf("put %s in %s: %w", key, d, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s in %s: %w", key, d, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s in %s: %w", key, d, err)
	}
	if createOnly {
		err := root.Link(tmp, filepath.FromSlash(key))
		root.Remove(tmp)
		ok = true
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("put %s in %s: %w", key, d, ErrExists)
		}
		if err != nil {
			return fmt.Errorf("put %s in %s: %w", key, d, err)
		}
	} else {
		if err := root.Rename(tmp, filepath.FromSlash(key)); err != nil {
			return fmt.Errorf("put %s in %s: %w", key, d, err)
		}
		ok = true
	}
	if err := syncDir(root, dir); err != nil {
		return fmt.Errorf("put %s in %s: sync directory: %w", key, d, err)
	}
	return nil
}

// Copy implements Copier with a hard link to a temporary name renamed over
// dst: no bytes move, and readers of dst see the old or the new object.
func (d *DirStore) Copy(ctx context.Context, src, dst string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, k := range []string{src, dst} {
		if err := d.checkKey(k); err != nil {
			return err
		}
	}
	root, err := d.open()
	if err != nil {
		return err
	}
	defer root.Close()
	if fi, err := root.Stat(filepath.FromSlash(src)); err != nil {
		return d.fsErr("copy", src, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("copy %s in %s: not a regular file", src, d)
	}
	dir := path.Dir(dst)
	if dir != "." {
		if err := mkdirAllSynced(root, dir); err != nil {
			return fmt.Errorf("copy to %s in %s: %w", dst, d, err)
		}
	}
	var b [8]byte
	rand.Read(b[:])
	tmp := filepath.Join(filepath.FromSlash(dir), dirTempPrefix+hex.EncodeToString(b[:]))
	if err := root.Link(filepath.FromSlash(src), tmp); err != nil {
		return d.fsErr("copy", src, err)
	}
	if err := root.Rename(tmp, filepath.FromSlash(dst)); err != nil {
		root.Remove(tmp)
		return fmt.Errorf("copy to %s in %s: %w", dst, d, err)
	}
	return syncDir(root, dir)
}

// createTemp creates a new temporary file in dir (a slash path relative to
// root, "." for root itself) and returns its root-relative name.
func createTemp(root *os.Root, dir string) (string, *os.File, error) {
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		name := filepath.Join(filepath.FromSlash(dir), dirTempPrefix+hex.EncodeToString(b[:]))
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, errors.New("cannot create a temporary file")
}

// mkdirAllSynced creates dir (a slash path relative to root) and its
// missing parents with mode 0755, and syncs the parent of every directory
// it created so that the new entries survive a crash.
func mkdirAllSynced(root *os.Root, dir string) error {
	if fi, err := root.Stat(filepath.FromSlash(dir)); err == nil && fi.IsDir() {
		return nil
	}
	// Find the deepest existing ancestor.
	top := dir
	for {
		parent := path.Dir(top)
		if parent == "." {
			break
		}
		if _, err := root.Stat(filepath.FromSlash(parent)); err == nil {
			break
		}
		top = parent
	}
	if err := root.MkdirAll(filepath.FromSlash(dir), 0o755); err != nil {
		return err
	}
	// Sync from the new directories' parents up to the first existing one.
	for p := path.Dir(dir); ; p = path.Dir(p) {
		if err := syncDir(root, p); err != nil {
			return err
		}
		if p == path.Dir(top) || p == "." {
			return nil
		}
	}
}

func syncDir(root *os.Root, dir string) error {
	f, err := root.Open(filepath.FromSlash(dir))
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Delete implements Store. Empty directories are left in place.
func (d *DirStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.checkKey(key); err != nil {
		return err
	}
	root, err := d.open()
	if err != nil {
		return err
	}
	defer root.Close()
	name := filepath.FromSlash(key)
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete %s in %s: %w", key, d, err)
	}
	if fi.IsDir() {
		// Not an object; there is nothing to delete under this key.
		return nil
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s in %s: %w", key, d, err)
	}
	return syncDir(root, path.Dir(key))
}

// List implements Store. prefix is a plain string prefix of keys: "data/ap"
// matches "data/app/x" and "data/apple". Temporary files of unfinished Puts
// are not listed; neither are symbolic links that lead outside the store,
// nor objects below a symbolic link to a directory.
func (d *DirStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Walk the deepest directory the prefix names completely.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
		if err := CleanKey(start); err != nil {
			return nil, fmt.Errorf("list %q in %s: %w", prefix, d, err)
		}
	}
	root, err := d.open()
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fsys := root.FS()

	out := []ObjectInfo{}
	err = fs.WalkDir(fsys, start, func(name string, de fs.DirEntry, err error) error {
		if err != nil {
			if name == start && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() {
			// Prune directories that cannot hold a matching key.
			if name != "." && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(de.Name(), dirTempPrefix) || !strings.HasPrefix(name, prefix) {
			return nil
		}
		var fi fs.FileInfo
		if de.Type()&fs.ModeSymlink != 0 {
			// Follow links inside the root only; skip the rest.
			fi, err = fs.Stat(fsys, name)
			if err != nil {
				return nil
			}
		} else {
			fi, err = de.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			if err != nil {
				return err
			}
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		out = append(out, ObjectInfo{Key: name, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q in %s: %w", prefix, d, err)
	}
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// readCloser joins a Reader with the Closer of the resource behind it.
type readCloser struct {
	io.Reader
	io.Closer
}

// rangeLength checks a GetRange request against an object of size bytes and
// returns how many bytes it reads.
func rangeLength(size, offset, length int64) (int64, error) {
	switch {
	case offset < 0:
		return 0, fmt.Errorf("negative offset %d", offset)
	case offset == 0 && length < 0:
		return size, nil // the whole object, even an empty one
	case length == 0 && offset <= size:
		return 0, nil
	case offset >= size:
		return 0, fmt.Errorf("offset %d is at or past the end of the %d-byte object", offset, size)
	case length < 0 || length > size-offset:
		return size - offset, nil
	}
	return length, nil
}

// exactReader reads exactly size bytes from r. It fails if r ends early
// and also if r holds more than size bytes; in that case the error comes
// with the read that would have delivered the final bytes, so a consumer
// that stops after size bytes still sees it. It also stops when ctx is done.
type exactReader struct {
	ctx  context.Context
	r    io.Reader
	size int64
	left int64
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, size: size, left: size}
}

// errSizeMismatch is wrapped by errors from exactReader.
var errSizeMismatch = errors.New("reader size does not match the declared size")

func (e *exactReader) Read(p []byte) (int, error) {
	if err := e.ctx.Err(); err != nil {
		return 0, err
	}
	if e.left == 0 {
		if err := e.checkEnd(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if e.left == 0 {
		if err := e.checkEnd(); err != nil {
			return 0, err
		}
		return n, nil
	}
	if err == io.EOF {
		return n, fmt.Errorf("%w: got %d of %d bytes", errSizeMismatch, e.size-e.left, e.size)
	}
	return n, err
}

// checkEnd makes sure the underlying reader has nothing after size bytes.
// It reads at most one byte past the end, once.
func (e *exactReader) checkEnd() error {
	if e.r == nil {
		return nil
	}
	var b [1]byte
	for range 100 {
		n, err := e.r.Read(b[:])
		if n > 0 {
			return fmt.Errorf("%w: more than %d bytes", errSizeMismatch, e.size)
		}
		if err == io.EOF {
			e.r = nil
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
