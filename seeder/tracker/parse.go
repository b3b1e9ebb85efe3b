package tracker

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"unique"
)

// Limits on client-supplied values. They keep one hostile client from making
// the tracker store or log unbounded strings, or spend unbounded work on one
// query.
const (
	maxIdentityLen = 128 // tenant, site, region, role
	maxScrapeList  = 256 // info_hash values in one scrape
	// An announce from a real client is 200–600 bytes with about 15
	// parameters; the .torrent's announce URL may add a long token.
	maxAnnounceQuery  = 8 << 10
	maxAnnounceParams = 128
)

// Event values accepted in an announce (BEP 3). "empty" is what some clients
// send for a regular re-announce; it means the same as no event.
const (
	eventNone      = ""
	eventStarted   = "started"
	eventCompleted = "completed"
	eventStopped   = "stopped"
	eventEmpty     = "empty"
)

// announce is one parsed, validated announce request.
type announce struct {
	infoHash   [20]byte
	peerID     [20]byte
	port       uint16
	uploaded   int64
	downloaded int64
	left       int64
	event      string // normalised: "empty" becomes ""
	numWant    int    // -1 when the client did not say
	compact    bool
	noPeerID   bool
	ip         netip.Addr // optional ip= parameter, invalid when absent or unusable
	id         Identity
	// token is the first token= value (decoded), the credential of a
	// client that cannot send an Authorization header; see credential.
	token string
	// locality=site or locality=region limits the answer to peers of the
	// requester's own site or region (branches that must not share over
	// the WAN); absent or "any" means nearest first, then the rest.
	locality int
	// gateway (locality=gateway) lets only one agent per site exchange
	// with other sites; see answer.
	gateway bool
	// relay (relay=origin) marks a relay-mode agent: it is stored under
	// its relay handle instead of its address, and gets only other
	// relay-mode agents' handles (internal/relay).
	relay bool

	// Interned id.Site and id.Region, set once the announce is accepted.
	site, region unique.Handle[string]
}

// The announce parameters the tracker reads, as indices into rawAnnounce.
const (
	pInfoHash = iota
	pPeerID
	pPort
	pLeft
	pUploaded
	pDownloaded
	pNumWant
	pLocality
	pEvent
	pCompact
	pNoPeerID
	pIP
	pTenant
	pSite
	pRegion
	pRole
	pToken
	pRelay
	numParams
	pUnknown = -1
)

var paramNames = [numParams]string{
	pInfoHash: "info_hash", pPeerID: "peer_id", pPort: "port", pLeft: "left",
	pUploaded: "uploaded", pDownloaded: "downloaded", pNumWant: "numwant",
	pLocality: "locality", pEvent: "event", pCompact: "compact",
	pNoPeerID: "no_peer_id", pIP: "ip", pTenant: "tenant", pSite: "site",
	pRegion: "region", pRole: "role", pToken: "token",
	pRelay: "relay",
}

func paramIndex(key string) int {
	switch key {
	case "info_hash":
		return pInfoHash
	case "peer_id":
		return pPeerID
	case "port":
		return pPort
	case "left":
		return pLeft
	case "uploaded":
		return pUploaded
	case "downloaded":
		return pDownloaded
	case "numwant":
		return pNumWant
	case "locality":
		return pLocality
	case "event":
		return pEvent
	case "compact":
		return pCompact
	case "no_peer_id":
		return pNoPeerID
	case "ip":
		return pIP
	case "tenant":
		return pTenant
	case "site":
		return pSite
	case "region":
		return pRegion
	case "role":
		return pRole
	case "token":
		return pToken
	case "relay":
		return pRelay
	}
	return pUnknown
}

// rawAnnounce is an announce query after one pass: each known parameter's
// first value, still percent-encoded (a substring of the query), and how
// often it came (2 means "more than once").
type rawAnnounce struct {
	val [numParams]string
	n   [numParams]uint8
}

var errMalformedQuery = errors.New("malformed query")

