// Package localswarm runs a whole swarmship deployment in one process on
// loopback: a directory catalog, an origin (tracker, seeder, web seed) and
// agents. `swarmship demo` and the end-to-end tests use it.
package localswarm

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/seeder"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// Swarm is a catalog, its origin and any number of agents.
type Swarm struct {
	Dir        string
	CatalogDir string
	KeysDir    string
	RootPath   string
	Store      catalog.Store
	Keys       catalog.Keys
	Origin     *seeder.Origin
	OriginURL  string // http://127.0.0.1:PORT
	Log        *slog.Logger

	ln     net.Listener
	srv    *http.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	agents  []*RunningAgent
	origins []*OriginServer // added by AddOrigin
}

// OriginOptions tune the origin.
type OriginOptions struct {
	// Seed runs the origin's BitTorrent seeder (for foreign clients).
	Seed bool
	// Store is the catalog; nil means a new directory catalog under dir.
	Store catalog.Store
	// WrapHandler, if set, wraps the origin's HTTP handler (tests use it
	// to slow down or break the origin).
	WrapHandler func(http.Handler) http.Handler
	// Configure, if set, edits the origin's config (tokens, reports).
	Configure func(*seeder.Config)
	// Tracker tunes the origin's tracker (caps, trust_ip_param).
	Tracker tracker.Config
	// TLS makes the origin serve HTTPS (OriginURL is then https://).
	TLS seeder.TLSConfig
}

// New creates a catalog under dir and starts an origin serving it on a
// free loopback port.
func New(ctx context.Context, dir string, opts OriginOptions, log *slog.Logger) (*Swarm, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Swarm{Dir: dir, CatalogDir: filepath.Join(dir, "catalog"), KeysDir: filepath.Join(dir, "keys"), Log: log}
	store := opts.Store
	if store == nil {
		if err := os.MkdirAll(s.CatalogDir, 0o755); err != nil {
			return nil, err
		}
		ds, err := catalog.NewDirStore(s.CatalogDir)
		if err != nil {
			return nil, err
		}
		store = ds
	} else {
		s.CatalogDir = ""
	}
	s.Store = store
	var err error
	if s.Keys, err = catalog.GenerateKeys(s.KeysDir); err != nil {
		return nil, err
	}
	rootJSON, err := catalog.Init(ctx, store, s.Keys, catalog.DefaultExpiry, time.Now())
	if err != nil {
		return nil, err
	}
	s.RootPath = filepath.Join(s.KeysDir, "root.json")
	if err := os.WriteFile(s.RootPath, rootJSON, 0o644); err != nil {
		return nil, err
	}
	if s.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	s.OriginURL = "http://" + s.ln.Addr().String()
	if opts.TLS.Enabled() {
		s.OriginURL = "https://" + s.ln.Addr().String()
	}
	client, err := catalog.NewClient(store, rootJSON, filepath.Join(dir, "origin", "tuf"))
	if err != nil {
		s.ln.Close()
		return nil, err
	}
	seed := opts.Seed
	ocfg := seeder.Config{
		Listen:          s.ln.Addr().String(),
		CacheDir:        filepath.Join(dir, "origin", "cache"),
		Seed:            &seed,
		PeerHost:        "127.0.0.1",
		RefreshInterval: time.Second,
		Tracker:         opts.Tracker,
		TLS:             opts.TLS,
	}
	if opts.Configure != nil {
		opts.Configure(&ocfg)
	}
	s.Origin, err = seeder.New(ocfg, store, client, log.With("role", "origin"))
	if err != nil {
		s.ln.Close()
		return nil, err
	}
	h := s.Origin.Handler()
	if opts.WrapHandler != nil {
		h = opts.WrapHandler(h)
	}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	ln := s.ln
	if tc := s.Origin.ServerTLS(); tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	go s.srv.Serve(ln)
	octx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.Origin.Run(octx)
	}()
	return s, nil
}

// Publish publishes paths as name@version with the origin as tracker and
// web seed.
func (s *Swarm) Publish(ctx context.Context, name, version string, paths []string, channels ...string) (*publish.PublishResult, error) {
	return publish.Publish(ctx, s.Store, s.Keys, publish.PublishOptions{
		Name: name, Version: version, Paths: paths, Channels: channels,
		WebSeedURL: s.OriginURL + "/",
		Announce:   []string{s.OriginURL + "/announce"},
	})
}

// PublishWith publishes with full options; the origin is filled in as
// tracker and web seed.
func (s *Swarm) PublishWith(ctx context.Context, opts publish.PublishOptions) (*publish.PublishResult, error) {
	opts.WebSeedURL = s.OriginURL + "/"
	opts.Announce = []string{s.OriginURL + "/announce"}
	return publish.Publish(ctx, s.Store, s.Keys, opts)
}

// Repo opens the catalog for promote and yank.
func (s *Swarm) Repo(ctx context.Context) (*catalog.Repo, error) {
	return catalog.OpenRepo(ctx, s.Store, s.Keys, catalog.DefaultExpiry)
}

