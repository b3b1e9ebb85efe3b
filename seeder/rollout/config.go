package rollout

import (
	"time"

	"github.com/swarmship/swarmship/internal/fielderr"
)

// Config tunes how the origin keeps agent reports and when it raises
// alerts (the origin's reports: section). Zero values mean the defaults.
type Config struct {
	// History is how many past reports are kept per agent; default 32.
	History int `yaml:"history"`
	// StallIntervals: an agent whose release has made no progress for this
	// many of its report intervals is stalled, and one that has not
	// reported for as long is missing; default 4.
	StallIntervals int `yaml:"stall_intervals"`
	// OriginBudget is how many copies of a release the origin (range
	// requests and web seed) may send before the origin_share alert fires;
	// default 1.5.
	OriginBudget float64 `yaml:"origin_budget"`
	// ChurnRatio: the churn alert fires when this share of the known agents
	// went missing within ChurnWindow; default 0.2 and 15m.
	ChurnRatio  float64       `yaml:"churn_ratio"`
	ChurnWindow time.Duration `yaml:"churn_window"`
	// CapacityDrop: the upload_capacity alert fires when the agents able
	// to seed fall below this share of their peak of the last hour; default 0.5.
	CapacityDrop float64 `yaml:"capacity_drop"`
	// Forget drops agents that have not reported for this long; default 7 days.
	Forget time.Duration `yaml:"forget"`
	// MaxAgents bounds memory; reports from further agents are refused; default 100000.
	MaxAgents int `yaml:"max_agents"`
	// MaxAgentsPerTenant bounds the agents one tenant can register; default 10000.
	MaxAgentsPerTenant int `yaml:"max_agents_per_tenant"`
	// MaxRecordBytes bounds one agent's stored record (latest report and
	// history, as JSON): history is dropped oldest first to fit, and a
	// report that alone exceeds it is refused; default 128 KiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// MaxTenantBytes and MaxBytes bound the stored records of one tenant
	// and of all (memory and reports.db); default 64 MiB and 256 MiB.
	MaxTenantBytes int64 `yaml:"max_tenant_bytes"`
	MaxBytes       int64 `yaml:"max_bytes"`
	// MaxInterval caps the report interval an agent declares, so that no
	// agent counts as live for longer than stall_intervals*max_interval
	// after its last report; default 2m.
	MaxInterval time.Duration `yaml:"max_interval"`
	// RatePerAddress is the reports per second accepted from one address
	// (burst: 4 s worth, at least 50); default 50. One agent identity may
	// send identityRate per second.
	RatePerAddress float64 `yaml:"rate_per_address"`

	// Contribution (the agents' per-peer ledgers): a peer is a freeloader
	// when the agents sent it at least FreeloaderMinBytes (default 4 MiB),
	// it sent them under 5% of that, and it held pieces they lacked
	// without sending any for FreeloaderStarved in all (default 10s); it
	// misbehaves with a bad piece, or MisbehavingStalled requests
	// (default 16) left unanswered, or unanswered requests reported by
	// two agents.
	FreeloaderMinBytes int64         `yaml:"freeloader_min_bytes"`
	FreeloaderStarved  time.Duration `yaml:"freeloader_starved"`
	MisbehavingStalled int           `yaml:"misbehaving_stalled"`
}

func (c *Config) setDefaults() {
	if c.History <= 0 {
		c.History = 32
	}
	if c.StallIntervals <= 0 {
		c.StallIntervals = 4
	}
	if c.OriginBudget <= 0 {
		c.OriginBudget = 1.5
	}
	if c.ChurnRatio <= 0 {
		c.ChurnRatio = 0.2
	}
	if c.ChurnWindow <= 0 {
		c.ChurnWindow = 15 * time.Minute
	}
	if c.CapacityDrop <= 0 {
		c.CapacityDrop = 0.5
	}
	if c.Forget <= 0 {
		c.Forget = 7 * 24 * time.Hour
	}
	if c.MaxAgents <= 0 {
		c.MaxAgents = 100000
	}
	if c.MaxAgentsPerTenant <= 0 {
		c.MaxAgentsPerTenant = 10000
	}
	if c.MaxRecordBytes <= 0 {
		c.MaxRecordBytes = 128 << 10
	}
	if c.MaxTenantBytes <= 0 {
		c.MaxTenantBytes = 64 << 20
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 256 << 20
	}
	if c.MaxInterval <= 0 {
		c.MaxInterval = 2 * time.Minute
	}
	if c.RatePerAddress <= 0 {
		c.RatePerAddress = 50
	}
	if c.FreeloaderMinBytes <= 0 {
		c.FreeloaderMinBytes = 4 << 20
	}
	if c.FreeloaderStarved <= 0 {
		c.FreeloaderStarved = 10 * time.Second
	}
	if c.MisbehavingStalled <= 0 {
		c.MisbehavingStalled = 16
	}
}

// Validate checks what the defaults cannot mend: zero or negative values
// mean the default (see setDefaults), so only shares above 1 are refused.
// Errors carry field paths relative to the reports section.
func (c Config) Validate() error {
	for _, r := range []struct {
		field string
		v     float64
	}{{"churn_ratio", c.ChurnRatio}, {"capacity_drop", c.CapacityDrop}} {
		if r.v > 1 {
			return fielderr.New(r.field, "%v is a share: want at most 1", r.v)
		}
	}
	return nil
}
