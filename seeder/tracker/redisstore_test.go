package tracker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
)

// testRedis, while set (TestSharedBehavioursOnRedis), makes newTest build
// trackers on the shared state, each under its own key prefix. Tests in
// this package do not run in parallel, so a package variable is enough.
var (
	testRedis    *redis.Client
	testPrefixes atomic.Int64
)

// newTestStore is New, or NewShared on testRedis when it is set.
func newTestStore(cfg Config) *Tracker {
	if testRedis == nil {
		return New(cfg)
	}
	r := &state.Redis{Client: testRedis, Prefix: fmt.Sprintf("t%d", testPrefixes.Add(1))}
	tr, err := NewShared(context.Background(), cfg, r)
	if err != nil {
		panic(err) // the wrapper checked Redis answers
	}
	return tr
}

// TestSharedBehavioursOnRedis runs the tracker's behaviour tests again with
// the swarms in a real redis-server: both stores must answer alike.
func TestSharedBehavioursOnRedis(t *testing.T) {
	rd := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: rd.Addr, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { client.Close() })
	testRedis = client
	t.Cleanup(func() { testRedis = nil })
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"AnnounceRoundTrip", TestAnnounceRoundTrip},
		{"IPv6AndNonCompact", TestIPv6AndNonCompact},
		{"LocalityOrdering", TestLocalityOrdering},
		{"TenantIsolation", TestTenantIsolation},
		{"RoleAndSeederFiltering", TestRoleAndSeederFiltering},
		{"StoppedRemoves", TestStoppedRemoves},
		{"Expiry", TestExpiry},
		{"Malformed", TestMalformed},
		{"Residency", TestResidency},
		{"Authorize", TestAuthorize},
		{"Scrape", TestScrape},
		{"RoutingAndAddress", TestRoutingAndAddress},
		{"LocalityRestrictsAnswer", TestLocalityRestrictsAnswer},
		{"GatewayLocality", TestGatewayLocality},
		{"SwarmView", TestSwarmView},
		{"CapFakePeersFromOneAddress", TestCapFakePeersFromOneAddress},
		{"CapsPerToken", TestCapsPerToken},
		{"UnknownInfoHashesRefused", TestUnknownInfoHashesRefused},
		{"PeerIDHijackRefused", TestPeerIDHijackRefused},
		{"IPParamIgnoredByDefault", TestIPParamIgnoredByDefault},
	} {
		t.Run(tc.name, tc.f)
	}
	if n, err := client.DBSize(context.Background()).Result(); err != nil || n == 0 {
		t.Errorf("the shared runs left no keys in Redis (%d, %v): they did not use it", n, err)
	}
}
