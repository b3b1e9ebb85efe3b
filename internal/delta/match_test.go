package delta

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"
)

type tfile struct {
	path string
	data []byte
}

// matchFiles runs the whole matcher as publish does: index the base, scan
// each new file fed in chunks of chunk bytes, merge, extend.
func matchFiles(t testing.TB, base, next []tfile, bs, chunk int) []Range {
	t.Helper()
	ix := NewIndex(bs)
	baseData := map[string][]byte{}
	for _, f := range base {
		n, err := ix.AddFile(f.path, bytes.NewReader(f.data))
		if err != nil || n != int64(len(f.data)) {
			t.Fatalf("AddFile %s: %d, %v", f.path, n, err)
		}
		baseData[f.path] = f.data
	}
	var all []Range
	var payload []byte
	for _, f := range next {
		s := ix.Scan(int64(len(payload)), int64(len(f.data)))
		for p := f.data; len(p) > 0; {
			k := min(chunk, len(p))
			s.Write(p[:k])
			p = p[k:]
		}
		all = append(all, s.Ranges()...)
		payload = append(payload, f.data...)
	}
	rs, err := Extend(Merge(all), int64(len(payload)), bytes.NewReader(payload), func(p string) (io.ReaderAt, error) {
		return bytes.NewReader(baseData[p]), nil
	}, bs)
	if err != nil {
		t.Fatal(err)
	}
	checkRanges(t, rs, payload, baseData)
	return rs
}

// checkRanges fails unless every range is valid and its bytes really are
// equal in the new payload and the base file.
func checkRanges(t testing.TB, rs []Range, payload []byte, base map[string][]byte) {
	t.Helper()
	if len(rs) == 0 {
		return
	}
	h := Hints{Base: "1", Ranges: rs}
	if err := h.Validate(int64(len(payload))); err != nil {
		t.Fatalf("invalid ranges: %v", err)
	}
	for _, r := range rs {
		b := base[r.BasePath]
		if r.BaseOff+r.Len > int64(len(b)) {
			t.Fatalf("range %+v runs past base file of %d bytes", r, len(b))
		}
		if !bytes.Equal(payload[r.Off:r.Off+r.Len], b[r.BaseOff:r.BaseOff+r.Len]) {
			t.Fatalf("range %+v: bytes differ", r)
		}
	}
}

