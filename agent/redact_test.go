package agent_test

import (
	"bytes"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/agent"
)

const redactedSecret = "tok-SECRET-7b1f0c9e4d2a"

// The redaction handler removes the token from messages, strings, errors,
// groups and attributes bound with With.
func TestLogRedaction(t *testing.T) {
	var buf bytes.Buffer
	log := agent.RedactLoggerForTest(slog.New(slog.NewTextHandler(&buf, nil)), redactedSecret)
	log = log.With("url", "http://o/announce?token="+redactedSecret)
	log.Warn("failed "+redactedSecret, "err", &net.OpError{Op: "dial", Err: &net.AddrError{Err: "x", Addr: redactedSecret}},
		slog.Group("g", "v", redactedSecret), "n", 3, "path", filepath.Join("a", redactedSecret))
	if strings.Contains(buf.String(), redactedSecret) {
		t.Fatalf("token in the log: %s", buf.String())
	}
	if c := strings.Count(buf.String(), "[REDACTED]"); c != 5 {
		t.Errorf("%d redactions, want 5: %s", c, buf.String())
	}
}
