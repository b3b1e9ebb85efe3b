package policy

import (
	"fmt"
	"strings"
)

// Mode is how an agent takes part in swarms.
type Mode string

// The P2P modes. The zero Mode ("") means ModeOn.
const (
	// ModeOn: download from peers and the origin, upload to peers.
	ModeOn Mode = "on"
	// ModeDownloadOnly: download from peers and the origin, never upload
	// (metered links, BYOD devices).
	ModeDownloadOnly Mode = "download-only"
	// ModeOriginOnly: no peers at all; talk only to the origin (catalog,
	// web seed, origin peer). For networks that may reach nothing else.
	ModeOriginOnly Mode = "origin-only"
	// ModeOffline: no network; releases arrive as bundles on removable
	// media and are verified against the pinned root like downloads.
	ModeOffline Mode = "offline"
)

// ParseMode reads a mode: on, download-only, origin-only or offline (case
// and surrounding space ignored); "" means on. "off" is refused as
// ambiguous between origin-only and offline.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeOn, nil
	case ModeOn, ModeDownloadOnly, ModeOriginOnly, ModeOffline:
		return m, nil
	case "off":
		return "", fmt.Errorf(`mode "off" is ambiguous: use "origin-only" (no peers, origin allowed) or "offline" (no network, bundles only)`)
	}
	return "", fmt.Errorf("unknown mode %q: want on, download-only, origin-only or offline", s)
}

// Upload reports whether the agent may upload to peers. Unknown modes
// allow nothing.
func (m Mode) Upload() bool { return m == "" || m == ModeOn }

// Peers reports whether the agent may connect to peers (tracker, DHT, LAN
// discovery) and download from them.
func (m Mode) Peers() bool { return m == "" || m == ModeOn || m == ModeDownloadOnly }

// Origin reports whether the agent may reach the origin over the network:
// the catalog, the web seed and origin peers.
func (m Mode) Origin() bool { return m.Peers() || m == ModeOriginOnly }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMode.
func (m *Mode) UnmarshalText(b []byte) error {
	v, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}
