package lsd

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strings"
)

// Scope decides which announces belong together: those of one tenant
// and one site, under one secret. A message's cookie is the sender's
// random instance id and a MAC over that id, the port and the
// infohashes, keyed by HMAC(secret, tenant, region, site): a receiver in another
// scope computes another key and ignores the message; without the secret
// nobody can make a cookie that passes, nor change what a captured
// message says (see docs/security.md for what a replay still does).
type Scope struct {
	key [32]byte
}

// NewScope derives the key of a tenant's site (its region too, so that
// a site name reused in two regions is two scopes). secret may be empty:
// then the scope still keeps tenants and sites apart, but anyone who
// knows the names can forge a cookie.
func NewScope(secret []byte, tenant, region, site string) Scope {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("swarmship lsd v1\x00"))
	for _, v := range []string{tenant, region, site} {
		// Names cannot hold a NUL (release.ValidateName): unambiguous.
		mac.Write([]byte(v))
		mac.Write([]byte{0})
	}
	var s Scope
	copy(s.key[:], mac.Sum(nil))
	return s
}

const (
	idLen  = 8  // bytes of instance id
	macLen = 16 // bytes of MAC kept
)

// newInstanceID is a random id that tells a service its own announces.
func newInstanceID() string {
	var b [idLen]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s Scope) sum(id string, port int, hashes [][20]byte) []byte {
	mac := hmac.New(sha256.New, s.key[:])
	mac.Write([]byte(id))
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], uint16(port))
	mac.Write(p[:])
	for _, ih := range hashes {
		mac.Write(ih[:])
	}
	return mac.Sum(nil)[:macLen]
}

// Cookie is the cookie for a message from instance id.
func (s Scope) Cookie(id string, port int, hashes [][20]byte) string {
	return id + "-" + hex.EncodeToString(s.sum(id, port, hashes))
}

// Check returns the sender's instance id if the message's cookie was made
// in this scope for exactly this port and these infohashes.
func (s Scope) Check(m Message) (id string, ok bool) {
	id, tag, found := strings.Cut(m.Cookie, "-")
	if !found || len(id) != 2*idLen || len(tag) != 2*macLen {
		return "", false
	}
	got, err := hex.DecodeString(tag)
	if err != nil {
		return "", false
	}
	if !hmac.Equal(got, s.sum(id, m.Port, m.Infohashes)) {
		return "", false
	}
	return id, true
}