// scan splits q in one pass, without building a map. It accepts exactly
// the queries url.ParseQuery accepts (the reference parser in
// parseref_test.go; FuzzParseAnnounce holds the two together), within the
// size limits above: every %XX well formed, in keys and values of unknown
// parameters too, and no ';' separators.
func (r *rawAnnounce) scan(q string) error {
	if len(q) > maxAnnounceQuery {
		return fmt.Errorf("query longer than %d bytes", maxAnnounceQuery)
	}
	for seps := 0; q != ""; {
		kv, rest, more := strings.Cut(q, "&")
		q = rest
		if more {
			if seps++; seps >= maxAnnounceParams {
				return fmt.Errorf("more than %d query parameters", maxAnnounceParams)
			}
		}
		if kv == "" {
			continue
		}
		key, val, _ := strings.Cut(kv, "=")
		ke, kok := escapes(key)
		_, vok := escapes(val)
		if !kok || !vok {
			return errMalformedQuery
		}
		if ke {
			// An escaped key ("info%5Fhash") is legal if odd; decoding
			// it allocates, but only for such clients.
			key = unescape(key)
		}
		i := paramIndex(key)
		if i == pUnknown {
			continue
		}
		if r.n[i] == 0 {
			r.val[i] = val
		}
		r.n[i] = min(r.n[i]+1, 2)
	}
	return nil
}

// escapes reports whether s holds '%' or '+' (so decoding changes it), and
// whether every '%' and every ';' is legal: a '%' must start %XX, a ';' is
// refused anywhere, as url.ParseQuery does.
func escapes(s string) (escaped, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			if i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2]) {
				return false, false
			}
			escaped = true
			i += 2
		case '+':
			escaped = true
		case ';':
			return false, false
		}
	}
	return escaped, true
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// decodedLen is the length of s once decoded; s passed escapes.
func decodedLen(s string) int {
	return len(s) - 2*strings.Count(s, "%")
}

// decodeInto writes the decoded bytes of s (which passed escapes) to dst,
// which is exactly decodedLen(s) long.
func decodeInto(dst []byte, s string) {
	j := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			dst[j] = unhex(s[i+1])<<4 | unhex(s[i+2])
			i += 2
		case '+':
			dst[j] = ' '
		default:
			dst[j] = c
		}
		j++
	}
}

// unescape decodes s (which passed escapes). Values without escapes, the
// usual case, come back as they are, without allocating.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s
	}
	b := make([]byte, decodedLen(s))
	decodeInto(b, s)
	return string(b)
}

// single returns the decoded value of parameter i. A repeated parameter is
// refused: two different info_hash values in one announce have no sensible
// meaning.
func (r *rawAnnounce) single(i int) (string, bool, error) {
	switch r.n[i] {
	case 0:
		return "", false, nil
	case 1:
		return unescape(r.val[i]), true, nil
	}
	return "", false, fmt.Errorf("repeated parameter %s", paramNames[i])
}

// hash decodes a 20-byte parameter straight into dst.
func (r *rawAnnounce) hash(i int, dst *[20]byte) error {
	switch r.n[i] {
	case 0:
		return fmt.Errorf("missing %s", paramNames[i])
	case 2:
		return fmt.Errorf("repeated parameter %s", paramNames[i])
	}
	s := r.val[i]
	if n := decodedLen(s); n != 20 {
		return fmt.Errorf("invalid %s: %d bytes, want 20", paramNames[i], n)
	}
	decodeInto(dst[:], s)
	return nil
}

// number parses a non-negative decimal integer. BEP 3 numbers are plain
// digits: no sign, no spaces, at most 19 of them, and no overflow.
func (r *rawAnnounce) number(i int) (int64, bool, error) {
	s, ok, err := r.single(i)
	if err != nil || !ok {
		return 0, ok, err
	}
	key := paramNames[i]
	if s == "" || len(s) > 19 {
		return 0, true, fmt.Errorf("invalid %s", key)
	}
	var n uint64
	for j := 0; j < len(s); j++ {
		c := s[j]
		if c < '0' || c > '9' {
			return 0, true, fmt.Errorf("invalid %s: not a non-negative integer", key)
		}
		n = n*10 + uint64(c-'0') // 19 digits fit in uint64
	}
	if n > 1<<63-1 {
		return 0, true, fmt.Errorf("invalid %s", key)
	}
	return int64(n), true, nil
}

