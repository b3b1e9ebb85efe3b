package tracker

// The announce parser as it was before the one-pass rewrite (parse.go),
// kept as the reference the fuzz test holds the new one to: url.ParseQuery,
// then each field from the map.

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
)

// parseAnnounceRef is the reference announce parser.
func parseAnnounceRef(rawQuery string) (announce, error) {
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
	port, ok, err := numberRef(q, "port")
	switch {
	case err != nil:
		return a, err
	case !ok:
		return a, errors.New("missing port")
	case port < 1 || port > 65535:
		return a, fmt.Errorf("invalid port %d", port)
	}
	a.port = uint16(port)

	if a.left, ok, err = numberRef(q, "left"); err != nil {
		return a, err
	} else if !ok {
		// Without left the tracker cannot tell a seeder from a leecher,
		// and guessing "seeder" would hide every other seeder from it.
		return a, errors.New("missing left")
	}
	if a.uploaded, _, err = numberRef(q, "uploaded"); err != nil {
		return a, err
	}
	if a.downloaded, _, err = numberRef(q, "downloaded"); err != nil {
		return a, err
	}
	if nw, ok, err := numberRef(q, "numwant"); err != nil {
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

	if a.compact, err = flagRef(q, "compact", true); err != nil {
		return a, err
	}
	if a.noPeerID, err = flagRef(q, "no_peer_id", false); err != nil {
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

// numberRef parses a non-negative decimal integer. strconv.ParseInt alone would
// accept "+5" and "-0"; BEP 3 numbers are plain digits.
func numberRef(q url.Values, key string) (int64, bool, error) {
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

// flagRef parses a 0/1 parameter.
func flagRef(q url.Values, key string, def bool) (bool, error) {
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
