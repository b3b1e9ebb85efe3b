// Package storetest is the conformance suite every catalog.Store passes.
// A store's own test calls Run (or RunReadOnly for read-only stores) with a
// function that makes a fresh, empty store. Tests of code above the Store
// interface use its helpers: EachStore runs them on a directory and an S3
// store, InitCatalog and Client set up a catalog in one, WritePayload
// writes files to publish, Contents sums what a store holds.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
)

// LargeSize is the size of the object used to exercise large (multipart)
// uploads: larger than minio-go's 16 MiB part size.
const LargeSize = 20 << 20

// InvalidKeys are keys every store must refuse.
var InvalidKeys = []string{
	"", "../x", "a/../../x", "/abs", "a//b", "a/./b", "./a", "a/", "a\\b", "x\x01", "x\x7f", "..", ".",
}

// fixtures are the objects the read checks expect, shared by Run and
// RunReadOnly.
var fixtures = map[string][]byte{
	"metadata/root.json":           []byte(`{"signed":{}}`),
	"data/app/1.0/bin/app":         pattern(100),
	"data/app/1.0/empty":           {},
	"data/app/1.0/my file+1 ü.txt": []byte("spaces, plus and non-ASCII"),
	"torrents/app/1.0.torrent":     []byte("d4:infod4:name3:appee"),
}

// Fixtures returns a copy of the objects RunReadOnly expects its store to
// hold.
func Fixtures() map[string][]byte {
	m := make(map[string][]byte, len(fixtures))
	for k, v := range fixtures {
		m[k] = bytes.Clone(v)
	}
	return m
}

// pattern returns n bytes whose value is their index mod 251, so that any
// misplaced range shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// Run runs the full conformance suite. newStore must return a new, empty
// store each time it is called (each subtest calls it once).
func Run(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	for _, c := range writableChecks {
		t.Run(c.name, func(t *testing.T) { c.check(t, newStore(t)) })
	}
}

// writableChecks are Run's subtests, in order; each gets a fresh, empty store.
var writableChecks = []struct {
	name  string
	check func(*testing.T, catalog.Store)
}{
	{"PutGetRoundTrip", testPutGetRoundTrip},
	{"Overwrite", testOverwrite},
	{"SizeMismatch", testSizeMismatch},
	{"GetRange", testGetRange},
	{"Missing", testMissing},
	{"Delete", testDelete},
	{"List", testList},
	{"InvalidKeys", testInvalidKeys},
	{"Large", testLarge},
	{"ConcurrentPuts", testConcurrentPuts},
	{"OverwriteIsAtomic", testOverwriteIsAtomic},
	{"CreateOnly", runCreateOnly},
	{"Copy", testCopy},
	{"Compose", testCompose},
	{"ListModTime", testListModTime},
}

// testPutGetRoundTrip checks that what is put is read back whole, with its size, for every fixture key.
func testPutGetRoundTrip(t *testing.T, s catalog.Store) {
	for key, data := range fixtures {
		put(t, s, key, data)
	}
	for key, data := range fixtures {
		checkGet(t, s, key, data)
		checkStat(t, s, key, int64(len(data)))
	}
}

// testOverwrite checks that a put over an existing key replaces it, shorter or longer.
func testOverwrite(t *testing.T, s catalog.Store) {
	put(t, s, "metadata/timestamp.json", []byte("first version, rather long"))
	put(t, s, "metadata/timestamp.json", []byte("second"))
	checkGet(t, s, "metadata/timestamp.json", []byte("second"))
	checkStat(t, s, "metadata/timestamp.json", 6)
	put(t, s, "metadata/timestamp.json", []byte("third, longer than the second"))
	checkGet(t, s, "metadata/timestamp.json", []byte("third, longer than the second"))
}

