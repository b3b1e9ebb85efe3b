package agent

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swarmship/swarmship/policy"
)

// token_file follows the key-file rule: group- or world-readable files are
// refused at start, naming the file and the fix.
func TestTokenFileMustBeOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root.json")
	if err := os.WriteFile(root, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode    os.FileMode
		content string
		wantErr string // "" = the token file is accepted
	}{
		{0o644, "s3cr3t-value", "chmod 600"},
		{0o640, "s3cr3t-value", "chmod 600"},
		{0o604, "s3cr3t-value", "chmod 600"},
		{0o600, "  \n", "is empty"},
		{0o600, "s3cr3t-value\n", ""},
		{0o400, "s3cr3t-value", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			cfg := &Config{
				Catalog: CatalogConfig{URL: filepath.Join(dir, "catalog"), Root: root}, CacheDir: t.TempDir(),
				TokenFile: p, Mode: policy.ModeOriginOnly, Subscriptions: []Subscription{{Name: "app"}},
				Status: StatusConfig{Addr: "off"},
			}
			if err := cfg.Finish(); err != nil {
				t.Fatal(err)
			}
			a, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler)})
			if a != nil {
				a.Close()
			}
			if tt.wantErr == "" {
				// Whatever comes later (the root is not a real one), the
				// token file itself was accepted.
				if err != nil && strings.Contains(err.Error(), "token_file") {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want one naming %s and %q", err, p, tt.wantErr)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tt.content)) && strings.TrimSpace(tt.content) != "" {
				t.Fatalf("the error shows the token: %v", err)
			}
		})
	}
}

// The status API answers only to Host names of this machine's loopback and
// configured names; a DNS-rebound page's name gets 403.
func TestStatusAPIChecksHost(t *testing.T) {
	a := &Agent{cfg: &Config{Status: StatusConfig{Hosts: []string{"till-3.local"}}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	tests := []struct {
		host string
		want int
	}{
		{ln.Addr().String(), 200},
		{"localhost", 200},
		{"LOCALHOST:7071", 200},
		{"[::1]:7071", 200},
		{"127.0.0.2", 200},
		{"till-3.local", 200},
		{"till-3.local.:" + itoa(port), 200},
		{"evil.example", 403},
		{"evil.example:" + itoa(port), 403},
		{"localhost.evil.example", 403},
		{"10.0.0.5:7071", 403},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+"/healthz", nil)
		req.Host = tt.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("Host %q: %v", tt.host, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("Host %q: status %d, want %d", tt.host, resp.StatusCode, tt.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// The token goes only to the host it was configured for: a redirect from
// the catalog to another host (a presigned S3 URL) does not carry it.
func TestBearerOnlyToItsHost(t *testing.T) {
	var otherAuth, ownAuth string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth = r.Header.Get("Authorization")
	}))
	defer other.Close()
	own := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ownAuth = r.Header.Get("Authorization")
		http.Redirect(w, r, other.URL+"/data/x?X-Amz-Signature=s", http.StatusFound)
	}))
	defer own.Close()
	client := &http.Client{Transport: newBearerTransport("s3cr3t", own.URL+"/", http.DefaultTransport)}
	resp, err := client.Get(own.URL + "/data/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ownAuth != "Bearer s3cr3t" {
		t.Errorf("own host got Authorization %q", ownAuth)
	}
	if otherAuth != "" {
		t.Errorf("redirect target got Authorization %q", otherAuth)
	}
}
