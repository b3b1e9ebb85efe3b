package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/token"
)

// token issue names the token's id; token revoke puts the id (or, for a
// token without one, its fingerprint) on the list the origin reads.
func TestTokenIssueRoleAndRevoke(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if _, errOut, code := swarmship(t, "token", "keygen", "--keys", keys); code != 0 {
		t.Fatal(errOut)
	}
	out, errOut, code := swarmship(t, "token", "issue", "--keys", keys, "--role", "operator", "--ttl", "1h")
	if code != 0 {
		t.Fatal(errOut)
	}
	tok := strings.TrimSpace(out)
	pub, err := token.LoadPublicKey(filepath.Join(keys, token.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	c, err := token.Verify(pub, tok, time.Now())
	if err != nil || !c.Fleet() || c.ID == "" || !strings.Contains(errOut, c.ID) {
		t.Fatalf("operator token %+v %v; stderr %q", c, err, errOut)
	}
	if _, _, code := swarmship(t, "token", "issue", "--keys", keys, "--role", "operator", "--site", "s1"); code == 0 {
		t.Error("an operator token with a site was issued")
	}
	if _, _, code := swarmship(t, "token", "issue", "--keys", keys, "--role", "root", "--tenant", "acme"); code == 0 {
		t.Error("an unknown role was issued")
	}
	list := filepath.Join(t.TempDir(), "revoked.txt")
	legacy := "ss1.eyJ0ZW5hbnQiOiJhY21lIn0.c2ln" // no id: revoked by fingerprint
	if _, errOut, code := swarmship(t, "token", "revoke", "--list", list, "--note", "laptop\nstolen", tok, legacy); code != 0 {
		t.Fatal(errOut)
	}
	f, err := os.Open(list)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, err := token.ParseRevocations(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ids[c.ID]; !ok {
		t.Errorf("list %v lacks the token id %s", ids, c.ID)
	}
	if _, ok := ids[token.Fingerprint(legacy)]; !ok || len(ids) != 2 {
		t.Errorf("list %v lacks the fingerprint", ids)
	}
}
