package token

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRevocationsReloadOnChange(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	tok, err := Issue(key, Claims{Tenant: "acme", IssuedAt: now, Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := Verify(key.Public().(ed25519.PublicKey), tok, now)
	path := filepath.Join(t.TempDir(), "revoked")
	if _, err := OpenRevocations(path); err == nil {
		t.Fatal("a missing list was accepted")
	}
	os.WriteFile(path, []byte("# none yet\n\n"), 0o644)
	rl, err := OpenRevocations(path)
	if err != nil || rl.Check(c, tok) != nil {
		t.Fatalf("empty list: %v %v", err, rl.Check(c, tok))
	}
	if err := Revoke(path, c.ID, "lost"); err != nil {
		t.Fatal(err)
	}
	if changed, err := rl.Reload(); !changed || err != nil || rl.Check(c, tok) != ErrRevoked {
		t.Fatalf("after revoke: changed %v, %v, check %v", changed, err, rl.Check(c, tok))
	}
	if changed, _ := rl.Reload(); changed {
		t.Error("unchanged file reloaded")
	}
	for _, bad := range []string{"has space inside\n", "semi;colon\n", strings.Repeat("a", 65) + "\n", strings.Repeat("a", 5000)} {
		if _, err := ParseRevocations(strings.NewReader(bad)); err == nil {
			t.Errorf("list %.20q accepted", bad)
		}
	}
	if err := Revoke(path, "../../etc", ""); err == nil {
		t.Error("revoked a malformed id")
	}
}

func TestClaimsRoles(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		c  Claims
		ok bool
	}{
		{Claims{Tenant: "acme"}, true},
		{Claims{}, false},
		{Claims{Role: RoleOperator}, true},
		{Claims{Role: RoleOperator, Tenant: "acme"}, true},
		{Claims{Role: RoleOperator, Tenant: "acme", Site: "s1"}, false},
		{Claims{Role: "admin", Tenant: "acme"}, false},
		{Claims{Tenant: "acme", Agent: "a 1"}, false},
		{Claims{Tenant: "acme", Agent: "a1"}, true},
	} {
		c.c.IssuedAt, c.c.Expires = now, now.Add(time.Hour)
		if err := c.c.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.c, err)
		}
	}
}
