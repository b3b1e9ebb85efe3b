package origin

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseRanges checks the Range pre-check on hostile headers: it never
// panics, returns at most maxRanges ranges, each inside the file and none
// overlapping, and checkRange refuses every header with more than
// maxRanges entries whatever the parser made of it.
func FuzzParseRanges(f *testing.F) {
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
		rs, err := parseRanges(h, size)
		if err != nil {
			if !errors.Is(err, errBadRange) && !errors.Is(err, errTooManyRanges) && !errors.Is(err, errOverlap) {
				t.Fatalf("unexpected error %v", err)
			}
		} else {
			if len(rs) > maxRanges {
				t.Fatalf("%d ranges returned", len(rs))
			}
			var sum int64
			for i, r := range rs {
				if r.start < 0 || r.length <= 0 || r.start+r.length > size {
					t.Fatalf("range %+v outside a %d-byte file", r, size)
				}
				for _, q := range rs[:i] {
					if r.start < q.start+q.length && q.start < r.start+r.length {
						t.Fatalf("ranges %+v and %+v overlap", r, q)
					}
				}
				sum += r.length
			}
			if sum > size {
				t.Fatalf("ranges sum to %d of a %d-byte file", sum, size)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header.Set("Range", h)
		w := httptest.NewRecorder()
		ok := checkRange(w, req, size)
		if strings.Count(h, ",") >= maxRanges && ok {
			t.Fatalf("header with %d commas passed", strings.Count(h, ","))
		}
	})
}
