package tracker

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRefusalLogBounded: 500 junk announces from one client are all
// refused, but write at most the burst of log lines; the next line logged
// counts the ones left out.
func TestRefusalLogBounded(t *testing.T) {
	var buf bytes.Buffer
	tr := New(Config{})
	tr.SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	const n = 500
	for i := range n {
		if b := get(t, tr, "/announce?info_hash=short&i="+strconv.Itoa(i), "10.1.1.1:1"); !strings.Contains(string(b), "failure reason") {
			t.Fatalf("junk announce %d not refused: %q", i, b)
		}
	}
	lines := strings.Count(buf.String(), "tracker refused request")
	if lines < 1 || lines > 25 {
		t.Fatalf("%d refusals wrote %d log lines, want 1..25", n, lines)
	}
	time.Sleep(600 * time.Millisecond) // one line's worth at 2 a second
	buf.Reset()
	get(t, tr, "/announce?info_hash=short", "10.1.1.1:1")
	m := regexp.MustCompile(`unlogged_before=(\d+)`).FindStringSubmatch(buf.String())
	if m == nil {
		t.Fatalf("no line after the pause: %q", buf.String())
	}
	if d, _ := strconv.Atoi(m[1]); d != n-lines {
		t.Fatalf("unlogged_before=%d, want %d", d, n-lines)
	}
}