// flag parses a 0/1 parameter.
func (r *rawAnnounce) flag(i int, def bool) (bool, error) {
	s, ok, err := r.single(i)
	if err != nil || !ok {
		return def, err
	}
	switch s {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return def, fmt.Errorf("invalid %s: want 0 or 1", paramNames[i])
}

// parseAnnounce validates an announce query strictly. Anything that is not
// exactly what BEP 3 describes is refused rather than guessed at: a tracker
// that stores a half-parsed peer hands garbage to every other peer.
//
// Required: info_hash, peer_id, port, left. Optional: uploaded and downloaded
// (default 0), event, numwant, compact (default 1, BEP 23), no_peer_id, ip,
// and the identity parameters tenant, site, region, role. Unknown parameters
// (key, supportcrypto, corrupt, ...) are ignored because real clients send many.
//
// It is the tracker's hot path: one pass over the query, no map, hashes
// decoded into their arrays; checks run in a fixed order so a query with
// several faults always gets the same error.
func parseAnnounce(rawQuery string) (announce, error) {
	a := announce{numWant: -1, compact: true}
	var r rawAnnounce
	if err := r.scan(rawQuery); err != nil {
		return a, err
	}
	if err := r.hash(pInfoHash, &a.infoHash); err != nil {
		return a, err
	}
	if err := r.hash(pPeerID, &a.peerID); err != nil {
		return a, err
	}
	port, ok, err := r.number(pPort)
	switch {
	case err != nil:
		return a, err
	case !ok:
		return a, errors.New("missing port")
	case port < 1 || port > 65535:
		return a, fmt.Errorf("invalid port %d", port)
	}
	a.port = uint16(port)

	if a.left, ok, err = r.number(pLeft); err != nil {
		return a, err
	} else if !ok {
		// Without left the tracker cannot tell a seeder from a leecher,
		// and guessing "seeder" would hide every other seeder from it.
		return a, errors.New("missing left")
	}
	if a.uploaded, _, err = r.number(pUploaded); err != nil {
		return a, err
	}
	if a.downloaded, _, err = r.number(pDownloaded); err != nil {
		return a, err
	}
	if nw, ok, err := r.number(pNumWant); err != nil {
		return a, err
	} else if ok {
		a.numWant = int(min(nw, 1<<20)) // clamp before int conversion; MaxPeers bounds it later
	}

	a.locality = tierOther
	switch loc, _, err := r.single(pLocality); {
	case err != nil:
		return a, err
	case loc == "site":
		a.locality = tierSite
	case loc == "region":
		a.locality = tierRegion
	case loc == "gateway":
		a.gateway = true
	case loc == "" || loc == "any":
	default:
		return a, fmt.Errorf("unknown locality %q (want gateway, site, region or any)", loc)
	}

	switch rel, _, err := r.single(pRelay); {
	case err != nil:
		return a, err
	case rel == "origin":
		a.relay = true
	case rel == "" || rel == "never":
	default:
		return a, fmt.Errorf("unknown relay %q (want origin or never)", rel)
	}

	ev, _, err := r.single(pEvent)
	if err != nil {
		return a, err
	}
	switch ev {
	case eventNone, eventEmpty:
		a.event = eventNone
	case eventStarted:
		a.event = eventStarted
	case eventCompleted:
		a.event = eventCompleted
	case eventStopped:
		a.event = eventStopped
	default:
		return a, fmt.Errorf("unknown event %.32q", ev)
	}

	if a.compact, err = r.flag(pCompact, true); err != nil {
		return a, err
	}
	if a.noPeerID, err = r.flag(pNoPeerID, false); err != nil {
		return a, err
	}

	// ip= is advisory (it may even be a DNS name per BEP 3). Whether it is
	// honoured depends on the remote address, decided in peerAddr; an
	// unparsable value is ignored, not refused, so odd clients still work.
	if s, ok, err := r.single(pIP); err != nil {
		return a, err
	} else if ok && s != "" { // ParseAddr("") allocates its error
		if ip, perr := netip.ParseAddr(s); perr == nil {
			a.ip = ip
		}
	}

	for _, f := range [...]struct {
		i   int
		dst *string
	}{
		{pTenant, &a.id.Tenant},
		{pSite, &a.id.Site},
		{pRegion, &a.id.Region},
		{pRole, &a.id.Role},
	} {
		s, _, err := r.single(f.i)
		if err != nil {
			return a, err
		}
		if err := checkIdentity(paramNames[f.i], s); err != nil {
			return a, err
		}
		*f.dst = s
	}
	if err := checkRole(a.id.Role); err != nil {
		return a, err
	}
	// The tenant names swarms and cap tables for as long as they live; a
	// substring would keep the whole request query alive with it.
	if a.id.Tenant != "" {
		a.id.Tenant = unique.Make(a.id.Tenant).Value()
	}
	if r.n[pToken] > 0 {
		a.token = unescape(r.val[pToken]) // the first, as url.Values.Get
	}
	return a, nil
}

// checkIdentity bounds an identity value; identity values end up in logs
// and metric labels.
func checkIdentity(key, s string) error {
	if len(s) > maxIdentityLen {
		return fmt.Errorf("%s longer than %d bytes", key, maxIdentityLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Errorf("%s contains control characters", key)
		}
	}
	return nil
}

func checkRole(role string) error {
	switch role {
	case "", RoleAgent, RoleOrigin:
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// parseIdentity reads tenant, site, region and role from a parsed query
// (scrape and swarm view; announces use parseAnnounce). Agents put them in
// their announce URL; foreign clients keep whatever the .torrent's announce
// URL carried (they append their own parameters to it) and add nothing.
func parseIdentity(q url.Values) (Identity, error) {
	var id Identity
	for _, f := range []struct {
		key string
		dst *string
	}{
		{"tenant", &id.Tenant},
		{"site", &id.Site},
		{"region", &id.Region},
		{"role", &id.Role},
	} {
		s, _, err := single(q, f.key)
		if err != nil {
			return id, err
		}
		if err := checkIdentity(f.key, s); err != nil {
			return id, err
		}
		*f.dst = s
	}
	return id, checkRole(id.Role)
}

// single returns the one value of key. A repeated key is refused.
func single(q url.Values, key string) (string, bool, error) {
	vs := q[key]
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	default:
		return "", false, fmt.Errorf("repeated parameter %s", key)
	}
}

func parseHash(q url.Values, key string, dst *[20]byte) error {
	s, ok, err := single(q, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("missing %s", key)
	}
	if len(s) != 20 {
		return fmt.Errorf("invalid %s: %d bytes, want 20", key, len(s))
	}
	copy(dst[:], s)
	return nil
}

// peerAddr is the address other peers should dial: the request's remote IP
// and the announced port. ip= is ignored unless trustIP (Config.TrustIPParam)
// is on; then it replaces the remote IP only when the request comes from
// loopback and ip= is a loopback or private address: a relay on the
// tracker's host that the operator runs. Trusting it by default let any
// local process (or anything behind a local proxy) point a swarm at a
// third party's address.
func peerAddr(remoteAddr string, a *announce, trustIP bool) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.AddrPort{}, errors.New("cannot determine peer address")
	}
	ip := ap.Addr().Unmap()
	if trustIP && a.ip.IsValid() && ip.IsLoopback() {
		if alt := a.ip.Unmap(); alt.IsLoopback() || alt.IsPrivate() {
			ip = alt
		}
	}
	// A zone cannot travel in a compact peer list.
	return netip.AddrPortFrom(ip.WithZone(""), a.port), nil
}