// AgentConfig returns a config for an agent named name that reads the
// catalog through the origin over HTTP, as a remote site would.
func (s *Swarm) AgentConfig(name, site, region string, subs ...agent.Subscription) *agent.Config {
	cfg := &agent.Config{
		Catalog:         agent.CatalogConfig{URL: s.OriginURL + "/", Root: s.RootPath},
		Tracker:         s.OriginURL + "/announce",
		Site:            site,
		Region:          region,
		CacheDir:        filepath.Join(s.Dir, "agents", name),
		Subscriptions:   subs,
		RefreshInterval: time.Second,
		Swarm:           agent.SwarmConfig{ListenHost: "127.0.0.1"},
		Offload:         agent.OffloadConfig{StartupGrace: 2 * time.Second, OrphanTimeout: 10 * time.Second},
		Status:          agent.StatusConfig{Addr: "127.0.0.1:0"},
		Report:          agent.ReportConfig{URL: s.OriginURL + "/", Interval: 500 * time.Millisecond, Name: name},
	}
	// LAN discovery off: agents of tests running side by side must meet
	// only through this swarm's tracker (a test turns it on).
	cfg.Swarm.LSD = agent.LSDOff
	// Loopback swarms do not cross the host's uplink: its metered flag
	// (NetworkManager on a developer's laptop) is not theirs.
	cfg.Power.NetworkManager = agent.NetworkManagerOff
	return cfg
}

// RunningAgent is an agent whose daemon loop runs in a goroutine.
type RunningAgent struct {
	Name   string
	Agent  *agent.Agent
	Config *agent.Config
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// StartAgent creates an agent from cfg and runs it.
func (s *Swarm) StartAgent(ctx context.Context, name string, cfg *agent.Config) (*RunningAgent, error) {
	return s.StartAgentWith(ctx, name, cfg, agent.Options{})
}

// StartAgentWith is StartAgent with options (a test clock, say); the
// logger defaults to the swarm's.
func (s *Swarm) StartAgentWith(ctx context.Context, name string, cfg *agent.Config, opts agent.Options) (*RunningAgent, error) {
	if err := cfg.Finish(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = s.Log.With("agent", name)
	}
	a, err := agent.New(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithCancel(context.Background())
	ra := &RunningAgent{Name: name, Agent: a, Config: cfg, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ra.done)
		if err := a.Run(actx); err != nil {
			s.Log.Error("agent stopped", "agent", name, "err", err)
		}
	}()
	s.mu.Lock()
	s.agents = append(s.agents, ra)
	s.mu.Unlock()
	return ra, nil
}

// Stop ends the agent's loop and closes it (state flushed).
func (ra *RunningAgent) Stop() error {
	var err error
	ra.once.Do(func() {
		ra.cancel()
		<-ra.done
		err = ra.Agent.Close()
	})
	return err
}

// Agents returns the started agents.
func (s *Swarm) Agents() []*RunningAgent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*RunningAgent(nil), s.agents...)
}

// WaitActive waits until every given agent has name@version active, or the
// context ends.
func WaitActive(ctx context.Context, name, version string, agents ...*RunningAgent) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		pending := ""
		for _, ra := range agents {
			if !IsActive(ra.Agent, name, version) {
				pending = ra.Name
				break
			}
		}
		if pending == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s did not activate %s@%s: %w", pending, name, version, ctx.Err())
		case <-tick.C:
		}
	}
}

// IsActive reports whether the agent's status shows name@version active.
func IsActive(a *agent.Agent, name, version string) bool {
	for _, s := range a.Status().Subscriptions {
		if s.Name == name && s.Active == version && s.Ready {
			return true
		}
	}
	return false
}

// OriginServer is a further origin on the swarm's catalog (several
// origins sharing state.redis), with its own port and cache dir.
type OriginServer struct {
	Origin *seeder.Origin
	URL    string // http://127.0.0.1:PORT

	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
	err    error
}

// AddOrigin starts another origin on the swarm's catalog; opts.Configure
// edits its config (state.redis, say). Store and TLS are the swarm's.
func (s *Swarm) AddOrigin(ctx context.Context, name string, opts OriginOptions) (*OriginServer, error) {
	rootJSON, err := os.ReadFile(s.RootPath)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, name)
	client, err := catalog.NewClient(s.Store, rootJSON, filepath.Join(dir, "tuf"))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	seed := opts.Seed
	cfg := seeder.Config{
		Listen:          ln.Addr().String(),
		CacheDir:        filepath.Join(dir, "cache"),
		Seed:            &seed,
		PeerHost:        "127.0.0.1",
		RefreshInterval: time.Second,
		Tracker:         opts.Tracker,
	}
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	o, err := seeder.New(cfg, s.Store, client, s.Log.With("role", "origin", "origin", name))
	if err != nil {
		ln.Close()
		return nil, err
	}
	h := o.Handler()
	if opts.WrapHandler != nil {
		h = opts.WrapHandler(h)
	}
	srv := &OriginServer{Origin: o, URL: "http://" + ln.Addr().String(), done: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	go srv.srv.Serve(ln)
	octx, cancel := context.WithCancel(context.Background())
	srv.cancel = cancel
	go func() {
		defer close(srv.done)
		o.Run(octx)
	}()
	s.mu.Lock()
	s.origins = append(s.origins, srv)
	s.mu.Unlock()
	return srv, nil
}

// Kill stops the origin at once, as a crash would look to its clients:
// its connections are cut mid-response and it answers nothing more.
func (o *OriginServer) Kill() error {
	o.once.Do(func() {
		o.srv.Close()
		o.cancel()
		<-o.done
		o.err = o.Origin.Close()
	})
	return o.err
}

// Close stops every agent and the origins.
func (s *Swarm) Close() error {
	var errs []error
	for _, ra := range s.Agents() {
		errs = append(errs, ra.Stop())
	}
	s.mu.Lock()
	origins := s.origins
	s.mu.Unlock()
	for _, o := range origins {
		errs = append(errs, o.Kill())
	}
	s.cancel()
	s.wg.Wait()
	if s.srv != nil {
		s.srv.Close()
	}
	errs = append(errs, s.Origin.Close())
	return errors.Join(errs...)
}
