package httprange

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParse checks the Range pre-check on hostile headers: it never
// panics, returns at most MaxRanges ranges, each inside the file and none
// overlapping, and Check refuses every header with more than
// MaxRanges entries whatever the parser made of it.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"bytes=0-0", "bytes=4-7", "bytes=-4", "bytes=10-", "bytes=0-1,3-4", "bytes=8-9,0-1",
		"bytes=0-15,0-15", "bytes=10-12,-4", "bytes= 1 - 2 , 3-", "bytes=+1-2", "bytes=-0",
		"bytes=99999999999999999999-", "bytes=5-1", "items=0-1", "bytes=,,,,", "bytes=0-0" + strings.Repeat(",0-0", 40),
	} {
		f.Add(s, int64(16))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 { // MinInt64
			size = 0
		}
		rs, err := Parse(h, size)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooMany) && !errors.Is(err, ErrOverlap) {
				t.Fatalf("unexpected error %v", err)
			}
		} else {
			if len(rs) > MaxRanges {
				t.Fatalf("%d ranges returned", len(rs))
			}
			var sum int64
			for i, r := range rs {
				if r.Start < 0 || r.Length <= 0 || r.Start+r.Length > size {
					t.Fatalf("range %+v outside a %d-byte file", r, size)
				}
				for _, q := range rs[:i] {
					if r.Start < q.Start+q.Length && q.Start < r.Start+r.Length {
						t.Fatalf("ranges %+v and %+v overlap", r, q)
					}
				}
				sum += r.Length
			}
			if sum > size {
				t.Fatalf("ranges sum to %d of a %d-byte file", sum, size)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", h)
		w := httptest.NewRecorder()
		ok := Check(w, req, size)
		if strings.Count(h, ",") >= MaxRanges && ok {
			t.Fatalf("header with %d commas passed", strings.Count(h, ","))
		}
	})
}
