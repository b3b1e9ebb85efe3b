// Package lsd is BEP 14 local service discovery, scoped to a tenant and a
// site: agents announce the torrents they have on the LAN's multicast
// group and learn each other as candidate peers with no tracker and no
// WAN. A message's cookie carries a MAC keyed by the tenant and site, so
// announcers of another tenant or site, and forgers, are ignored.
package lsd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Limits on what a received message may hold; a message past any of them
// is refused whole.
const (
	// MaxMessage is the largest datagram read (an Ethernet MTU's worth).
	MaxMessage = 1400
	// MaxInfohashes is how many infohashes one message may carry; more
	// torrents are announced in several messages.
	MaxInfohashes = 24
	maxLines      = 40
	maxCookie     = 80
)

const requestLine = "BT-SEARCH * HTTP/1.1"

// Message is one BT-SEARCH announce.
type Message struct {
	Host       string // the group address and port, as BEP 14 has it
	Port       int    // the sender's BitTorrent port
	Infohashes [][20]byte
	Cookie     string
}

// ErrMalformed is wrapped by every parse error.
var ErrMalformed = errors.New("malformed BT-SEARCH message")

// Encode returns the message's wire form.
func (m Message) Encode() []byte {
	var b bytes.Buffer
	b.WriteString(requestLine + "\r\n")
	fmt.Fprintf(&b, "Host: %s\r\n", m.Host)
	fmt.Fprintf(&b, "Port: %d\r\n", m.Port)
	for _, ih := range m.Infohashes {
		fmt.Fprintf(&b, "Infohash: %x\r\n", ih[:])
	}
	if m.Cookie != "" {
		fmt.Fprintf(&b, "cookie: %s\r\n", m.Cookie)
	}
	b.WriteString("\r\n\r\n")
	return b.Bytes()
}

// Parse reads a message strictly: the request line, one Port, 1 to
// MaxInfohashes well-formed infohashes (repeats dropped), at most one
// cookie; unknown headers are skipped, within a bound on lines.
func Parse(b []byte) (Message, error) {
	var m Message
	if len(b) > MaxMessage {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	// Some senders end lines with \n alone; accept both, nothing else.
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if len(lines) > maxLines+2 {
		return m, fmt.Errorf("%w: %d lines", ErrMalformed, len(lines))
	}
	if lines[0] != requestLine {
		return m, fmt.Errorf("%w: request line %.40q", ErrMalformed, lines[0])
	}
	seenPort, seenCookie, ended := false, false, false
	seen := map[[20]byte]bool{}
	for _, line := range lines[1:] {
		if line == "" {
			ended = true
			continue
		}
		if ended {
			return m, fmt.Errorf("%w: data after the headers", ErrMalformed)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return m, fmt.Errorf("%w: header line %.40q", ErrMalformed, line)
		}
		value = strings.TrimSpace(value)
		for _, c := range []byte(value) {
			if c < 0x20 || c == 0x7f {
				return m, fmt.Errorf("%w: control byte in a header", ErrMalformed)
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "host":
			m.Host = value
		case "port":
			if seenPort {
				return m, fmt.Errorf("%w: two Port headers", ErrMalformed)
			}
			seenPort = true
			p, err := strconv.Atoi(value)
			if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != value {
				return m, fmt.Errorf("%w: port %.10q", ErrMalformed, value)
			}
			m.Port = p
		case "infohash":
			var ih [20]byte
			if len(value) != 40 {
				return m, fmt.Errorf("%w: infohash %.50q", ErrMalformed, value)
			}
			if _, err := hex.Decode(ih[:], []byte(value)); err != nil {
				return m, fmt.Errorf("%w: infohash %.50q", ErrMalformed, value)
			}
			if seen[ih] {
				continue
			}
			if len(m.Infohashes) == MaxInfohashes {
				return m, fmt.Errorf("%w: more than %d infohashes", ErrMalformed, MaxInfohashes)
			}
			seen[ih] = true
			m.Infohashes = append(m.Infohashes, ih)
		case "cookie":
			if seenCookie || len(value) > maxCookie {
				return m, fmt.Errorf("%w: cookie", ErrMalformed)
			}
			seenCookie = true
			m.Cookie = value
		}
	}
	if !seenPort || len(m.Infohashes) == 0 {
		return m, fmt.Errorf("%w: no Port or no Infohash", ErrMalformed)
	}
	return m, nil
}