// testSizeMismatch checks that a put whose reader does not match its size, or fails, changes nothing and leaves nothing behind.
func testSizeMismatch(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	old := []byte("old content")
	put(t, s, "a/obj", old)
	cases := []struct {
		name string
		data []byte
		size int64
	}{
		{"short", []byte("new"), 10},
		{"long", []byte("new content, too long"), 5},
		{"empty reader", nil, 3},
		{"zero size, data", []byte("x"), 0},
	}
	for _, c := range cases {
		err := s.Put(ctx, "a/obj", bytes.NewReader(c.data), c.size)
		if err == nil {
			t.Errorf("%s: Put with %d bytes for size %d succeeded", c.name, len(c.data), c.size)
		}
		checkGet(t, s, "a/obj", old)
		if err := s.Put(ctx, "a/new", bytes.NewReader(c.data), c.size); err == nil {
			t.Errorf("%s: Put of a new key with %d bytes for size %d succeeded", c.name, len(c.data), c.size)
		}
		checkMissing(t, s, "a/new")
	}
	// A reader that fails.
	boom := errors.New("boom")
	err := s.Put(ctx, "a/obj", io.MultiReader(strings.NewReader("xx"), errReader{boom}), 10)
	if !errors.Is(err, boom) {
		t.Errorf("Put with a failing reader: got %v, want an error wrapping %v", err, boom)
	}
	checkGet(t, s, "a/obj", old)
	checkList(t, s, "", "a/obj") // no temporary files left behind
}

// testGetRange checks that ranges read exactly the bytes asked for, including at and past the end.
func testGetRange(t *testing.T, s catalog.Store) {
	put(t, s, "data/app/1.0/bin/app", pattern(100))
	put(t, s, "data/app/1.0/empty", nil)
	checkRanges(t, s)
}

// testMissing checks that keys that are not objects (siblings, prefixes, paths below an object) are ErrNotFound.
func testMissing(t *testing.T, s catalog.Store) {
	put(t, s, "data/app/1.0/bin/app", []byte("x"))
	for _, key := range []string{
		"nothing",
		"data/app/1.0/other",     // sibling of an object
		"data/app/1.0",           // a "directory"
		"data/app/1.0/bin/app/x", // below an object
		"no/such/dir/x",
	} {
		checkMissing(t, s, key)
	}
}

// testDelete checks that delete removes one object, succeeds on missing keys and lets the key be reused.
func testDelete(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	put(t, s, "data/a/1", []byte("one"))
	put(t, s, "data/a/2", []byte("two"))
	if err := s.Delete(ctx, "data/a/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	checkMissing(t, s, "data/a/1")
	checkGet(t, s, "data/a/2", []byte("two"))
	for _, key := range []string{"data/a/1", "never/was", "data/a"} {
		if err := s.Delete(ctx, key); err != nil {
			t.Errorf("Delete(%q) of a missing key: %v", key, err)
		}
	}
	checkList(t, s, "", "data/a/2")
	put(t, s, "data/a/1", []byte("again"))
	checkGet(t, s, "data/a/1", []byte("again"))
}

// testList checks that list returns keys under a prefix, sorted, with sizes, for whole and partial segments.
func testList(t *testing.T, s catalog.Store) {
	keys := []string{ // sorted: '.' sorts before '/'
		"a.txt",
		"data/app/1.0/a",
		"data/app/1.0/b.txt",
		"data/app/1.0/b/c",
		"data/app/10/x",
		"data/apple/x",
		"data/b",
		"metadata/root.json",
		"s/a.txt",
		"s/a/b",
	}
	// Put in reverse so that insertion order cannot pass for sorting.
	for _, k := range slices.Backward(keys) {
		put(t, s, k, []byte(k))
	}
	checkList(t, s, "", keys...)
	checkList(t, s, "data/", keys[1:7]...)
	checkList(t, s, "data/ap", keys[1:6]...) // partial segment
	checkList(t, s, "data/app/", keys[1:5]...)
	checkList(t, s, "data/app/1", keys[1:5]...)
	checkList(t, s, "data/app/1.0/", keys[1:4]...)
	checkList(t, s, "data/app/1.0/b", "data/app/1.0/b.txt", "data/app/1.0/b/c")
	checkList(t, s, "data/app/1.0/b/c", "data/app/1.0/b/c")
	checkList(t, s, "data/app/1.0/b/c/")
	checkList(t, s, "s/", "s/a.txt", "s/a/b")
	checkList(t, s, "s/a", "s/a.txt", "s/a/b")
	checkList(t, s, "s/a/", "s/a/b")
	checkList(t, s, "a", "a.txt")
	checkList(t, s, "nope/")
	checkList(t, s, "nope")
	checkList(t, s, "data/zzz/")
	if t.Failed() {
		return
	}
	list, err := s.List(t.Context(), "data/app/1.0/")
	if err != nil {
		t.Fatal(err)
	}
	for _, oi := range list {
		if oi.Size != int64(len(oi.Key)) {
			t.Errorf("List: %s has size %d, want %d", oi.Key, oi.Size, len(oi.Key))
		}
	}
}

// testInvalidKeys checks that every operation refuses the keys of InvalidKeys and writes nothing.
func testInvalidKeys(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	for _, key := range InvalidKeys {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put(%q) succeeded", key)
		}
		checkInvalidKeyReads(t, s, key)
		if err := s.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q) succeeded", key)
		}
	}
	checkList(t, s, "")
}

