//go:build linux

package main

import "testing"

// TestParseAnswer: pipelined answers, Content-Length and chunked bodies,
// and incomplete input, which must wait for more bytes.
func TestParseAnswer(t *testing.T) {
	one := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
	chunked := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
	b := []byte(one + chunked + "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
	for _, want := range []struct {
		body    string
		status  int
		closing bool
	}{{"hello", 200, false}, {"abcde", 200, false}, {"", 403, true}} {
		used, body, status, closing, err := parseAnswer(b)
		if err != nil || used == 0 || string(body) != want.body || status != want.status || closing != want.closing {
			t.Fatalf("got used %d body %q status %d closing %v err %v, want %+v", used, body, status, closing, err, want)
		}
		b = b[used:]
	}
	if len(b) != 0 {
		t.Fatalf("%d bytes left", len(b))
	}
	for _, partial := range []string{one[:10], one[:len(one)-1], chunked[:len(chunked)-2]} {
		if used, _, _, _, err := parseAnswer([]byte(partial)); used != 0 || err != nil {
			t.Errorf("partial %q: used %d, err %v", partial, used, err)
		}
	}
	if _, _, _, _, err := parseAnswer([]byte("HTTP/1.0 200 OK\r\n\r\n")); err == nil {
		t.Error("HTTP/1.0 answer accepted")
	}
}
