package token

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateKey(dir); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKey(dir); err == nil {
		t.Fatal("GenerateKey overwrote a key")
	}
	key, err := LoadPrivateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	good := Claims{Tenant: "acme", Site: "store-1", Region: "eu", IssuedAt: now, Expires: now.Add(time.Hour)}
	tok, err := Issue(key, good)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := Issue(otherKey, good)
	expired, _ := Issue(key, Claims{Tenant: "acme", IssuedAt: now.Add(-2 * time.Hour), Expires: now.Add(-time.Hour)})
	// Swap the payload of a valid token for another tenant's.
	evil, _ := Issue(otherKey, Claims{Tenant: "evil", IssuedAt: now, Expires: now.Add(time.Hour)})
	spliced := evil[:strings.LastIndexByte(evil, '.')] + tok[strings.LastIndexByte(tok, '.'):]

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"valid", tok, nil},
		{"missing", "", ErrMissing},
		{"forged", forged, ErrSignature},
		{"spliced payload", spliced, ErrSignature},
		{"expired", expired, ErrExpired},
		{"garbage", "hello", ErrMalformed},
		{"no signature", tok[:strings.LastIndexByte(tok, '.')], ErrMalformed},
		{"too long", tok + strings.Repeat("A", MaxLen), ErrMalformed},
		{"bad base64", "ss1.!!!." + tok[strings.LastIndexByte(tok, '.')+1:], ErrSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Verify(pub, tt.tok, now)
			if tt.want == nil {
				if err != nil || c.Tenant != "acme" || c.Site != "store-1" || c.Region != "eu" {
					t.Fatalf("Verify = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestKeyFileModes(t *testing.T) {
	dir := t.TempDir()
	if err := GenerateKey(dir); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, PrivateKeyFile))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("token.key mode %v", st.Mode().Perm())
	}
	os.Chmod(filepath.Join(dir, PrivateKeyFile), 0o644)
	if _, err := LoadPrivateKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key accepted: %v", err)
	}
	if _, err := LoadPrivateKey(t.TempDir()); err == nil || !strings.Contains(err.Error(), "keygen") {
		t.Fatalf("missing key: %v", err)
	}
}

func TestIssueRefusesBadClaims(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	for _, c := range []Claims{
		{Tenant: "", IssuedAt: now, Expires: now.Add(time.Hour)},
		{Tenant: "a/b", IssuedAt: now, Expires: now.Add(time.Hour)},
		{Tenant: "a", Site: "../x", IssuedAt: now, Expires: now.Add(time.Hour)},
		{Tenant: "a", IssuedAt: now, Expires: now},
	} {
		if _, err := Issue(key, c); err == nil {
			t.Errorf("issued a token for %+v", c)
		}
	}
}

func FuzzVerify(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	tok, _ := Issue(key, Claims{Tenant: "acme", IssuedAt: now, Expires: now.Add(time.Hour)})
	f.Add(tok)
	f.Add("ss1..")
	f.Add("ss1.e30.AAAA")
	pub := key.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Verify(pub, s, now)
		if err == nil && s != tok {
			t.Fatalf("accepted a token that was not issued: %q (%+v)", s, c)
		}
	})
}
