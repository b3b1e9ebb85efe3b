package publish

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/swarmship/swarmship/internal/piecehash"
)

// CollectFiles walks the given paths and returns the files to publish, sorted
// by path. A directory argument contributes its contents (paths relative to
// it); a file argument contributes its base name. Symlinks, special files,
// unreadable files, names that would be unsafe or ambiguous in a torrent or
// a catalog key, and two sources landing on the same release path are all
// refused, naming the path, rather than skipped: a release silently missing a
// file is worse than a failed publish.
func CollectFiles(paths []string) ([]piecehash.FileEntry, error) {
	if len(paths) == 0 {
		return nil, errors.New("no files or directories given to publish")
	}
	var files []piecehash.FileEntry
	for _, arg := range paths {
		if arg == "" {
			return nil, errors.New("empty path given to publish")
		}
		root := filepath.Clean(arg)
		fi, err := os.Lstat(root)
		if err != nil {
			return nil, fmt.Errorf("publish %s: %w", arg, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, symlinkError(root)
		}
		if !fi.IsDir() {
			e, err := regularEntry(root, []string{filepath.Base(root)}, fi)
			if err != nil {
				return nil, err
			}
			files = append(files, e)
			continue
		}
		before := len(files)
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return fmt.Errorf("publish %s: %w", p, err)
			}
			if d.Type()&fs.ModeSymlink != 0 {
				return symlinkError(p)
			}
			if d.IsDir() {
				if p != root {
					// Check directory names here too, so the error names the
					// directory and we do not descend into it.
					rel, err := filepath.Rel(root, p)
					if err != nil {
						return err
					}
					if err := piecehash.CheckPath(splitRel(rel)); err != nil {
						return fmt.Errorf("publish %s: %w", p, err)
					}
				}
				return nil
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("publish %s: %w", p, err)
			}
			e, err := regularEntry(p, splitRel(rel), info)
			if err != nil {
				return err
			}
			files = append(files, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(files) == before {
			return nil, fmt.Errorf("publish %s: directory contains no files", arg)
		}
	}
	piecehash.SortFiles(files)
	if err := piecehash.CheckUniquePaths(files); err != nil {
		return nil, err
	}
	return files, nil
}

func splitRel(rel string) []string {
	return strings.Split(rel, string(filepath.Separator))
}

func symlinkError(p string) error {
	// Say so when the link cannot even be followed: a loop is most likely a
	// mistake the user wants to hear about by name.
	if _, err := os.Stat(p); err != nil && errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("publish %s: symlink loop; symlinks are not published", p)
	}
	return fmt.Errorf("publish %s: is a symlink; symlinks are not published (copy the target in, or name it directly)", p)
}

// regularEntry checks that p is a regular, readable file with a valid name.
func regularEntry(p string, relPath []string, fi fs.FileInfo) (piecehash.FileEntry, error) {
	if !fi.Mode().IsRegular() {
		return piecehash.FileEntry{}, fmt.Errorf("publish %s: not a regular file (%s)", p, fi.Mode().Type())
	}
	if err := piecehash.CheckPath(relPath); err != nil {
		return piecehash.FileEntry{}, fmt.Errorf("publish %s: %w", p, err)
	}
	// Open it now so that a permission problem shows up before minutes of
	// hashing, not half-way through.
	f, err := os.Open(p)
	if err != nil {
		return piecehash.FileEntry{}, fmt.Errorf("publish %s: %w", p, err)
	}
	f.Close()
	return piecehash.FileEntry{Path: relPath, Source: p, Size: fi.Size()}, nil
}
