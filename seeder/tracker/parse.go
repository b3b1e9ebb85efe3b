package tracker

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"unique"
)

// Limits on client-supplied values. They keep one hostile client from making
// the tracker store or log unbounded strings.
const (
	maxIdentityLen = 128 // tenant, site, region, role
	maxScrapeList  = 256 // info_hash values in one scrape
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
	// locality=site or locality=region limits the answer to peers of the
	// requester's own site or region (branches that must not share over
	// the WAN); absent or "any" means nearest first, then the rest.
	locality int
	// gateway (locality=gateway) lets only one agent per site exchange
	// with other sites; see answer.
	gateway bool

	// Interned id.Site and id.Region, set once the announce is accepted.
	site, region unique.Handle[string]
}

// parseAnnounce validates an announce query strictly. Anything that is not
// exactly what BEP 3 describes is refused rather than guessed at: a tracker
// that stores a half-parsed peer hands garbage to every other peer.
//
// Required: info_hash, peer_id, port, left. Optional: uploaded and downloaded
// (default 0), event, numwant, compact (default 1, BEP 23), no_peer_id, ip,
// and the identity parameters tenant, site, region, role. Unknown parameters
// (key, supportcrypto, corrupt, ...) are ignored because real clients send many.
func parseAnnounce(rawQuery string) (announce, error) {
	a := announce{numWant: -1, compact: true}
	// url.ParseQuery decodes %XX into raw bytes, which is what info_hash and
	// peer_id are. It also rejects bad escapes and ';' separators; a query it
	// cannot fully parse is refused as a whole.
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return a, errors.New("malformed query")
	}
	if err := parseHash(q, "info_hash", &a.infoHash); err != nil {
		return a, err
	}
	if err := parseHash(q, "peer_id", &a.peerID); err != nil {
		return a, err
	}
	port, ok, err := number(q, "port")
	switch {
	case err != nil:
		return a, err
	case !ok:
		return a, errors.New("missing port")
	case port < 1 || port > 65535:
		return a, fmt.Errorf("invalid port %d", port)
	}
	a.port = uint16(port)

	if a.left, ok, err = number(q, "left"); err != nil {
		return a, err
	} else if !ok {
		// Without left the tracker cannot tell a seeder from a leecher,
		// and guessing "seeder" would hide every other seeder from it.
		return a, errors.New("missing left")
	}
	if a.uploaded, _, err = number(q, "uploaded"); err != nil {
		return a, err
	}
	if a.downloaded, _, err = number(q, "downloaded"); err != nil {
		return a, err
	}
	if nw, ok, err := number(q, "numwant"); err != nil {
		return a, err
	} else if ok {
		a.numWant = int(min(nw, 1<<20)) // clamp before int conversion; MaxPeers bounds it later
	}

	a.locality = tierOther
	switch loc, _, err := single(q, "locality"); {
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

	ev, _, err := single(q, "event")
	if err != nil {
		return a, err
	}
	switch ev {
	case eventNone, eventEmpty:
		a.event = eventNone
	case eventStarted, eventCompleted, eventStopped:
		a.event = ev
	default:
		return a, fmt.Errorf("unknown event %.32q", ev)
	}

	if a.compact, err = flag(q, "compact", true); err != nil {
		return a, err
	}
	if a.noPeerID, err = flag(q, "no_peer_id", false); err != nil {
		return a, err
	}

	// ip= is advisory (it may even be a DNS name per BEP 3). Whether it is
	// honoured depends on the remote address, decided in peerAddr; an
	// unparsable value is ignored, not refused, so odd clients still work.
	if s, _, err := single(q, "ip"); err != nil {
		return a, err
	} else if ip, perr := netip.ParseAddr(s); perr == nil {
		a.ip = ip
	}

	if a.id, err = parseIdentity(q); err != nil {
		return a, err
	}
	return a, nil
}

// parseIdentity reads tenant, site, region and role. Agents put them in their
// announce URL; foreign clients keep whatever the .torrent's announce URL
// carried (they append their own parameters to it) and add nothing.
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
		if len(s) > maxIdentityLen {
			return id, fmt.Errorf("%s longer than %d bytes", f.key, maxIdentityLen)
		}
		for i := 0; i < len(s); i++ {
			// Identity values end up in logs and metric labels.
			if s[i] < 0x20 || s[i] == 0x7f {
				return id, fmt.Errorf("%s contains control characters", f.key)
			}
		}
		*f.dst = s
	}
	switch id.Role {
	case "", RoleAgent, RoleOrigin:
	default:
		return id, fmt.Errorf("unknown role %q", id.Role)
	}
	return id, nil
}

// single returns the one value of key. A repeated key is refused: two
// different info_hash values in one announce have no sensible meaning.
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

// number parses a non-negative decimal integer. strconv.ParseInt alone would
// accept "+5" and "-0"; BEP 3 numbers are plain digits.
func number(q url.Values, key string) (int64, bool, error) {
	s, ok, err := single(q, key)
	if err != nil || !ok {
		return 0, ok, err
	}
	if s == "" || len(s) > 19 {
		return 0, true, fmt.Errorf("invalid %s", key)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, true, fmt.Errorf("invalid %s: not a non-negative integer", key)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, true, fmt.Errorf("invalid %s", key)
	}
	return n, true, nil
}

// flag parses a 0/1 parameter.
func flag(q url.Values, key string, def bool) (bool, error) {
	s, ok, err := single(q, key)
	if err != nil || !ok {
		return def, err
	}
	switch s {
	case "0":
		return false, nil
	case "1":
		return true, nil
	}
	return def, fmt.Errorf("invalid %s: want 0 or 1", key)
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
