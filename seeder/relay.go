package seeder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/token"
)

// authorizeRelay admits a relay request with the same agent token as an
// announce (Authorization header only): its tenant scopes whom the caller
// can reach, its site counts the bytes. Without token_public_key (dev
// mode) the tenant and site parameters are taken as said, as the
// tracker does.
func (o *Origin) authorizeRelay(r *http.Request) (relay.Caller, error) {
	q := r.URL.Query()
	if !o.tokensOn() {
		c := relay.Caller{Tenant: q.Get("tenant"), Site: q.Get("site")}
		for _, f := range []struct{ key, v string }{{"tenant", c.Tenant}, {"site", c.Site}} {
			if f.v == "" {
				continue
			}
			if err := release.ValidateName(f.key, f.v); err != nil {
				return c, err
			}
		}
		return c, nil
	}
	c, err := o.authenticate(r, false)
	if errors.Is(err, token.ErrMissing) {
		return relay.Caller{}, fmt.Errorf("%w: %w", relay.ErrUnauthenticated, err)
	}
	if err != nil {
		return relay.Caller{}, err
	}
	if c.IsOperator() {
		return relay.Caller{}, errors.New("an operator token is not an agent's")
	}
	site := c.Site
	if site == "" {
		// A tenant-wide token: the agent's own word counts for the byte
		// figures, never for whom it may reach.
		if s := q.Get("site"); s != "" && release.ValidateName("site", s) == nil {
			site = s
		}
	}
	sum := sha256.Sum256([]byte(r.Header.Get("Authorization")))
	return relay.Caller{Tenant: c.Tenant, Site: site, Credential: hex.EncodeToString(sum[:16])}, nil
}

var (
	descRelayBytes    = prometheus.NewDesc("swarmship_relay_bytes_total", "Bytes the relay sent toward agents, by the receiving agent's tenant and site.", []string{"tenant", "site"}, nil)
	descRelaySessions = prometheus.NewDesc("swarmship_relay_sessions", "Relayed connections open or being set up.", nil, nil)
	descRelayControls = prometheus.NewDesc("swarmship_relay_agents", "Relay-mode agents registered with this origin's relay.", nil, nil)
	descRelayRefused  = prometheus.NewDesc("swarmship_relay_refused_total", "Relay requests refused (and connections cut at the byte cap), by reason.", []string{"reason"}, nil)
)

type relayCollector struct{ s *relay.Server }

func (c relayCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descRelayBytes
	ch <- descRelaySessions
	ch <- descRelayControls
	ch <- descRelayRefused
}

func (c relayCollector) Collect(ch chan<- prometheus.Metric) {
	for _, b := range c.s.BytesBySite() {
		ch <- prometheus.MustNewConstMetric(descRelayBytes, prometheus.CounterValue, float64(b.Bytes), b.Tenant, b.Site)
	}
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(descRelaySessions, prometheus.GaugeValue, float64(st.Sessions))
	ch <- prometheus.MustNewConstMetric(descRelayControls, prometheus.GaugeValue, float64(st.Controls))
	for reason, n := range st.Refused {
		ch <- prometheus.MustNewConstMetric(descRelayRefused, prometheus.CounterValue, float64(n), reason)
	}
}

// Relay is the origin's relay server, nil when relay.mode is off.
func (o *Origin) Relay() *relay.Server { return o.relay }