func covered(rs []Range) int64 {
	var c int64
	for _, r := range rs {
		c += r.Len
	}
	return c
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestMatch(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const bs = 64
	a := randBytes(r, 10000)
	b := randBytes(r, 7001)
	small := randBytes(r, 40) // shorter than a block
	// ins differs from its neighbours at both ends, so that exactly the
	// inserted bytes are new.
	ins := randBytes(r, 300)
	ins[0], ins[len(ins)-1] = ^a[5000], ^a[4999]
	changed := bytes.Clone(a)
	for i := 3000; i < 3010; i++ {
		changed[i] ^= 0xff
	}
	// More changed regions than Extend holds in one batch.
	large := randBytes(r, 40000)
	many := bytes.Clone(large)
	for i := 37; i < len(many); i += 200 {
		many[i] ^= 0xff
	}
	head := randBytes(r, 7)
	head[len(head)-1] = ^a[len(a)-1]
	cases := []struct {
		name     string
		base     []tfile
		next     []tfile
		want     int64 // bytes covered
		maxRange int   // at most this many ranges
	}{
		{"identical", []tfile{{"a", a}}, []tfile{{"a", a}}, 10000, 1},
		{"changed in place", []tfile{{"a", a}}, []tfile{{"a", changed}}, 10000 - 10, 2},
		// The 37 bytes before the first edit hold no whole block.
		{"many edits", []tfile{{"l", large}}, []tfile{{"l", many}}, 40000 - 200 - 37, 200},
		{"insertion", []tfile{{"a", a}}, []tfile{{"a", cat(a[:5000], ins, a[5000:])}}, 10000, 2},
		{"deletion", []tfile{{"a", a}}, []tfile{{"a", cat(a[:5000], a[5300:])}}, 9700, 2},
		{"shifted", []tfile{{"a", a}}, []tfile{{"a", cat(head, a)}}, 10000, 1},
		{"renamed", []tfile{{"a", a}}, []tfile{{"dir/z", a}}, 10000, 1},
		{"added and removed", []tfile{{"a", a}, {"gone", b}}, []tfile{{"a", a}, {"new", randBytes(r, 5000)}}, 10000, 1},
		{"moved between files", []tfile{{"a", a}, {"b", b}}, []tfile{{"x", cat(b[:3000], a[:4000])}, {"y", a[4000:]}}, 3000 + 10000, 3},
		{"small file unmatched by blocks", []tfile{{"s", small}}, []tfile{{"s", small}}, 0, 0},
		{"unrelated", []tfile{{"a", a}}, []tfile{{"a", b}}, 0, 0},
		{"empty base", nil, []tfile{{"a", a}}, 0, 0},
	}
	for _, c := range cases {
		for _, chunk := range []int{1, 63, 64, 1000, 1 << 20} {
			t.Run(fmt.Sprintf("%s/chunk%d", c.name, chunk), func(t *testing.T) {
				rs := matchFiles(t, c.base, c.next, bs, chunk)
				if got := covered(rs); got != c.want {
					t.Errorf("covered %d bytes, want %d; %d ranges, first %+v", got, c.want, len(rs), rs[:min(len(rs), 5)])
				}
				if len(rs) > c.maxRange {
					t.Errorf("%d ranges, want at most %d: %+v", len(rs), c.maxRange, rs)
				}
			})
		}
	}
}

// A base of one repeated block must neither blow up the table nor stop
// long runs from matching.
func TestMatchRepetitive(t *testing.T) {
	zeros := make([]byte, 1<<16)
	rs := matchFiles(t, []tfile{{"z", zeros}}, []tfile{{"z", zeros}}, 64, 4096)
	if covered(rs) != int64(len(zeros)) {
		t.Fatalf("covered %d of %d", covered(rs), len(zeros))
	}
	ix := NewIndex(64)
	ix.AddFile("z", bytes.NewReader(zeros))
	for k, c := range ix.table {
		if len(c) > maxCandidates {
			t.Fatalf("weak sum %x has %d candidates", k, len(c))
		}
	}
}

func TestBlockSize(t *testing.T) {
	for _, c := range []struct {
		pl, base int64
		want     int
	}{
		{256 << 10, 1 << 30, 4 << 10},
		{2 << 20, 1 << 30, 8 << 10},
		{16 << 20, 1 << 30, 64 << 10},
		{64 << 20, 1 << 30, 64 << 10},
		{256 << 10, 64 << 30, 16 << 10}, // 4M blocks at most
	} {
		if got := BlockSize(c.pl, c.base); got != c.want {
			t.Errorf("BlockSize(%d, %d) = %d, want %d", c.pl, c.base, got, c.want)
		}
	}
}

func FuzzMatch(f *testing.F) {
	f.Add([]byte("hello world, hello world, hello"), []byte("world, hello, xx hello world"), uint8(4), uint8(3))
	f.Add(bytes.Repeat([]byte{0}, 100), bytes.Repeat([]byte{0}, 99), uint8(8), uint8(7))
	f.Fuzz(func(t *testing.T, base, next []byte, bsel, csel uint8) {
		bs := 1 + int(bsel%32)
		chunk := 1 + int(csel)
		// Two base files and two new files cut from the inputs, so that
		// ranges meet file boundaries on both sides.
		cut := len(base) / 3
		ncut := len(next) / 2
		rs := matchFiles(t, []tfile{{"p", base[:cut]}, {"q/r", base[cut:]}},
			[]tfile{{"x", next[:ncut]}, {"y", next[ncut:]}}, bs, chunk)
		if covered(rs) > int64(len(next)) {
			t.Fatalf("covered more than the payload")
		}
	})
}

// The matcher's speed against SHA-256, which publish runs over the same
// bytes: go test -run X -bench 'Scan|SHA256' ./internal/delta/
func BenchmarkScan(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	const size = 16 << 20
	base := randBytes(r, size)
	for _, c := range []struct {
		name string
		next []byte
	}{
		{"unchanged", base},
		{"shifted", cat([]byte{1, 2, 3}, base)},
		{"unrelated", randBytes(r, size)},
	} {
		b.Run(c.name, func(b *testing.B) {
			ix := NewIndex(BlockSize(2<<20, size))
			ix.AddFile("a", bytes.NewReader(base))
			b.SetBytes(int64(len(c.next)))
			b.ResetTimer()
			for range b.N {
				s := ix.Scan(0, int64(len(c.next)))
				for p := c.next; len(p) > 0; {
					k := min(256<<10, len(p))
					s.Write(p[:k])
					p = p[k:]
				}
			}
		})
	}
}

// BenchmarkScanVsSHA256 times the scan and SHA-256 of the same bytes in
// turns, so that a shared machine's load weighs on both alike; the metric
// sha256-time/scan-time above 1 means the matcher is the faster.
func BenchmarkScanVsSHA256(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	const size = 16 << 20
	base := randBytes(r, size)
	for _, c := range []struct {
		name string
		next []byte
	}{
		{"unchanged", base},
		{"unrelated", randBytes(r, size)},
	} {
		b.Run(c.name, func(b *testing.B) {
			ix := NewIndex(BlockSize(2<<20, size))
			ix.AddFile("a", bytes.NewReader(base))
			var scan, sha time.Duration
			for range b.N {
				t0 := time.Now()
				s := ix.Scan(0, int64(len(c.next)))
				for p := c.next; len(p) > 0; {
					k := min(256<<10, len(p))
					s.Write(p[:k])
					p = p[k:]
				}
				t1 := time.Now()
				sha256.Sum256(c.next)
				sha += time.Since(t1)
				scan += t1.Sub(t0)
			}
			b.ReportMetric(float64(sha)/float64(scan), "sha256-time/scan-time")
			b.ReportMetric(float64(int64(b.N)*size)/scan.Seconds()/1e6, "scan-MB/s")
		})
	}
}

func BenchmarkIndex(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	base := randBytes(r, 16<<20)
	b.SetBytes(int64(len(base)))
	for range b.N {
		ix := NewIndex(BlockSize(2<<20, int64(len(base))))
		ix.AddFile("a", bytes.NewReader(base))
	}
}

func BenchmarkSHA256(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	data := randBytes(r, 16<<20)
	b.SetBytes(int64(len(data)))
	for range b.N {
		sha256.Sum256(data)
	}
}

// A finished scanner keeps no buffer (a release may have 100,000 files),
// and bytes past the file's size are ignored.
func TestScannerFreesBuffer(t *testing.T) {
	data := randBytes(rand.New(rand.NewPCG(5, 6)), 10000)
	ix := NewIndex(64)
	ix.AddFile("a", bytes.NewReader(data))
	s := ix.Scan(0, int64(len(data)))
	s.Write(data[:5000])
	s.Write(data[5000:])
	s.Write([]byte("more"))
	if s.buf != nil || covered(s.Ranges()) != 9984 {
		t.Fatalf("buffer %d bytes, covered %d", cap(s.buf), covered(s.Ranges()))
	}
}

func TestWeakSum(t *testing.T) {
	data := randBytes(rand.New(rand.NewPCG(7, 8)), 1000)
	for _, n := range []int{0, 1, 7, 8, 9, 64, 999, 1000} {
		var a, b uint32
		for _, x := range data[:n] {
			a += uint32(x)
			b += a
		}
		if ga, gb := weakSum(data[:n]); ga != a || gb != b {
			t.Errorf("weakSum of %d bytes = %d, %d, want %d, %d", n, ga, gb, a, b)
		}
	}
}
