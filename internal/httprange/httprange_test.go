package httprange

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// 10,000 and 50,000 disjoint one-byte ranges of a 1 MiB file: ServeContent
// alone answers a multipart body of 1.5 and 7.6 MB (measured; only the
// first is repeated here); behind Check the answer is a 416 of 61 bytes.
func TestCheckBoundsManyRanges(t *testing.T) {
	data := strings.Repeat("x", 1<<20)
	for _, n := range []int{10_000, 50_000} {
		var b strings.Builder
		b.WriteString("bytes=")
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%d-%d", i*2, i*2)
		}
		modes := []bool{false, true}
		if n > 10_000 {
			modes = modes[1:] // the unguarded 7.6 MB answer is slow under -race
		}
		for _, guarded := range modes {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if guarded && !Check(w, r, int64(len(data))) {
					return
				}
				http.ServeContent(w, r, "", time.Time{}, strings.NewReader(data))
			}))
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Range", b.String())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			srv.Close()
			t.Logf("%d ranges (%d-byte header), guarded %v: %s, %d body bytes", n, b.Len(), guarded, resp.Status, got)
			if guarded && (resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || got > 200) {
				t.Fatalf("%d ranges: %s with %d bytes, want 416 and <= 200 bytes", n, resp.Status, got)
			}
		}
	}
}
