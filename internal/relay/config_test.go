package relay

import (
	"strings"
	"testing"
)

func TestConfigPerTenantDefaults(t *testing.T) {
	c := Config{MaxSessions: 100, MaxControls: 2}.WithDefaults()
	if c.MaxSessionsPerTenant != 25 || c.MaxControlsPerTenant != 1 {
		t.Errorf("per-tenant defaults %d sessions, %d controls; want a quarter, at least 1", c.MaxSessionsPerTenant, c.MaxControlsPerTenant)
	}
	if c := (Config{MaxSessionsPerTenant: 7}).WithDefaults(); c.MaxSessionsPerTenant != 7 {
		t.Errorf("set value replaced: %d", c.MaxSessionsPerTenant)
	}
	for _, c := range []Config{{MaxSessionsPerTenant: -1}, {MaxControlsPerTenant: -1}} {
		if err := c.WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "_per_tenant") {
			t.Errorf("%+v: %v, want an error naming the field", c, err)
		}
	}
}
