package report

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Limits of the contribution ledger in a report (issue 20).
const (
	// MaxLedgerPeers bounds the peers one report describes; the agent
	// keeps the ones it exchanged most with.
	MaxLedgerPeers = 256
	// MaxLedgerCount bounds every counter: far above what a peer can move
	// between two reports, low enough that sums over a fleet cannot wrap.
	MaxLedgerCount = 1 << 50
	// MaxQuarantine bounds the entries of a quarantine list.
	MaxQuarantine = 1024
	// MaxQuarantineLen bounds one quarantine entry ("peer:<40 hex>" is 45).
	MaxQuarantineLen = 80
)

// Ledger is an agent's contribution accounting: how much it uploads (the
// tracker weights answers and elects gateways by it) and what it saw of
// each peer it exchanged data with.
type Ledger struct {
	// UpRate is the agent's upload rate now, bytes/s over the last few
	// seconds; UpPeak the highest it has measured (its upload capacity as
	// far as anybody asked); UpLimit its configured limit, 0 for none.
	UpRate  float64 `json:"up_rate"`
	UpPeak  float64 `json:"up_peak"`
	UpLimit float64 `json:"up_limit,omitempty"`
	// TLSID is the fingerprint of the agent's own peer certificate
	// (peertls; empty without TLS): the origin maps a quarantine by
	// certificate onto the agent's current peer ID.
	TLSID string       `json:"tls_id,omitempty"`
	Peers []PeerLedger `json:"peers,omitempty"`
}

// PeerLedger is what the agent counted for one remote peer since it first
// met it (totals, not deltas: a lost report loses nothing).
type PeerLedger struct {
	PeerID string `json:"peer_id"` // hex
	Addr   string `json:"addr"`    // ip:port of the connection
	// Down is useful payload received from the peer, Up payload sent to it.
	Down int64 `json:"down"`
	Up   int64 `json:"up"`
	// BadPieces are pieces with data from the peer that failed their hash.
	BadPieces int64 `json:"bad_pieces,omitempty"`
	// Stalled counts requests the peer left unanswered past the agent's
	// stall timeout; Refused requests it rejected (BEP 6).
	Stalled int64 `json:"stalled,omitempty"`
	Refused int64 `json:"refused,omitempty"`
	// Starved is seconds in which the peer held pieces the agent lacked
	// and sent it nothing: a peer that takes and never gives.
	Starved  int64     `json:"starved,omitempty"`
	LastSeen time.Time `json:"last_seen"`
}

// Answer is what the origin may answer to a report (HTTP 200 with JSON;
// older origins answer 204 without a body).
type Answer struct {
	// Quarantine lists the peers the agent must drop and refuse, in the
	// forms of ParseQuarantine.
	Quarantine []string `json:"quarantine"`
}

// Quarantine entry kinds.
const (
	QuarantinePeer  = "peer"  // peer:<40 hex peer ID>
	QuarantineAddr  = "addr"  // addr:<ip> or addr:<ip:port>
	QuarantineAgent = "agent" // agent:<agent id>, mapped to its peer ID by its reports
	QuarantineTLS   = "tls"   // tls:<64 hex SHA-256 of the peer certificate>
)

// ParseQuarantine checks one quarantine entry and returns it in canonical
// form (lower-case hex, unmapped addresses).
func ParseQuarantine(s string) (string, error) {
	if len(s) > MaxQuarantineLen {
		return "", fmt.Errorf("quarantine entry longer than %d bytes", MaxQuarantineLen)
	}
	kind, v, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("quarantine entry %q: want peer:<hex id>, addr:<ip[:port]>, agent:<id> or tls:<sha256 hex>", s)
	}
	switch kind {
	case QuarantinePeer:
		if b, err := hex.DecodeString(v); err != nil || len(b) != 20 {
			return "", fmt.Errorf("quarantine entry %q: peer ID is not 40 hex digits", s)
		}
		return kind + ":" + strings.ToLower(v), nil
	case QuarantineTLS:
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
			return "", fmt.Errorf("quarantine entry %q: certificate fingerprint is not 64 hex digits", s)
		}
		return kind + ":" + strings.ToLower(v), nil
	case QuarantineAgent:
		if err := validID("agent", v); err != nil {
			return "", fmt.Errorf("quarantine entry %q: %w", s, err)
		}
		return s, nil
	case QuarantineAddr:
		if ap, err := netip.ParseAddrPort(v); err == nil {
			return kind + ":" + netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String(), nil
		}
		if ip, err := netip.ParseAddr(v); err == nil && ip.Zone() == "" {
			return kind + ":" + ip.Unmap().String(), nil
		}
		return "", fmt.Errorf("quarantine entry %q: not an IP address or ip:port", s)
	}
	return "", fmt.Errorf("quarantine entry %q: unknown kind %q", s, kind)
}

// validate checks a report's ledger.
func (l *Ledger) validate() error {
	for _, f := range []struct {
		k string
		v float64
	}{{"ledger.up_rate", l.UpRate}, {"ledger.up_peak", l.UpPeak}, {"ledger.up_limit", l.UpLimit}} {
		if !(f.v >= 0 && f.v <= MaxRate) {
			return fmt.Errorf("%s %v is not in [0, %v]", f.k, f.v, float64(MaxRate))
		}
	}
	if l.TLSID != "" {
		if b, err := hex.DecodeString(l.TLSID); err != nil || len(b) != 32 {
			return errors.New("ledger.tls_id is not 64 hex digits")
		}
	}
	if len(l.Peers) > MaxLedgerPeers {
		return fmt.Errorf("ledger: %d peers, at most %d", len(l.Peers), MaxLedgerPeers)
	}
	for i, p := range l.Peers {
		field := fmt.Sprintf("ledger.peers[%d]", i)
		if b, err := hex.DecodeString(p.PeerID); err != nil || len(b) != 20 {
			return fmt.Errorf("%s.peer_id is not 40 hex digits", field)
		}
		if _, err := netip.ParseAddrPort(p.Addr); err != nil {
			return fmt.Errorf("%s.addr is not ip:port", field)
		}
		for _, c := range []int64{p.Down, p.Up, p.BadPieces, p.Stalled, p.Refused, p.Starved} {
			if c < 0 || c > MaxLedgerCount {
				return fmt.Errorf("%s: counter out of [0, %d]", field, int64(MaxLedgerCount))
			}
		}
	}
	return nil
}
