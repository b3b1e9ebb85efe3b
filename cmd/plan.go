package cmd

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/capacity"
	"github.com/swarmship/swarmship/internal/fielderr"
	"github.com/swarmship/swarmship/internal/yamlconfig"
	"github.com/swarmship/swarmship/policy"
)

func init() { extraCommands = append(extraCommands, newPlanCmd) }

// planFile is the YAML a release engineer writes for `swarmship plan`
// (docs/capacity.md); flags override it.
type planFile struct {
	Size       bytesize.Size `yaml:"size"`
	OriginUp   policy.Rate   `yaml:"origin_up"`
	Window     time.Duration `yaml:"window"`
	Releases   int           `yaml:"releases"`
	Efficiency float64       `yaml:"efficiency"`
	Startup    time.Duration `yaml:"startup"`
	// The agents' and the tracker's intervals, when not the defaults.
	AnnounceInterval time.Duration `yaml:"announce_interval"`
	RefreshInterval  time.Duration `yaml:"refresh_interval"`
	ReportInterval   time.Duration `yaml:"report_interval"`
	Sites            []planSite    `yaml:"sites"`
}

// planSite is one site, or Count identical ones.
type planSite struct {
	Name    string      `yaml:"name"`
	Count   int         `yaml:"count"`
	Agents  int         `yaml:"agents"`
	WANDown policy.Rate `yaml:"wan_down"`
	WANUp   policy.Rate `yaml:"wan_up"`
}

// maxPlanSites bounds the sites a plan expands to (count included).
const maxPlanSites = 100_000

func (f *planFile) validate() error {
	total := 0
	for i, s := range f.Sites {
		path := fielderr.Index("sites", i)
		switch {
		case s.Count < 0 || s.Count > maxPlanSites:
			return fielderr.New(path+".count", "must be between 0 (one site) and %d", maxPlanSites)
		case s.Agents < 1:
			return fielderr.New(path+".agents", "must be at least 1")
		case s.WANDown <= 0:
			return fielderr.New(path+".wan_down", "must be a finite rate, e.g. 50Mbit")
		case s.WANUp <= 0:
			return fielderr.New(path+".wan_up", "must be a finite rate, e.g. 20Mbit")
		}
		total += max(1, s.Count)
		if total > maxPlanSites {
			return fielderr.New(path+".count", "more than %d sites in all", maxPlanSites)
		}
	}
	if f.Startup < 0 {
		return fielderr.New("startup", "must not be negative")
	}
	if f.Releases < 0 {
		return fielderr.New("releases", "must not be negative")
	}
	if f.Efficiency < 0 || f.Efficiency > 1 {
		return fielderr.New("efficiency", "must be in (0, 1]")
	}
	return nil
}

// input expands the file into the model's input; entry[i] is the index in
// f.Sites of site i.
func (f *planFile) input() (capacity.Input, []int) {
	in := capacity.Input{
		Size: int64(f.Size), OriginUp: float64(f.OriginUp), Window: f.Window,
		Releases: f.Releases, Efficiency: f.Efficiency, Startup: f.Startup,
		AnnounceInterval: f.AnnounceInterval, RefreshInterval: f.RefreshInterval, ReportInterval: f.ReportInterval,
	}
	var entry []int
	for i, s := range f.Sites {
		n := max(1, s.Count)
		for k := range n {
			name := s.Name
			if name == "" {
				name = fmt.Sprintf("site%d", i+1)
			}
			if n > 1 {
				name = fmt.Sprintf("%s-%d", name, k+1)
			}
			in.Sites = append(in.Sites, capacity.Site{Name: name, Agents: s.Agents, Down: float64(s.WANDown), Up: float64(s.WANUp)})
			entry = append(entry, i)
		}
	}
	return in, entry
}