// checkInvalidKeyReads checks that Get, GetRange and Stat refuse key.
func checkInvalidKeyReads(t *testing.T, s catalog.Store, key string) {
	t.Helper()
	ctx := t.Context()
	if rc, err := s.Get(ctx, key); err == nil {
		rc.Close()
		t.Errorf("Get(%q) succeeded", key)
	}
	if rc, err := s.GetRange(ctx, key, 0, 1); err == nil {
		rc.Close()
		t.Errorf("GetRange(%q) succeeded", key)
	}
	if _, err := s.Stat(ctx, key); err == nil {
		t.Errorf("Stat(%q) succeeded", key)
	}
}

// testLarge checks that an object larger than a multipart part round-trips, ranges across parts, and wrong sizes still fail.
func testLarge(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	data := randomBytes(LargeSize, 1)
	want := sha256.Sum256(data)
	// A plain reader, so the store cannot take shortcuts via ReaderAt or
	// Seeker.
	if err := s.Put(ctx, "data/big/1/blob", onlyReader{bytes.NewReader(data)}, int64(len(data))); err != nil {
		t.Fatalf("Put %d bytes: %v", len(data), err)
	}
	checkStat(t, s, "data/big/1/blob", int64(len(data)))
	rc, err := s.Get(ctx, "data/big/1/blob")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	rc.Close()
	if err != nil {
		t.Fatalf("read after %d bytes: %v", n, err)
	}
	if got := h.Sum(nil); n != int64(len(data)) || !bytes.Equal(got, want[:]) {
		t.Fatalf("Get: %d bytes, sha256 %x; want %d bytes, %x", n, got, len(data), want)
	}
	// A range across the 16 MiB part boundary.
	off := int64(16<<20 - 1000)
	checkRange(t, s, "data/big/1/blob", off, 5000, data[off:off+5000])
	checkRange(t, s, "data/big/1/blob", int64(len(data))-10, -1, data[len(data)-10:])

	// Wrong sizes at this scale fail too and keep the old object.
	for _, d := range []int{-1, +1} {
		other := randomBytes(LargeSize+d, 2)
		if err := s.Put(ctx, "data/big/1/blob", onlyReader{bytes.NewReader(other)}, LargeSize); err == nil {
			t.Errorf("Put of %d bytes as %d succeeded", len(other), LargeSize)
		}
	}
	checkStat(t, s, "data/big/1/blob", int64(len(data)))
	checkRange(t, s, "data/big/1/blob", 0, 4096, data[:4096])
	checkList(t, s, "", "data/big/1/blob")
}

