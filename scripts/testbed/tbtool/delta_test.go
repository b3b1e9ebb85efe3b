package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	body := []byte("v2 bytes")
	sum := sha256.Sum256(body)
	want := manifestFile{Path: "a/b.bin", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	p := filepath.Join(dir, "b.bin")
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if why := checkFile(p, want); why != "" {
		t.Errorf("matching file: %s", why)
	}
	damaged := append([]byte{}, body...)
	damaged[0] ^= 1
	if err := os.WriteFile(p, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if why := checkFile(p, want); !strings.Contains(why, "SHA-256") {
		t.Errorf("damaged file: %q, want a SHA-256 mismatch", why)
	}
	if err := os.WriteFile(p, body[:3], 0o644); err != nil {
		t.Fatal(err)
	}
	if why := checkFile(p, want); !strings.Contains(why, "want 8") {
		t.Errorf("short file: %q, want a size mismatch", why)
	}
	if why := checkFile(filepath.Join(dir, "missing"), want); why == "" {
		t.Error("missing file passed")
	}
}

func TestReadyWithVersion(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.json")
	// Ready with v1 active; v2 known but not yet activated.
	status := `{"subscriptions":[{"subscription":"testbed","ready":true}],
	  "releases":[{"version":"1","activated":"2026-12-07T20:00:00Z"},{"version":"2","reused":5}]}`
	if err := os.WriteFile(p, []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := readStatus(p)
	if err != nil {
		t.Fatal(err)
	}
	if !st.readyWith("") || !st.readyWith("1") {
		t.Error("ready with v1 not seen")
	}
	if st.readyWith("2") || st.readyWith("3") {
		t.Error("ready with a version not activated")
	}
	if r := st.release("2"); r == nil || r.Reused != 5 {
		t.Errorf("release 2: %+v", r)
	}
}