func newPlanCmd() *cobra.Command {
	var (
		file               string
		sites, agents      int
		size               string
		down, up, originUp string
		window             time.Duration
		releases           int
		efficiency         float64
		startup            time.Duration
		announce, refresh  time.Duration
		reportEvery        time.Duration
	)
	c := &cobra.Command{
		Use:   "plan [--file plan.yaml] [--sites N --agents N --wan-down R --wan-up R] --size S --origin-up R",
		Short: "Predict a rollout: origin egress, WAN bytes per site, completion time, tracker/catalog load, store memory",
		Long: `plan runs the capacity model (docs/capacity.md) before a rollout. Sites come from
--file (a list, each entry optionally repeated by count) or from --sites with
--agents, --wan-down and --wan-up (identical sites; replaces the file's list).
Other flags override the file. Nothing is contacted: it is arithmetic.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var f planFile
			if file != "" {
				b, err := readBounded(file)
				if err != nil {
					return err
				}
				if err := yamlconfig.Parse(file, b, &f, f.validate); err != nil {
					return err
				}
			}
			fl := cmd.Flags()
			var err error
			if fl.Changed("size") {
				var s bytesize.Size
				if s, err = bytesize.Parse(size); err != nil {
					return fmt.Errorf("--size: %w", err)
				}
				f.Size = s
			}
			if fl.Changed("origin-up") {
				if f.OriginUp, err = policy.ParseRate(originUp); err != nil {
					return fmt.Errorf("--origin-up: %w", err)
				}
			}
			if fl.Changed("sites") {
				s := planSite{Name: "site", Count: sites, Agents: agents}
				if !fl.Changed("wan-down") || !fl.Changed("wan-up") {
					return fmt.Errorf("--sites needs --wan-down and --wan-up")
				}
				if s.WANDown, err = policy.ParseRate(down); err != nil {
					return fmt.Errorf("--wan-down: %w", err)
				}
				if s.WANUp, err = policy.ParseRate(up); err != nil {
					return fmt.Errorf("--wan-up: %w", err)
				}
				if sites < 1 {
					return fmt.Errorf("--sites must be at least 1")
				}
				f.Sites = []planSite{s}
			} else if fl.Changed("agents") || fl.Changed("wan-down") || fl.Changed("wan-up") {
				return fmt.Errorf("--agents, --wan-down and --wan-up describe the sites of --sites")
			}
			if fl.Changed("window") {
				f.Window = window
			}
			if fl.Changed("releases") {
				f.Releases = releases
			}
			if fl.Changed("efficiency") {
				f.Efficiency = efficiency
			}
			if fl.Changed("startup") {
				f.Startup = startup
			}
			if fl.Changed("announce-interval") {
				f.AnnounceInterval = announce
			}
			if fl.Changed("refresh-interval") {
				f.RefreshInterval = refresh
			}
			if fl.Changed("report-interval") {
				f.ReportInterval = reportEvery
			}
			if err := f.validate(); err != nil {
				return err
			}
			if f.OriginUp == policy.Unlimited {
				return fmt.Errorf("the origin's uplink is needed (--origin-up or origin_up)")
			}
			in, entry := f.input()
			p, err := capacity.Model(in)
			if err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), p)
			}
			printPlan(cmd.OutOrStdout(), in.WithDefaults(), entry, &p)
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVarP(&file, "file", "f", "", "plan YAML (docs/capacity.md)")
	fl.IntVar(&sites, "sites", 0, "number of identical sites")
	fl.IntVar(&agents, "agents", 1, "agents per site (with --sites)")
	fl.StringVar(&down, "wan-down", "", "each site's WAN downlink, e.g. 50Mbit (with --sites)")
	fl.StringVar(&up, "wan-up", "", "each site's WAN uplink, e.g. 20Mbit (with --sites)")
	fl.StringVar(&originUp, "origin-up", "", "the origin's uplink, e.g. 1Gbit")
	fl.StringVar(&size, "size", "", "release size, e.g. 256MiB")
	fl.DurationVar(&window, "window", 0, "length of one download window, e.g. 8h (0: none)")
	fl.IntVar(&releases, "releases", 0, "releases downloading at once (default 1)")
	fl.Float64Var(&efficiency, "efficiency", 0, fmt.Sprintf("fraction of the lower bound achieved (default %.2f, from the testbed)", capacity.DefaultEfficiency))
	fl.DurationVar(&startup, "startup", 0, "time before the swarm runs at its rate (default 3s)")
	fl.DurationVar(&announce, "announce-interval", 0, "tracker announce interval (default 60s)")
	fl.DurationVar(&refresh, "refresh-interval", 0, "agents' catalog refresh_interval (default 1m)")
	fl.DurationVar(&reportEvery, "report-interval", 0, "agents' report interval (default 30s)")
	return c
}

// readBounded reads a plan file of at most yamlconfig.MaxSize bytes.
func readBounded(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, yamlconfig.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func printPlan(w io.Writer, in capacity.Input, entry []int, p *capacity.Plan) {
	size := func(v float64) string { return bytesize.Format(int64(v)) }
	secs := func(v float64) string {
		return (time.Duration(v * float64(time.Second))).Round(100 * time.Millisecond).String()
	}
	F := float64(in.Size)
	fmt.Fprintf(w, "rollout: %d agents in %d sites, %s release, origin uplink %s, %d release(s) at once\n\n",
		p.Agents, len(p.Sites), size(F), policy.Rate(in.OriginUp), in.Releases)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "origin egress\t%s\t(%.2f copies; ~%s on the wire; HTTP-only would send %s)\n",
		size(p.OriginEgress), p.OriginEgress/F, size(p.OriginWire), size(p.HTTPOnlyEgress))
	fmt.Fprintf(tw, "completion, lower bound\t%s\t\n", secs(p.LowerBound))
	terms := make([]string, 0, len(p.Terms))
	for k := range p.Terms {
		terms = append(terms, k)
	}
	sort.Strings(terms)
	for _, k := range terms {
		fmt.Fprintf(tw, "  %s\t%s\t\n", k, secs(p.Terms[k]))
	}
	fmt.Fprintf(tw, "completion, expected\t%s\t(start-up %s + lower bound / efficiency %.2f; HTTP-only at least %s)\n", secs(p.Expected), secs(p.Startup), p.Efficiency, secs(p.HTTPOnly))
	if in.Window > 0 {
		fit := "fits in one window"
		if !p.FitsWindow {
			fit = fmt.Sprintf("DOES NOT FIT: spans %d windows", p.Windows)
		}
		fmt.Fprintf(tw, "download window %s\t%s\t\n", in.Window, fit)
	}
	fmt.Fprintf(tw, "tracker\t%.1f announces/s\t(swarm-view polls %.1f/s at the start, %.1f/s later)\n", p.AnnouncesPerSec, p.SwarmPollsPeakPerSec, p.SwarmPollsPerSec)
	fmt.Fprintf(tw, "catalog\t%.1f requests/s\t(%.1f/s during one refresh interval after a change)\n", p.CatalogPerSec, p.CatalogChangePerSec)
	fmt.Fprintf(tw, "reports\t%.1f/s\t\n", p.ReportsPerSec)
	fmt.Fprintf(tw, "origin store (Redis)\t%s\t(peer entries %s, reports %s)\n", size(p.StoreBytes), size(p.PeerEntryBytes), size(p.ReportBytes))
	tw.Flush()
	// One row per entry of the plan: identical sites share it.
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SITE\tSITES\tAGENTS\tWAN IN\tFROM ORIGIN\tWAN OUT\tBOUND\t")
	for i := 0; i < len(p.Sites); {
		j := i
		for j < len(p.Sites) && entry[j] == entry[i] {
			j++
		}
		s := p.Sites[i]
		name := s.Name
		if j-i > 1 {
			name = strings.TrimSuffix(name, "-1") + "-*"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", name, j-i, s.Agents, size(s.WANIn), size(s.FromOrigin), size(s.WANOut), secs(s.Seconds))
		i = j
	}
	tw.Flush()
}