// testConcurrentPuts checks that parallel puts into one directory all land whole.
func testConcurrentPuts(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := []byte(strings.Repeat(fmt.Sprint(i), 1000+i))
			errs[i] = s.Put(ctx, fmt.Sprintf("data/same/dir/%02d", i), bytes.NewReader(data), int64(len(data)))
		})
	}
	wg.Wait()
	var want []string
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
		want = append(want, fmt.Sprintf("data/same/dir/%02d", i))
		checkGet(t, s, want[i], []byte(strings.Repeat(fmt.Sprint(i), 1000+i)))
	}
	checkList(t, s, "data/", want...)
}

// testOverwriteIsAtomic checks that readers racing an overwrite see one whole version, never a mix.
func testOverwriteIsAtomic(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	const size = 256 << 10
	version := func(v byte) []byte { return bytes.Repeat([]byte{v}, size) }
	put(t, s, "metadata/snapshot.json", version('a'))
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	wg.Go(func() {
		for v := byte('b'); v <= 'z' && time.Now().Before(deadline); v++ {
			if err := s.Put(ctx, "metadata/snapshot.json", bytes.NewReader(version(v)), size); err != nil {
				t.Errorf("Put: %v", err)
				return
			}
		}
	})
	for range 2 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				rc, err := s.Get(ctx, "metadata/snapshot.json")
				if err != nil {
					t.Errorf("Get during overwrite: %v", err)
					return
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Errorf("read during overwrite: %v", err)
					return
				}
				if len(b) != size || !bytes.Equal(b, version(b[0])) {
					t.Errorf("read a torn object: %d bytes", len(b))
					return
				}
			}
		})
	}
	wg.Wait()
}

// testCopy checks that CopyObject replaces or creates the destination, independently of its source, and reports a missing source.
func testCopy(t *testing.T, s catalog.Store) {
	ctx := t.Context()
	put(t, s, "staging/a/blob", []byte("staged bytes"))
	put(t, s, "data/a/1/f", []byte("old"))
	if err := catalog.CopyObject(ctx, s, "staging/a/blob", "data/a/1/f"); err != nil {
		t.Fatal(err)
	}
	checkGet(t, s, "data/a/1/f", []byte("staged bytes"))
	if err := catalog.CopyObject(ctx, s, "staging/a/blob", "data/b/new/f"); err != nil {
		t.Fatal(err)
	}
	checkGet(t, s, "data/b/new/f", []byte("staged bytes"))
	// The copy is independent of its source.
	if err := s.Delete(ctx, "staging/a/blob"); err != nil {
		t.Fatal(err)
	}
	checkGet(t, s, "data/a/1/f", []byte("staged bytes"))
	if err := catalog.CopyObject(ctx, s, "staging/missing", "data/x"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("copy of a missing object: got %v, want ErrNotFound", err)
	}
	checkList(t, s, "", "data/a/1/f", "data/b/new/f")
}

