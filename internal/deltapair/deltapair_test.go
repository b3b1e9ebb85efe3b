package deltapair

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// tree maps each file's relative path to its SHA-256 and size.
func tree(t *testing.T, root string) (map[string][32]byte, int64) {
	t.Helper()
	out := map[string][32]byte{}
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = sha256.Sum256(b)
		total += int64(len(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, total
}

func TestGenerate(t *testing.T) {
	spec := Spec{Size: 4 << 20, Files: 40, Seed: 7}
	p, err := Generate(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	v1, size1 := tree(t, p.V1)
	v2, size2 := tree(t, p.V2)
	if len(v1) != 40 || p.V1Files != 40 || size1 != spec.Size || p.V1Size != size1 {
		t.Errorf("v1: %d files of %d bytes (pair says %d, %d); want 40 of %d", len(v1), size1, p.V1Files, p.V1Size, spec.Size)
	}
	if len(v2) != 45 || p.V2Files != 45 || size2 != p.V2Size {
		t.Errorf("v2: %d files of %d bytes (pair says %d, %d); want 45", len(v2), size2, p.V2Files, p.V2Size)
	}
	// Count v2 files by how they relate to v1.
	byHash := map[[32]byte]bool{}
	for _, h := range v1 {
		byHash[h] = true
	}
	var same, renamed, differ int
	var differBytes int64
	for path, h := range v2 {
		switch old, ok := v1[path]; {
		case ok && old == h:
			same++
		case byHash[h]:
			renamed++
		default:
			differ++
			st, _ := os.Stat(filepath.Join(p.V2, path))
			differBytes += st.Size()
		}
	}
	if want := 40 - 3 - 1 - 1 - 5; same != want || renamed != 1 || differ != 14 {
		t.Errorf("v2 has %d unchanged, %d renamed, %d new or changed files; want %d, 1, 14", same, renamed, differ, want)
	}
	if differBytes != p.ChangedFileBytes {
		t.Errorf("changed files hold %d bytes; the pair says %d", differBytes, p.ChangedFileBytes)
	}
	if p.ChangedBytes <= 0 || p.ChangedBytes >= p.ChangedFileBytes || p.ChangedRegions != 14 {
		t.Errorf("changed bytes %d in %d regions (changed files %d)", p.ChangedBytes, p.ChangedRegions, p.ChangedFileBytes)
	}
	// Incompressible: no 64 KiB block repeats and the content is not all zero.
	b, err := os.ReadFile(filepath.Join(p.V1, "data/big.pack"))
	if err != nil || int64(len(b)) != spec.Size/16 {
		t.Fatalf("big file: %d bytes, %v", len(b), err)
	}
	if bytes.Count(b, []byte{0}) > len(b)/100 {
		t.Error("content is mostly zero")
	}
	// Deterministic: the same spec writes the same bytes.
	q, err := Generate(t.TempDir(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if w2, _ := tree(t, q.V2); len(w2) != len(v2) {
		t.Fatal("second run differs in files")
	} else {
		for k, h := range v2 {
			if w2[k] != h {
				t.Errorf("second run differs in %s", k)
			}
		}
	}
}

// TestHints: the exact hints cover all but the changed bytes, and every
// range's bytes equal the v1 bytes it names.
func TestHints(t *testing.T) {
	p, err := Generate(t.TempDir(), Spec{Size: 2 << 20, Files: 30, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	v2, _ := tree(t, p.V2)
	var order []string
	for path := range v2 {
		order = append(order, path)
	}
	slices.Sort(order)
	h, err := p.Hints("1.0", order)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(p.V2Size); err != nil {
		t.Fatal(err)
	}
	if got := h.Covered(0, p.V2Size); got != p.V2Size-p.ChangedBytes {
		t.Errorf("hints cover %d bytes; want %d", got, p.V2Size-p.ChangedBytes)
	}
	var all []byte
	for _, path := range order {
		b, err := os.ReadFile(filepath.Join(p.V2, path))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	for _, r := range h.Ranges {
		base, err := os.ReadFile(filepath.Join(p.V1, r.BasePath))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(all[r.Off:r.Off+r.Len], base[r.BaseOff:r.BaseOff+r.Len]) {
			t.Fatalf("range %+v does not match v1", r)
		}
	}
}
