package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strings"
)

// The agent's token travels only in an Authorization header, and only to
// the hosts it was configured for: never in a URL (URLs end up in logs,
// error messages, proxies' access logs and the tracker client's errors).

// readTokenFile reads token_file, refusing one that others can read (the
// same rule as key files).
func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("token_file %s has mode %v: it must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("token_file %s is empty", path)
	}
	return tok, nil
}

// hostOf is the host:port of a configured http(s) URL ("" otherwise).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return ""
	}
	return u.Host
}

// bearerTransport adds the token to requests for one host. It checks the
// host on every round trip because a transport also carries redirected
// requests: a redirect to a presigned S3 URL must not take the token along.
type bearerTransport struct {
	token, host string
	next        http.RoundTripper
}

// newBearerTransport returns a transport that authenticates requests to
// rawURL's host and sends every request through next; with no token it
// is next.
func newBearerTransport(token, rawURL string, next http.RoundTripper) http.RoundTripper {
	if token == "" {
		return next
	}
	return bearerTransport{token: token, host: hostOf(rawURL), next: next}
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.host == "" || r.URL.Host != b.host {
		return b.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// trackerDirector is the BitTorrent client's hook for its HTTP tracker
// requests: it authenticates announces to the configured trackers only.
func trackerDirector(token string, trackerURLs ...string) func(*http.Request) error {
	hosts := map[string]bool{}
	for _, u := range trackerURLs {
		if h := hostOf(u); h != "" {
			hosts[h] = true
		}
	}
	if token == "" || len(hosts) == 0 {
		return nil
	}
	return func(r *http.Request) error {
		if hosts[r.URL.Host] {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}
}

// newBearerTransports is newBearerTransport for several configured URLs.
func newBearerTransports(token string, rawURLs []string, next http.RoundTripper) http.RoundTripper {
	for _, u := range rawURLs {
		next = newBearerTransport(token, u, next)
	}
	return next
}

// redacted is what a secret is replaced with in log records.
const redacted = "[REDACTED]"

// redactHandler replaces the token wherever it appears in a log record:
// the message, string values, errors and other printed values. The token
// is kept out of URLs, so this is the second line: a library or a server's
// error message that echoes it back must not put it in the log.
type redactHandler struct {
	next   slog.Handler
	secret string
}

// redactLogger returns log with secret removed from its records.
func redactLogger(log *slog.Logger, secret string) *slog.Logger {
	if secret == "" {
		return log
	}
	return slog.New(redactHandler{next: log.Handler(), secret: secret})
}

func (h redactHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.clean(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = h.attr(a)
	}
	return redactHandler{next: h.next.WithAttrs(clean), secret: h.secret}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{next: h.next.WithGroup(name), secret: h.secret}
}

func (h redactHandler) clean(s string) string {
	return strings.ReplaceAll(s, h.secret, redacted)
}

func (h redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); strings.Contains(s, h.secret) {
			return slog.String(a.Key, h.clean(s))
		}
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = h.attr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		if s := fmt.Sprint(v.Any()); strings.Contains(s, h.secret) {
			return slog.String(a.Key, h.clean(s))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