// testCompose checks, for stores that are Composers, that Compose joins
// ranges of stored objects and new bytes into a new object, replaces an
// existing one, and leaves the destination untouched when a source is
// missing, a reader is short or a part is too small.
func testCompose(t *testing.T, s catalog.Store) {
	c, ok := s.(catalog.Composer)
	if !ok {
		t.Skip("not a Composer")
	}
	ctx := t.Context()
	m := c.MinPartSize()
	src := make([]byte, 2*m+100)
	for i := range src {
		src[i] = byte(i*7 + i/251)
	}
	fresh := bytes.Repeat([]byte("new bytes "), int(m/10)+1)[:m]
	put(t, s, "data/a/1/f", src)
	put(t, s, "data/a/2/f", []byte("old"))
	parts := []catalog.Part{
		{Src: "data/a/1/f", Off: 3, Len: m},
		{R: bytes.NewReader(fresh), Len: m},
		{Src: "data/a/1/f", Off: 2*m + 90, Len: 10},
	}
	if err := c.Compose(ctx, "data/a/2/f", parts); err != nil {
		t.Fatal(err)
	}
	want := append(append(slices.Clone(src[3:3+m]), fresh...), src[2*m+90:]...)
	checkGet(t, s, "data/a/2/f", want)

	for _, bad := range []struct {
		name  string
		parts []catalog.Part
	}{
		{"missing source", []catalog.Part{{Src: "data/none", Off: 0, Len: 1}}},
		{"range past the end", []catalog.Part{{Src: "data/a/1/f", Off: 2*m + 90, Len: 11}}},
		{"short reader", []catalog.Part{{R: bytes.NewReader(fresh[:10]), Len: 11}}},
		{"small part first", []catalog.Part{{Src: "data/a/1/f", Off: 0, Len: m - 1}, {Src: "data/a/1/f", Off: 0, Len: 1}}},
	} {
		err := c.Compose(ctx, "data/a/2/f", bad.parts)
		if err == nil {
			t.Errorf("%s: Compose succeeded", bad.name)
		}
		if bad.name == "missing source" && !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", bad.name, err)
		}
		checkGet(t, s, "data/a/2/f", want)
	}
	checkList(t, s, "", "data/a/1/f", "data/a/2/f")
}

// testListModTime checks that list reports modification times close to now.
func testListModTime(t *testing.T, s catalog.Store) {
	before := time.Now().Add(-time.Minute)
	put(t, s, "staging/x", []byte("x"))
	list, err := s.List(t.Context(), "staging/")
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if mt := list[0].ModTime; mt.Before(before) || mt.After(time.Now().Add(time.Minute)) {
		t.Errorf("ModTime %v is not about now", mt)
	}
}

// runCreateOnly checks the create-only write that catalog commits rely on.
func runCreateOnly(t *testing.T, st catalog.Store) {
	ctx := t.Context()
	s, ok := st.(catalog.CreateOnlyStore)
	if !ok {
		t.Fatalf("%T is writable but has no PutIfAbsent: catalogs on it could lose releases", st)
	}
	first := []byte("first writer")
	if err := s.PutIfAbsent(ctx, "metadata/2.snapshot.json", bytes.NewReader(first), int64(len(first))); err != nil {
		t.Fatalf("PutIfAbsent of a free key: %v", err)
	}
	checkGet(t, s, "metadata/2.snapshot.json", first)
	second := []byte("second writer, longer")
	err := s.PutIfAbsent(ctx, "metadata/2.snapshot.json", bytes.NewReader(second), int64(len(second)))
	if !errors.Is(err, catalog.ErrExists) {
		t.Errorf("PutIfAbsent of a taken key: got %v, want ErrExists", err)
	}
	checkGet(t, s, "metadata/2.snapshot.json", first)
	// A failed upload neither creates the key nor leaves anything behind.
	if err := s.PutIfAbsent(ctx, "metadata/3.snapshot.json", bytes.NewReader([]byte("ab")), 5); err == nil {
		t.Error("PutIfAbsent with a short reader succeeded")
	}
	checkMissing(t, s, "metadata/3.snapshot.json")
	if err := s.PutIfAbsent(ctx, "../escape", bytes.NewReader(nil), 0); err == nil {
		t.Error("PutIfAbsent accepted an invalid key")
	}
	// Writers racing on one free key: exactly one wins, the rest see
	// ErrExists, and the object is whole and the winner's.
	for round := range 5 {
		key := fmt.Sprintf("metadata/%d.targets.json", 10+round)
		const writers = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []int
		)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := bytes.Repeat([]byte{byte('a' + w)}, 4096+w)
				err := s.PutIfAbsent(ctx, key, bytes.NewReader(body), int64(len(body)))
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, w)
					mu.Unlock()
				case !errors.Is(err, catalog.ErrExists):
					t.Errorf("racing writer %d: %v (want nil or ErrExists)", w, err)
				}
			}()
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("round %d: %d writers won (%v), want exactly 1", round, len(wins), wins)
		}
		w := wins[0]
		checkGet(t, s, key, bytes.Repeat([]byte{byte('a' + w)}, 4096+w))
	}
	checkList(t, s, "metadata/", "metadata/10.targets.json", "metadata/11.targets.json",
		"metadata/12.targets.json", "metadata/13.targets.json", "metadata/14.targets.json", "metadata/2.snapshot.json")
}

