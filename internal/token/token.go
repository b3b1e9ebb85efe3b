// Package token issues and verifies swarmship access tokens: short,
// ed25519-signed claims naming a tenant, site and region, with an expiry.
// The tracker, the origin's private catalog and the report endpoint accept
// a request only with a valid token whose claims match the request.
//
// A token is "ss1." + base64url(JSON claims) + "." + base64url(signature),
// where the signature covers everything before the last dot. It is short
// enough for an announce URL's query string.
package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/keyfile"
	"github.com/swarmship/swarmship/internal/release"
)

const (
	prefix = "ss1."
	// MaxLen bounds a token so a hostile one cannot cost much to parse.
	MaxLen = 1024
)

// b64 decodes strictly, so that each token has exactly one spelling.
var b64 = base64.RawURLEncoding.Strict()

// Errors a token can fail with; check with errors.Is.
var (
	ErrMissing   = errors.New("no token")
	ErrMalformed = errors.New("malformed token")
	ErrSignature = errors.New("token signature is not valid")
	ErrExpired   = errors.New("token expired")
)

// Roles a token can carry. An agent token (the default) announces, reads
// its tenant's catalog and reports; an operator token reads the dashboard,
// the rollout and agent APIs and /metrics, for its tenant or, without a
// tenant, for the whole fleet. Neither can do the other's work.
const (
	RoleAgent    = "agent"
	RoleOperator = "operator"
)

// Claims are what a token asserts.
type Claims struct {
	// ID names the token in revocation lists; Issue fills it in.
	ID     string `json:"jti,omitempty"`
	Role   string `json:"role,omitempty"` // "" means RoleAgent
	Tenant string `json:"tenant,omitempty"`
	Site   string `json:"site,omitempty"`
	Region string `json:"region,omitempty"`
	// Agent binds an agent token to one agent id: its reports must carry it.
	Agent    string    `json:"agent,omitempty"`
	IssuedAt time.Time `json:"iat"`
	Expires  time.Time `json:"exp"`
}

// IsOperator reports whether the token is an operator's.
func (c Claims) IsOperator() bool { return c.Role == RoleOperator }

// Fleet reports whether an operator token covers every tenant.
func (c Claims) Fleet() bool { return c.IsOperator() && c.Tenant == "" }

// Validate checks claims before they are signed.
func (c Claims) Validate() error {
	switch c.Role {
	case "", RoleAgent, RoleOperator:
	default:
		return fmt.Errorf("role %q is not %s or %s", c.Role, RoleAgent, RoleOperator)
	}
	if c.Tenant != "" || !c.IsOperator() {
		if err := release.ValidateName("tenant", c.Tenant); err != nil {
			return err
		}
	}
	if c.IsOperator() && (c.Site != "" || c.Region != "" || c.Agent != "") {
		return errors.New("an operator token names a tenant or nothing: no site, region or agent")
	}
	if c.ID != "" && !validID(c.ID) {
		return errors.New("token id must be 1-64 letters, digits, '-' or '_'")
	}
	if c.Agent != "" && !validID(c.Agent) {
		return errors.New("agent must be 1-64 letters, digits, '-' or '_'")
	}
	for _, f := range []struct{ kind, v string }{{"site", c.Site}, {"region", c.Region}} {
		if f.v != "" {
			if err := release.ValidateName(f.kind, f.v); err != nil {
				return err
			}
		}
	}
	if !c.Expires.After(c.IssuedAt) {
		return errors.New("token must expire after it is issued")
	}
	return nil
}

func validID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// NewID is a random token id.
func NewID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

// Fingerprint names a token that carries no id (issued before ids
// existed): the first 128 bits of its SHA-256, in hex. Revocation lists
// accept either.
func Fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:16])
}

// Issue signs claims, giving them a fresh ID unless they have one.
func Issue(key ed25519.PrivateKey, c Claims) (string, error) {
	if c.ID == "" {
		c.ID = NewID()
	}
	c.IssuedAt = c.IssuedAt.UTC().Truncate(time.Second)
	c.Expires = c.Expires.UTC().Truncate(time.Second)
	if err := c.Validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := prefix + base64.RawURLEncoding.EncodeToString(b)
	sig := ed25519.Sign(key, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// Verify checks tok's signature with pub and its expiry at now.
func Verify(pub ed25519.PublicKey, tok string, now time.Time) (Claims, error) {
	var c Claims
	if tok == "" {
		return c, ErrMissing
	}
	if len(tok) > MaxLen || !strings.HasPrefix(tok, prefix) {
		return c, ErrMalformed
	}
	i := strings.LastIndexByte(tok, '.')
	if i <= len(prefix) {
		return c, ErrMalformed
	}
	sig, err := b64.DecodeString(tok[i+1:])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, ErrMalformed
	}
	if !ed25519.Verify(pub, []byte(tok[:i]), sig) {
		return c, ErrSignature
	}
	payload, err := b64.DecodeString(tok[len(prefix):i])
	if err != nil {
		return c, ErrMalformed
	}
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !now.Before(c.Expires) {
		return c, fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

// Key files in a keys directory.
const (
	PrivateKeyFile = "token.key"
	PublicKeyFile  = "token.pub"
)

// GenerateKey writes a new token signing key pair into dir, refusing to
// overwrite one.
func GenerateKey(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	priv := filepath.Join(dir, PrivateKeyFile)
	if _, err := os.Lstat(priv); err == nil {
		return fmt.Errorf("%s already exists", priv)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := keyfile.WritePrivate(priv, key); err != nil {
		return err
	}
	pder, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PublicKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}), 0o644)
}

// LoadPrivateKey reads token.key from dir, refusing a file others can read.
func LoadPrivateKey(dir string) (ed25519.PrivateKey, error) {
	key, err := keyfile.ReadPrivate(filepath.Join(dir, PrivateKeyFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no token signing key in %s: run `swarmship token keygen --keys %s`", dir, dir)
	}
	return key, err
}

// LoadPublicKey reads a token verification key (token.pub).
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token public key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s is not a PEM public key", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an ed25519 key", path)
	}
	return pub, nil
}

// FromRequest finds a token in a request: "Authorization: Bearer T" or a
// "token" query parameter (announce URLs can carry no headers).
func FromRequest(header, query string) string {
	if t, ok := strings.CutPrefix(header, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return query
}
