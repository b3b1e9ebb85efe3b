package testenv

import (
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// BoltDamages are the damaged files a bbolt database (the agent's state or
// piece-completion database) can be left as: a disk error, a crash of the
// machine, an operator's mistake. Do damages the file at path.
var BoltDamages = []struct {
	Name string
	Do   func(t *testing.T, path string)
}{
	// Both meta pages: with only the first one damaged bbolt uses the
	// second and nothing is lost.
	{"garbage header", func(t *testing.T, path string) { overwrite(t, path, 0, 8<<10) }},
	{"garbage data pages", func(t *testing.T, path string) { overwrite(t, path, 8<<10, -1) }},
	{"truncated to 0", func(t *testing.T, path string) { truncate(t, path, 0) }},
	{"truncated to half", func(t *testing.T, path string) { truncate(t, path, -2) }},
	{"text file", func(t *testing.T, path string) {
		if err := os.WriteFile(path, []byte(strings.Repeat("this is not a database\n", 100)), 0o640); err != nil {
			t.Fatal(err)
		}
	}},
}

// overwrite fills [off, off+n) of path with random bytes (n < 0: to the end).
func overwrite(t *testing.T, path string, off, n int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if n < 0 || off+n > st.Size() {
		n = st.Size() - off
	}
	if n <= 0 {
		t.Fatalf("%s has %d bytes, nothing to overwrite at %d", path, st.Size(), off)
	}
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{1}).Read(b)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// truncate cuts path to size bytes; -2 means half of what it uses (bbolt
// grows files ahead of use, so half the file can be free space only).
func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if size == -2 {
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		db.View(func(tx *bolt.Tx) error { size = tx.Size() / 2; return nil })
		db.Close()
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}