// RunReadOnly runs the read checks against a store that cannot be written.
// newStore must return a store holding exactly the objects of Fixtures.
// Put and Delete must fail with errors wrapping catalog.ErrReadOnly; List
// must either do the same or list the fixtures correctly.
func RunReadOnly(t *testing.T, newStore func(t *testing.T) catalog.Store) {
	t.Run("Get", func(t *testing.T) {
		s := newStore(t)
		for key, data := range fixtures {
			checkGet(t, s, key, data)
			checkStat(t, s, key, int64(len(data)))
		}
	})
	t.Run("GetRange", func(t *testing.T) {
		checkRanges(t, newStore(t))
	})
	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		for _, key := range []string{"nothing", "data/app/1.0/other", "data/app/1.0", "data/app/1.0/bin/app/x", "no/such/dir/x"} {
			checkMissing(t, s, key)
		}
	})
	t.Run("InvalidKeys", func(t *testing.T) {
		s := newStore(t)
		for _, key := range InvalidKeys {
			checkInvalidKeyReads(t, s, key)
		}
	})
	t.Run("Writes", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if err := s.Put(ctx, "metadata/root.json", strings.NewReader("x"), 1); !errors.Is(err, catalog.ErrReadOnly) {
			t.Errorf("Put: got %v, want an error wrapping ErrReadOnly", err)
		}
		if err := s.Delete(ctx, "metadata/root.json"); !errors.Is(err, catalog.ErrReadOnly) {
			t.Errorf("Delete: got %v, want an error wrapping ErrReadOnly", err)
		}
		checkGet(t, s, "metadata/root.json", fixtures["metadata/root.json"])
	})
	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		list, err := s.List(t.Context(), "")
		if errors.Is(err, catalog.ErrReadOnly) {
			return
		}
		if err != nil {
			t.Fatalf("List: got %v, want the fixtures or an error wrapping ErrReadOnly", err)
		}
		var want []string
		for k := range fixtures {
			want = append(want, k)
		}
		slices.Sort(want)
		if got := keysOf(list); !slices.Equal(got, want) {
			t.Errorf("List: got %q, want %q", got, want)
		}
	})
}

// checkRanges checks GetRange on data/app/1.0/bin/app (pattern(100)) and
// on the empty data/app/1.0/empty. The contract: length < 0 reads to the
// end; a range running past the end is cut short; length 0 reads nothing;
// (0, -1) reads any object whole, even an empty one; any other offset at
// or past the end is an error that does not wrap ErrNotFound.
func checkRanges(t *testing.T, s catalog.Store) {
	t.Helper()
	const key = "data/app/1.0/bin/app"
	data := pattern(100)
	for _, c := range []struct {
		off, n int64
		want   []byte
	}{
		{10, 20, data[10:30]}, // middle
		{0, 1, data[:1]},      // first byte
		{99, 1, data[99:]},    // last byte
		{90, -1, data[90:]},   // to the end
		{0, -1, data},         // whole
		{0, 100, data},        // exactly whole
		{95, 10, data[95:]},   // past the end: cut short
		{0, 1000, data},       // far past the end: cut short
		{50, 0, []byte{}},     // nothing
		{100, 0, []byte{}},    // nothing, at the end
	} {
		checkRange(t, s, key, c.off, c.n, c.want)
	}
	checkRange(t, s, "data/app/1.0/empty", 0, -1, []byte{})
	checkRange(t, s, "data/app/1.0/empty", 0, 0, []byte{})
	for _, c := range []struct{ off, n int64 }{{100, 1}, {100, -1}, {150, -1}, {150, 10}, {-1, 5}} {
		rc, err := s.GetRange(t.Context(), key, c.off, c.n)
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("GetRange(%s, %d, %d) of a 100-byte object succeeded with %d bytes", key, c.off, c.n, len(b))
		} else if errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("GetRange(%s, %d, %d): %v; should not wrap ErrNotFound", key, c.off, c.n, err)
		}
	}
	if rc, err := s.GetRange(t.Context(), "data/app/1.0/empty", 0, 1); err == nil {
		rc.Close()
		t.Errorf("GetRange(empty, 0, 1) succeeded")
	}
}

