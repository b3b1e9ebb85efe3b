package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/relay"
)

// Modes of swarm.relay.
const (
	// RelayNever (default): peers connect directly.
	RelayNever = "never"
	// RelayOrigin: every peer connection goes through the relay of the
	// origin whose tracker the agent announces to. The tracker stores
	// the agent under its relay handle, never its address, and hands it
	// only other relay-mode agents' handles; peer exchange and LAN
	// discovery are off. For agents that cannot be dialled, and where
	// policy says peers must not learn each other's addresses.
	RelayOrigin = "origin"
)

// validateRelay checks swarm.relay against what would leak an address.
func (c SwarmConfig) validateRelay() error {
	switch c.Relay {
	case RelayNever:
	case RelayOrigin:
		if c.LSD == LSDOn {
			return fielderr.New("lsd", "on announces the agent's address on the LAN, which relay: %s keeps private; set lsd: off (the default with relay: %s)", RelayOrigin, RelayOrigin)
		}
		if c.Locality == "any" {
			// "any" turns peer exchange on.
			return fielderr.New("locality", "any turns peer exchange on, which would hand out addresses relay: %s keeps private", RelayOrigin)
		}
	default:
		return fielderr.New("relay", "%q: want %s or %s", c.Relay, RelayOrigin, RelayNever)
	}
	return nil
}

// relayBase is the origin base URL of the first swarmship tracker (an
// announce URL ending in /announce): its relay serves the agent.
func relayBase(trackers []string) (string, error) {
	for _, t := range trackers {
		u, err := url.Parse(t)
		if err != nil || !strings.HasSuffix(u.Path, "/announce") {
			continue
		}
		u.Path = strings.TrimSuffix(u.Path, "/announce")
		u.RawQuery, u.Fragment = "", ""
		return u.String(), nil
	}
	return "", fmt.Errorf("swarm.relay: %s needs a swarmship tracker (an announce URL ending in /announce) whose origin runs the relay", RelayOrigin)
}

// newRelay prepares the relay client of a relay-mode agent (nil when the
// mode is never); its peer ID is set once the torrent client exists.
func newRelay(cfg *Config, tok string, originTLS, peerTLS *tls.Config, log *slog.Logger) (*relay.Client, error) {
	if cfg.Swarm.Relay != RelayOrigin || !cfg.Mode.Peers() {
		return nil, nil // origin-only and offline agents take no peers at all
	}
	base, err := relayBase(cfg.trackerURLs())
	if err != nil {
		return nil, err
	}
	return relay.NewClient(relay.ClientConfig{
		URL: base, Tenant: cfg.Tenant, Site: cfg.Site, TLS: originTLS, PeerTLS: peerTLS, Log: log,
		Authorize: trackerDirector(tok, cfg.trackerURLs()...),
	})
}

// startRelay registers the agent with the relay until Close.
func (a *Agent) startRelay() {
	if a.relay == nil {
		return
	}
	a.relay.SetPeerID(a.peerID)
	a.relay.Hold(a.bt.Closed())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.relay.Run(ctx)
	}()
	a.stopRelay = func() {
		cancel()
		a.relay.Close()
		<-done
	}
}

// RelayStatus is the relay client's state, nil when not in relay mode.
func (a *Agent) RelayStatus() *relay.ClientStatus {
	if a.relay == nil {
		return nil
	}
	st := a.relay.Status()
	return &st
}

var descRelayBytes = prometheus.NewDesc("swarmship_agent_relay_bytes_total", "Bytes sent and received through the origin's relay (swarm.relay: origin; 0 otherwise).", nil, nil)

// relayCollector exports what needed the relay; always, so that a fleet's
// dashboards can sum it whatever each agent's mode.
type relayCollector struct{ a *Agent }

func (c relayCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descRelayBytes }

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	var n int64
	if st := c.a.RelayStatus(); st != nil {
		n = st.Bytes
	}
	ch <- prometheus.MustNewConstMetric(descRelayBytes, prometheus.CounterValue, float64(n))
}