func put(t *testing.T, s catalog.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(data), err)
	}
}

func checkGet(t *testing.T, s catalog.Store, key string, want []byte) {
	t.Helper()
	rc, err := s.Get(t.Context(), key)
	if err != nil {
		t.Errorf("Get(%q): %v", key, err)
		return
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Errorf("Get(%q): read: %v", key, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Get(%q) = %s; want %s", key, short(got), short(want))
	}
}

func checkRange(t *testing.T, s catalog.Store, key string, off, n int64, want []byte) {
	t.Helper()
	rc, err := s.GetRange(t.Context(), key, off, n)
	if err != nil {
		t.Errorf("GetRange(%q, %d, %d): %v", key, off, n, err)
		return
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Errorf("GetRange(%q, %d, %d): read: %v", key, off, n, err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("GetRange(%q, %d, %d) = %s; want %s", key, off, n, short(got), short(want))
	}
}

func checkStat(t *testing.T, s catalog.Store, key string, size int64) {
	t.Helper()
	oi, err := s.Stat(t.Context(), key)
	if err != nil {
		t.Errorf("Stat(%q): %v", key, err)
		return
	}
	if oi.Key != key || oi.Size != size {
		t.Errorf("Stat(%q) = %+v; want key %q, size %d", key, oi, key, size)
	}
}

// checkMissing checks that Get, GetRange and Stat of key fail with
// ErrNotFound and name the key.
func checkMissing(t *testing.T, s catalog.Store, key string) {
	t.Helper()
	ctx := t.Context()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, catalog.ErrNotFound) {
			t.Errorf("%s(%q) of a missing key: got %v, want an error wrapping ErrNotFound", op, key, err)
		} else if !strings.Contains(err.Error(), key) && !strings.Contains(err.Error(), escapedPath(key)) {
			t.Errorf("%s(%q): error %q does not name the key", op, key, err)
		}
	}
	rc, err := s.Get(ctx, key)
	if err == nil {
		rc.Close()
	}
	check("Get", err)
	rc, err = s.GetRange(ctx, key, 1, 2)
	if err == nil {
		rc.Close()
	}
	check("GetRange", err)
	_, err = s.Stat(ctx, key)
	check("Stat", err)
}

// escapedPath is how an HTTP store may spell key inside a URL.
func escapedPath(key string) string {
	return strings.ReplaceAll(key, " ", "%20")
}

func checkList(t *testing.T, s catalog.Store, prefix string, want ...string) {
	t.Helper()
	list, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Errorf("List(%q): %v", prefix, err)
		return
	}
	if got := keysOf(list); !slices.Equal(got, want) {
		t.Errorf("List(%q) = %q; want %q", prefix, got, want)
	}
}

func keysOf(list []catalog.ObjectInfo) []string {
	keys := []string{}
	for _, oi := range list {
		keys = append(keys, oi.Key)
	}
	return keys
}

func randomBytes(n int, seed uint64) []byte {
	var s [32]byte
	s[0] = byte(seed)
	r := rand.NewChaCha8(s)
	b := make([]byte, n)
	r.Read(b)
	return b
}

func short(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%d bytes %q…", len(b), b[:40])
	}
	return fmt.Sprintf("%q", b)
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
