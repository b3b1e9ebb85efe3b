// Package agent is the swarmship agent: it follows a signed catalog,
// downloads subscribed releases from peers first and the origin as
// fallback, verifies them against the signed manifest, activates them
// atomically and keeps seeding. Run is the daemon; Sync is one pass.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/certreload"
	"github.com/swarmship/swarmship/internal/dht"
	"github.com/swarmship/swarmship/internal/lsd"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/selfupdate"
	"github.com/swarmship/swarmship/internal/streamverify"
	"github.com/swarmship/swarmship/internal/tracing"
	"github.com/swarmship/swarmship/policy"
)

// Agent is one site's agent. Create it with New, then call Run or Sync,
// then Close.
type Agent struct {
	cfg *Config
	// ids holds the agent ID once read (reports and rollout waves share it).
	ids      agentIDOnce
	log      *slog.Logger
	store    catalog.Store
	catalog  *catalog.Client
	state    *stateDB
	cache    releaseCache
	bt       *torrent.Client
	serve    *btclient.ServeBudget // peer request data, all torrents together
	complete *completionDB
	// byHash finds a download by infohash without a.mu, for the counters
	// saved with each completed piece (see completionDB).
	byHash   sync.Map // metainfo.Hash -> *download
	down, up *rate.Limiter
	peerID   [20]byte
	// peerCert and originCert are the peer TLS material and the client
	// certificate for the origin (nil when unused), reread when their
	// files change (certs.go).
	peerCert   *peertls.Source
	originCert *certreload.Files[*certreload.Pair]
	// power reads battery and metered state (power.go), made on first use.
	power     *powerReader
	powerOnce sync.Once
	// ledger counts what each peer gave and took (ledger.go).
	ledger *ledger
	// relay is the relay client of a relay-mode agent (swarm.relay:
	// origin), nil otherwise; stopRelay ends it.
	relay     *relay.Client
	stopRelay func()
	token     string
	// trackerHTTP fetches the tracker's swarm views.
	trackerHTTP *http.Client
	loc         *time.Location
	now         func() time.Time
	// originLimit bounds range requests to the origin: the lower of the
	// profile's download rate and this agent's share of the site's WAN
	// download cap, which peers outside the site draw from too (wan).
	originLimit *rate.Limiter
	wan         *wanLimit // wanlimit.go
	// verifyGate bounds the streaming hashes of all downloads together.
	verifyGate *streamverify.Gate

	mu          sync.Mutex
	downloads   map[string]*download // by name@version
	subs        []SubscriptionStatus
	lastRefresh time.Time
	catalogErr  error
	refreshErrs int64
	wake        chan struct{}
	pol         policyState
	fleet       fleetState // fleet policy from the catalog (fleetpolicy.go)
	// deadlines tracks downloads with a deliver-by time (windows.go);
	// lastDownRate is the latest rate measured for one, the projection of
	// a download that has not run yet.
	deadlines    map[string]*deadlineTrack
	lastDownRate float64
	gateTimings  map[string]gateTiming // by name@version, windows.go
	evictions    int64
	// originHashFails counts origin pieces that failed their hash check.
	originHashFails atomic.Int64
	// stateFailing is set while release records cannot be written.
	stateFailing atomic.Bool
	reports      reportCounters
	closing      bool       // Close has begun
	recoveries   []Recovery // what was done about damaged state at start
	// pendingAdopt are unrecorded release directories without cached
	// metadata, settled against the catalog after a refresh (under mu).
	pendingAdopt []release.Ref

	traceShutdown func(context.Context) error

	statusLn  net.Listener
	statusSrv *http.Server
	wg        sync.WaitGroup

	// originHTTP carries every request to the origin (verified TLS).
	originHTTP *http.Transport

	// store is the catalog's mirrors (*catalog.Mirrors unless
	// Options.Store); offloadSrc serves payload ranges: offload.sources,
	// else store. trackers are the announce tiers with their health; nil:
	// none.
	offloadSrc catalog.Store
	trackers   *trackerList
	// hints asks Run for a catalog refresh now (the catalog watch saw a
	// change); watch is that watch, nil when there is none.
	hints chan struct{}
	watch *catalogWatch
	// lsd finds the site's agents on the LAN (swarm.lsd); nil when off.
	lsd *lsd.Service
	// dht is the tenant's private DHT (swarm.dht); nil when off.
	dht *dht.Node

	// version is Options.Version; selfState is the self-update state read
	// at start (selfupdate.go); selfWhy the last reason not to update;
	// healthWritten is set once a binary on trial said it is healthy.
	version       string
	selfState     selfupdate.State
	selfWhy       string
	healthWritten bool

	// screens serves the signage schedule to players (signage.go), nil
	// without signage.schedule; signageDigest is the schedule in force.
	screens       *Screens
	signageDigest string

	// localMode is agent.yaml's mode; cfg.Mode is the mode the agent
	// started with, the fleet policy's if that was stricter.
	localMode policy.Mode

	// media serves held releases to the site's players (mediaserver.go).
	media mediaState
}

// download is one release in the torrent client.
type download struct {
	ref      release.Ref
	manifest *catalog.Manifest
	t        *torrent.Torrent
	off      *offloader
	base     Bytes // counted in earlier runs
	baseUp   int64
	ctx      context.Context // ends when the download is dropped or the agent closes
	cancel   context.CancelFunc
	span     trace.Span    // download span, ended at verification
	sv       *streamVerify // hashes files as pieces arrive; nil when seeding
	// variants, for a watermarked release, are the files and pieces this
	// site fetches (watermark.go); nil: the whole torrent.
	variants *siteVariants
	// reused is payload bytes taken from held releases, earlier runs
	// included (reuse.go, subpiece.go).
	reused atomic.Int64

	// mu guards the pause state (diskfull.go): the policy's pause, a
	// write fault (disk full) and what was last applied.
	mu         sync.Mutex
	paused     bool   // by policy (window, battery)
	fault      string // why writes fail; "" when they work
	faultSince time.Time
	resumedAt  time.Time // when a write fault last cleared
	flaps      int       // faults soon after a resume, for back-off
	halted     bool      // data download disallowed and offloader paused
}

// SubscriptionStatus says what a subscription resolves to and why it waits.
type SubscriptionStatus struct {
	Subscription string `json:"subscription"`
	Name         string `json:"name"`
	Target       string `json:"target,omitempty"` // version the catalog points at
	Active       string `json:"active,omitempty"` // version activated now
	Ready        bool   `json:"ready"`
	Reason       string `json:"reason,omitempty"`
}

// Options are for embedding agents (demo, tests); the zero value is fine.
type Options struct {
	Logger *slog.Logger
	// Store overrides the catalog store opened from cfg.Catalog.URL.
	Store catalog.Store
	// Now is the clock for schedules and windows (tests shift it).
	Now func() time.Time
	// Version is the running binary's version (cmd.Version), reported
	// and compared with the self_update release.
	Version string
}

// New opens the agent's state and starts its BitTorrent client. It does not
// contact the catalog; Run and Sync do.
func New(ctx context.Context, cfg *Config, opts Options) (*Agent, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("site", cfg.Site)
	cfg = cfg.withSelfSubscription()
	root, err := os.ReadFile(cfg.Catalog.Root)
	if err != nil {
		return nil, fmt.Errorf("catalog.root: %w", err)
	}
	// The certificates follow their files: ReloadCertificates.
	peerSrc, err := peertls.Open(cfg.PeerTLS, log)
	if err != nil {
		return nil, fmt.Errorf("peer_tls: %w", err)
	}
	peerTLS, peerID := peerSrc.TLS(), peerSrc.Identity()
	if peerTLS != nil && cfg.Tenant != "" && peerID.Tenant != cfg.Tenant {
		return nil, fmt.Errorf("peer_tls: certificate is for tenant %q, the agent is configured for %q", peerID.Tenant, cfg.Tenant)
	}
	for _, d := range []string{"", "releases", "current", "state", "tuf"} {
		if err := os.MkdirAll(filepath.Join(cfg.CacheDir, d), 0o750); err != nil {
			return nil, fmt.Errorf("cache_dir: %w", err)
		}
	}
	tok := cfg.Token
	if cfg.TokenFile != "" {
		if tok, err = readTokenFile(cfg.TokenFile); err != nil {
			return nil, err
		}
	}
	log = redactLogger(log, tok)
	originTLS, originCert, err := cfg.TLS.clientConfig(log)
	if err != nil {
		return nil, err
	}
	originHTTP := originTransport(originTLS)
	s3cfg := catalog.S3ConfigFromEnv(cfg.Catalog.S3Config())
	store := opts.Store
	if store == nil {
		if store, err = openMirrors(ctx, cfg.Catalog.Mirrors(), tok, originHTTP, s3cfg, cfg.Failover, log); err != nil {
			return nil, err
		}
	}
	offloadSrc := store
	if len(cfg.Offload.Sources) > 0 {
		if offloadSrc, err = openMirrors(ctx, cfg.Offload.Sources, tok, originHTTP, s3cfg, cfg.Failover, log); err != nil {
			return nil, fmt.Errorf("offload.sources: %w", err)
		}
	}
	cc, err := catalog.NewClient(store, root, filepath.Join(cfg.CacheDir, "tuf"))
	if err != nil {
		return nil, err
	}
	state, stateRec, err := openState(filepath.Join(cfg.CacheDir, "state", "agent.db"), log)
	if err != nil {
		return nil, err
	}
	completion, complRec, err := openCompletion(filepath.Join(cfg.CacheDir, "state"), log)
	if err != nil {
		state.Close()
		return nil, fmt.Errorf("piece completion database: %w", err)
	}
	selfState, err := selfupdate.Load(SelfUpdateStatePath(cfg.CacheDir))
	if err != nil {
		log.Error("self-update state unreadable; starting afresh", "err", err)
	}
	a := &Agent{
		version: opts.Version, selfState: selfState,
		cfg: cfg, log: log, token: tok, store: store, catalog: cc, state: state, complete: completion,
		offloadSrc: offloadSrc, trackers: newTrackerList(cfg.TrackerTiers(), cfg.Failover.Policy()),
		down: btclient.Unlimited(), up: btclient.UploadLimiter(), originLimit: btclient.Unlimited(),
		downloads: map[string]*download{}, deadlines: map[string]*deadlineTrack{}, wake: make(chan struct{}, 1), hints: make(chan struct{}, 1),
		loc: cfg.Location(), now: opts.Now, cache: releaseCache{dir: cfg.CacheDir},
		trackerHTTP: &http.Client{Timeout: cfg.Failover.Timeout, Transport: newBearerTransports(tok, cfg.trackerURLs(), originHTTP)},
		originHTTP:  originHTTP,
		peerCert:    peerSrc,
		originCert:  originCert,
		verifyGate:  streamverify.NewGate(verifyWorkers),
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.wan = newWANLimit(a.originLimit, cfg.Offload.OriginShare)
	a.wan.log = log
	// The fleet policy in force at the last run may set a stricter mode;
	// peer connections are set up once, here (fleetpolicy.go).
	a.localMode = cfg.Mode
	a.loadFleet()
	cfg = a.startWithFleetMode()
	a.watch = a.newCatalogWatch()
	for _, r := range []*Recovery{stateRec, complRec} {
		if r != nil {
			a.recoveries = append(a.recoveries, *r)
		}
	}
	counters := a.liveCounters
	completion.counters.Store(&counters)
	if a.relay, err = newRelay(cfg, tok, originTLS, peerTLS, log); err != nil {
		completion.Close()
		state.Close()
		return nil, err
	}
	a.ledger = newLedger(peerTLS)
	if cfg.TestLedgerStall > 0 {
		a.ledger.stall = cfg.TestLedgerStall
	}
	btc := btclient.Config{
		Callbacks:    a.ledger.callbacks(),
		NoUpload:     cfg.TestNoUpload,
		PeerIDPrefix: btclient.AgentPeerIDPrefix,
		ListenHost:   cfg.Swarm.ListenHost,
		ListenPort:   cfg.Swarm.ListenPort,
		DataDir:      filepath.Join(cfg.CacheDir, "releases"),
		MaxConns:     cfg.Swarm.MaxConns,
		Upload:       a.up,
		Download:     a.down,
		NoPeers:      !cfg.Mode.Peers(),
		// Peer exchange would hand out peers the tracker kept away.
		NoPEX: cfg.Swarm.Locality != "any" || cfg.Swarm.Relay == RelayOrigin,
		// uTP needs a listener: origin-only and offline agents have none.
		UTP: cfg.Swarm.UTP == "on" && cfg.Mode.Peers(),
		TLS: peerTLS, TLSLog: log,
		TrackerRequest: trackerDirector(tok, cfg.trackerURLs()...),
		WrapPeerConn:   a.wan.wrap,
	}
	if d, _ := btclient.ParseDSCP(cfg.Swarm.DSCP); d >= 0 { // validated with the config
		btc.DSCP = &d
	}
	for _, u := range cfg.trackerURLs() {
		if strings.HasPrefix(u, "https://") {
			btc.TrackerTLS = originTLS
		}
	}
	if a.relay != nil {
		btc.Relay = a.relay
	}
	a.serve = btclient.NewServeBudget(btclient.DefaultServeBudget)
	a.bt, err = btclient.New(btc)
	if err != nil {
		completion.Close()
		state.Close()
		return nil, err
	}
	a.peerID = a.bt.PeerID()
	if a.traceShutdown, err = tracing.Setup(cfg.Tracing, "swarmship-agent"); err != nil {
		a.bt.Close()
		completion.Close()
		state.Close()
		return nil, err
	}
	if err := a.startLSD(); err != nil {
		a.bt.Close()
		completion.Close()
		state.Close()
		return nil, err
	}
	if err := a.startDHT(); err != nil {
		if a.lsd != nil {
			a.lsd.Close()
		}
		a.bt.Close()
		completion.Close()
		state.Close()
		return nil, err
	}
	a.startRelay()
	a.startSignage()
	if err := a.newMediaServer(); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// PeerPort is the port the agent accepts peers on.
func (a *Agent) PeerPort() int { return a.bt.LocalPort() }

// Close stops downloads and seeding and flushes state.
func (a *Agent) Close() error {
	a.mu.Lock()
	a.closing = true // no new goroutines from here on (see onWriteError)
	for _, d := range a.downloads {
		d.stop()
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.mu.Lock()
	for _, d := range a.downloads {
		a.saveProgressLocked(d)
		d.span.End()
	}
	a.mu.Unlock()
	if a.traceShutdown != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		a.traceShutdown(ctx)
		cancel()
	}
	if a.statusSrv != nil {
		a.statusSrv.Close()
	}
	if a.screens != nil {
		a.screens.Close()
	}
	a.stopMedia()
	if a.lsd != nil {
		a.lsd.Close()
	}
	if a.stopRelay != nil {
		a.stopRelay()
	}
	var errs []error
	if a.dht != nil {
		errs = append(errs, a.dht.Close())
	}
	errs = append(errs, a.bt.Close()...)
	errs = append(errs, a.complete.Close(), a.state.Close())
	return errors.Join(errs...)
}

// Run is the daemon loop: refresh the catalog on an interval, reconcile
// subscriptions, and serve status, until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.startStatus(); err != nil {
		return err
	}
	if err := a.startMedia(); err != nil {
		return err
	}
	// Run also returns with ctx alive (a self-update): the loops started
	// here stop on this cancel, which runs before they are waited for.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.startReporter(ctx)()
	defer a.startCatalogWatch(ctx)()
	defer cancel()
	ledgerDone := make(chan struct{})
	go func() {
		defer close(ledgerDone)
		a.ledger.run(ctx, a.bt)
	}()
	defer func() { cancel(); <-ledgerDone }()
	a.adoptUnrecorded(ctx)
	a.applyPolicy(a.now())
	a.restoreCached(ctx)
	refresh := time.NewTimer(0)
	defer refresh.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	backoff := time.Second
	var refreshed time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.hints:
			// The catalog changed: refresh now, polling stays the fallback.
			refresh.Reset(max(0, hintGap-time.Since(refreshed)))
			continue
		case <-refresh.C:
			refreshed = time.Now()
			if err := a.refresh(ctx); err != nil {
				a.log.Warn("catalog refresh failed; serving cached releases", "catalog", a.store.String(), "err", err, "retry_in", backoff)
				refresh.Reset(backoff)
				backoff = min(backoff*2, a.cfg.RefreshInterval)
				continue
			}
			backoff = time.Second
			refresh.Reset(a.cfg.RefreshInterval)
			a.adoptPending(ctx)
			a.noteRefreshed()
		case <-tick.C:
		case <-a.wake:
		}
		a.reconcile(ctx)
		if up := a.selfUpdateDue(); up != nil {
			return up
		}
	}
}

// Sync does one agent pass: refresh, then download, verify and activate
// every subscription; it returns nil once all are active, or an error
// naming what is not.
func (a *Agent) Sync(ctx context.Context) error {
	a.adoptUnrecorded(ctx)
	a.applyPolicy(a.now())
	a.restoreCached(ctx)
	if err := a.refresh(ctx); err != nil {
		return err
	}
	a.adoptPending(ctx)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		a.reconcile(ctx)
		if ready, reason := a.allReady(); ready {
			return nil
		} else if ctx.Err() != nil {
			return fmt.Errorf("not done: %s", reason)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-a.wake:
		}
	}
}

// Seed keeps serving peers until ctx ends (sync --seed-for).
func (a *Agent) Seed(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.mu.Lock()
			for _, d := range a.downloads {
				a.saveProgressLocked(d)
			}
			a.mu.Unlock()
		}
	}
}

func (a *Agent) allReady() (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.subs) == 0 {
		if a.catalogErr != nil {
			return false, a.catalogErr.Error()
		}
		return false, "catalog not read yet"
	}
	for _, s := range a.subs {
		if !s.Ready {
			reason := s.Reason
			if reason == "" {
				reason = "in progress"
			}
			return false, s.Subscription + ": " + reason
		}
	}
	return true, ""
}

func (a *Agent) refresh(ctx context.Context) error {
	if ls, ok := a.store.(*lazyStore); ok {
		if err := ls.open(ctx); err != nil {
			a.noteCatalogErr(err)
			return err
		}
	}
	ctx, span := tracing.Start(ctx, "catalog.refresh", attribute.String("catalog", a.store.String()))
	err := tlsHint(a.catalog.Refresh(ctx))
	tracing.End(span, err)
	a.noteCatalogErr(err)
	if err == nil {
		a.refreshFleet(ctx)
		a.refreshSignage(ctx)
	}
	return err
}

func (a *Agent) noteCatalogErr(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.catalogErr = err
	if err != nil {
		a.refreshErrs++
	} else {
		a.lastRefresh = time.Now()
	}
}

// restoreCached re-adds releases from earlier runs so they keep seeding and
// resume where they stopped; piece completion survives in bbolt.
func (a *Agent) restoreCached(ctx context.Context) {
	recs, err := a.state.All()
	if err != nil {
		a.log.Error("read state", "err", err)
		return
	}
	for _, r := range recs {
		if r.Phase == PhaseFailed && r.InfoHash == "" {
			continue
		}
		a.mu.Lock()
		_, have := a.downloads[r.Key()]
		a.mu.Unlock()
		if have {
			continue
		}
		mb, err := os.ReadFile(a.cache.manifestPath(r.Name, r.Version))
		if err != nil {
			continue
		}
		m, err := catalog.ParseManifest(mb)
		if err != nil {
			continue
		}
		tb, err := os.ReadFile(a.cache.torrentPath(r.Name, r.Version))
		if err != nil {
			continue
		}
		if _, err := a.addDownload(ctx, m, tb); err != nil {
			a.log.Warn("cannot resume cached release", "release", r.Name, "version", r.Version, "err", err)
		}
	}
}

// reconcile moves every subscription one step towards its target.
func (a *Agent) reconcile(ctx context.Context) {
	now := a.now()
	a.applyPolicy(now)
	// One decode of the signed targets per pass, shared by every
	// subscription: it was the agent's main idle cost.
	rels, relsErr := a.catalog.Releases()
	haveCatalog := relsErr == nil
	a.mu.Lock()
	gcDue := now.Sub(a.pol.lastGC) >= time.Minute
	a.mu.Unlock()
	if gcDue && haveCatalog {
		if err := a.gc(0, now); err != nil {
			a.log.Warn("cache over quota", "err", err)
		}
	}
	if haveCatalog && a.diskFull() {
		a.gcForDisk(now)
	}
	var subs []SubscriptionStatus
	for _, s := range a.cfg.Subscriptions {
		st := SubscriptionStatus{Subscription: s.String(), Name: s.Name}
		st.Active = a.cache.activeVersion(s.Name)
		if !haveCatalog {
			st.Reason = "catalog not read yet"
			if err := a.currentCatalogErr(); err != nil {
				st.Reason = "catalog unavailable: " + err.Error()
			}
			subs = append(subs, st)
			continue
		}
		rel, err := catalog.ResolveRelease(rels, s.Name, s.Channel, s.Version)
		if err != nil {
			st.Reason = err.Error()
			subs = append(subs, st)
			continue
		}
		st.Target = rel.Version
		s.entry = rel.Timing // the release's signed timing, for the gates
		if err := a.step(ctx, s, rel.Ref, &st); err != nil {
			st.Reason = err.Error()
		}
		st.Ready = st.Active == st.Target
		if st.Ready {
			st.Reason = ""
		}
		subs = append(subs, st)
	}
	a.mu.Lock()
	a.subs = subs
	for _, d := range a.downloads {
		a.saveProgressLocked(d)
	}
	a.mu.Unlock()
	// A screen missing its air time switches as soon as its content
	// verifies: retried every pass while one is at risk.
	if a.screens != nil && a.screens.AtRisk() {
		a.screens.Update()
	}
}

func (a *Agent) currentCatalogErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.catalogErr
}

// step advances one release: fetch metadata, download, verify, activate.
func (a *Agent) step(ctx context.Context, sub Subscription, ref release.Ref, st *SubscriptionStatus) error {
	a.mu.Lock()
	d := a.downloads[ref.String()]
	a.mu.Unlock()
	now := a.now()
	if d == nil {
		m, err := a.catalog.Manifest(ctx, ref.Name, ref.Version)
		if err != nil {
			return a.failOrWait(ref, "", err, now)
		}
		if m.Expired(now) {
			return fmt.Errorf("%s expired at %s", ref, m.Expires.Format(time.RFC3339))
		}
		if ok, why := policy.AllowedRelease(policy.Residency{Tenant: m.Tenant, Regions: m.Regions},
			policy.Identity{Tenant: a.cfg.Tenant, Site: a.cfg.Site, Region: a.cfg.Region}); !ok {
			return fmt.Errorf("%s: %s", ref, why)
		}
		// Room first: a release larger than the quota is refused, and GC
		// makes space before a download whose bytes are not cached yet.
		err = policy.CheckFits(m.TotalSize, a.quotaBytes())
		if rec, cached, _ := a.state.Get(ref.String()); err == nil && (!cached || rec.Phase == PhaseFailed || rec.Phase == PhaseQueued) {
			err = a.gc(m.TotalSize, now)
		}
		if err != nil {
			err = fmt.Errorf("%s: %w", ref, err)
			a.fail(ref, m.InfoHash, err)
			return err
		}
		tb, err := a.catalog.Torrent(ctx, ref.Name, ref.Version)
		if err != nil {
			return a.failOrWait(ref, m.InfoHash, err, now)
		}
		if d, err = a.addDownload(ctx, m, tb); err != nil {
			return a.failOrWait(ref, m.InfoHash, err, now)
		}
	}
	rec, _, err := a.state.Get(ref.String())
	if err != nil {
		return err
	}
	a.noteGateTiming(ref.String(), sub) // for the freeze and window gates (windows.go)
	switch {
	case rec.Phase == PhaseActive && st.Active == ref.Version && rec.HealthPending:
		// Killed between the switch and the health check: check now.
		return a.finishHealthCheck(ctx, d.manifest, rec, a.previousActive(ref.Name, ref.Version))
	case rec.Phase == PhaseActive && st.Active == ref.Version:
		return nil
	case rec.Phase == PhaseVerified || rec.Phase == PhaseActive:
		return a.activate(ctx, d, rec)
	case rec.Phase == PhaseFailed && rec.HealthFailed:
		// Verified, then rolled back: only the gates decide (waves.go).
		return a.activate(ctx, d, rec)
	case !d.complete():
		sub, plan := a.deadlineSub(sub, d, now)
		ok, why := a.mayDownload(sub, now)
		why = withDeadline(why, plan)
		d.pause(!ok)
		if fault := d.writeFault(); fault != "" {
			ok, why = false, fault
		}
		if !ok {
			if rec.Reason != why {
				rec.Reason = why
				_ = a.saveRecord(rec) // logged; a failed write is retried next pass
			}
			return errors.New(why)
		}
		if rec.Reason != "" {
			rec.Reason = ""
			_ = a.saveRecord(rec) // logged; a failed write is retried next pass
		}
		if e := d.off.lastErr.Load(); e != nil && rec.LastError != "origin fetch: "+*e {
			rec.LastError = "origin fetch: " + *e
			_ = a.saveRecord(rec) // logged; a failed write is retried next pass
		}
		msg := fmt.Sprintf("downloading (%s of %s)", humanSize(d.t.BytesCompleted()), humanSize(d.size()))
		if rec.LastError != "" {
			msg += "; last error: " + rec.LastError
		}
		return errors.New(msg)
	}
	// Complete: the final word is the signed SHA-256 of every file.
	vctx, vspan := tracing.Start(trace.ContextWithSpan(ctx, d.span), "verify", tracing.Release(ref.Name, ref.Version, d.manifest.InfoHash)...)
	err = a.verifyComplete(vctx, d)
	tracing.End(vspan, err)
	if err != nil && ctx.Err() != nil {
		return err // stopping: the next run verifies it
	}
	d.span.End()
	d.sv.stop()
	if err != nil {
		a.log.Error("release failed verification", "release", ref.Name, "version", ref.Version, "err", err)
		rec.LastError = err.Error()
		a.setPhase(rec, PhaseFailed, "")
		saveErr := a.saveRecord(rec)
		// Drop the torrent and its completion so the next pass refetches.
		a.dropDownload(d)
		return errors.Join(err, saveErr)
	}
	a.setPhase(rec, PhaseVerified, "")
	rec.Verified, rec.LastError = time.Now(), ""
	_ = a.saveRecord(rec) // logged; activate writes the record again
	a.forgetDeadline(ref.String())
	return a.activate(ctx, d, rec)
}

// addDownload adds a release's torrent to the client (or finds it).
func (a *Agent) addDownload(ctx context.Context, m *catalog.Manifest, torrentBytes []byte) (*download, error) {
	tf, err := torrentfile.Parse(torrentBytes, m)
	if err != nil {
		return nil, fmt.Errorf("%s: refusing torrent: %w", m.Ref(), err)
	}
	ref := m.Ref()
	a.mu.Lock()
	if d := a.downloads[ref.String()]; d != nil {
		a.mu.Unlock()
		return d, nil
	}
	a.mu.Unlock()
	variants, err := a.loadVariants(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ref, err)
	}
	// Keep the verified metadata next to the state so a restart can resume
	// and seed without the catalog.
	if err := a.cache.keepMetadata(m, torrentBytes); err != nil {
		return nil, err
	}
	stor := btclient.NewFileStorage(a.cache.storageDir(ref.Name),
		btclient.SharedCompletion{PieceCompletion: a.complete}, btclient.WithServeBudget(a.serve))
	a.mu.Lock()
	uploadOK := !a.pol.applied || a.pol.uploadOK
	a.mu.Unlock()
	rec, err := a.recordDownload(m)
	if err != nil {
		return nil, err
	}
	if variants != nil {
		rec.Size = variants.size // what this site fetches; progress and deadlines go by it
	}
	var reused reuseResult
	if rec.Phase == PhaseDownloading {
		// Held releases first, before the swarm is asked (reuse.go).
		reused, err = a.reuseLocal(ctx, m, tf.Info, tf.InfoHash)
		switch {
		case err != nil && (ctx.Err() != nil || isNoSpace(err)):
			// Stopping, or out of room: the release waits like a
			// download whose write failed (failOrWait), then reuses again.
			return nil, fmt.Errorf("%s: reuse held releases: %w", ref, err)
		case err != nil:
			// Reuse only saves bytes: what it could not do is downloaded.
			a.log.Warn("reusing held releases failed; downloading the rest", "release", ref.Name, "version", ref.Version, "err", err)
		}
		if reused.pieces > 0 || reused.cloned > 0 || reused.failed > 0 {
			a.log.Info("release filled from held releases", "release", ref.Name, "version", ref.Version,
				"bytes", reused.reused, "pieces", reused.pieces, "files_cloned", reused.cloned,
				"pieces_failing_hash", reused.failed, "pieces_partly_held", len(reused.partial))
		}
		rec.Reused += reused.reused
	}
	t, _ := a.bt.AddTorrentOpt(torrent.AddTorrentOpts{
		InfoHash:  tf.InfoHash,
		InfoBytes: tf.MetaInfo.InfoBytes,
		Storage:   stor,
	})
	// Nothing moves until a reconcile says the policy allows it. (The
	// matching AddTorrentOpts fields are ignored by this library version.)
	t.DisallowDataDownload()
	if !uploadOK {
		t.DisallowDataUpload()
	}
	if a.trackers != nil && a.cfg.Mode.Peers() {
		// The library announces to every tracker of every tier at once
		// (not BEP 12's one at a time): a tracker that is down costs
		// nothing but its retries, and peers come from those that answer.
		t.AddTrackers(a.announceTiers())
	}
	if err := a.saveRecord(rec); err != nil {
		return nil, err
	}
	d := &download{ref: ref, manifest: m, t: t, base: rec.Downloaded, baseUp: rec.Uploaded, variants: variants}
	d.reused.Store(rec.Reused)
	// Counters saved with the last completed piece outlive a kill -9
	// between two state saves.
	if sc, ok, err := a.complete.Counters(tf.InfoHash); err == nil && ok {
		sc = maxCounters(savedCounters{Downloaded: d.base, Uploaded: d.baseUp}, sc)
		d.base, d.baseUp = sc.Downloaded, sc.Uploaded
	}
	// The download outlives the pass that added it but keeps its trace
	// context: it ends with stop (dropped) or Close, not with ctx.
	dctx := context.WithoutCancel(ctx)
	_, d.span = tracing.Start(dctx, "download", tracing.Release(ref.Name, ref.Version, m.InfoHash)...)
	d.ctx, d.cancel = context.WithCancel(dctx)
	if variants != nil {
		// Only this site's variants; verified whole at completion (the
		// streaming hash waits for every file of the torrent).
		variants.prioritize(t)
	} else {
		t.DownloadAll()
		if rec.Phase == PhaseDownloading {
			d.sv = a.startStreamVerify(d)
		}
	}
	d.off = newOffloader(t, m, a.offloadSrc, a.originLimit, a.cfg.Offload, a.peerID, a.log.With("release", ref.Name, "version", ref.Version))
	d.off.variants = variants
	d.off.now = a.now
	d.off.hashFails = &a.originHashFails
	d.off.sub = newSubPieces(reused.partial, &d.reused)
	// A failed write pauses the release until there is room again; the
	// library's default would stop downloading for the process's life.
	d.off.onWriteErr = func(err error) { a.onWriteError(d, err) }
	t.SetOnWriteChunkError(func(err error) { a.onWriteError(d, err) })
	// With locality site or region the agent shares only inside that tier
	// and its connections are the whole swarm it can use.
	if l := a.cfg.Swarm.Locality; a.trackers != nil && a.cfg.Mode.Peers() && (l == "gateway" || l == "any") {
		if w := newTrackersWatcher(a.trackers, a.announceURL, a.cfg.Site, a.cfg.Region, tf.InfoHash, a.trackerHTTP, d.off.log); w != nil {
			d.off.watch = w
			w.self, w.connected = a.peerID, func() [][20]byte { return reportConnections(t) }
			if a.cfg.Swarm.Locality == "gateway" && a.cfg.Site != "" {
				b := &siteBridge{self: a.peerID, site: a.cfg.Site, region: a.cfg.Region, t: t, lastSeen: map[[20]byte]time.Time{}}
				w.bridge = b.update
			}
		}
	}
	a.dhtRoster(d, tf.InfoHash, m.Regions)
	d.paused, d.halted = true, true // until the next reconcile checks the policy
	d.off.paused.Store(true)
	a.poke()
	a.mu.Lock()
	a.downloads[ref.String()] = d
	a.mu.Unlock()
	a.byHash.Store(tf.InfoHash, d)
	if a.lsd != nil {
		a.lsd.Add(tf.InfoHash)
	}
	a.dhtAdd(tf.InfoHash, m.Regions)
	d.start(&a.wg, a.log, a.poke)
	a.log.Info("release added", "release", ref.Name, "version", ref.Version, "infohash", m.InfoHash, "bytes", m.TotalSize)
	return d, nil
}

// recordDownload reads or creates the release's record and moves it to
// downloading (saved), before any byte of it is written.
func (a *Agent) recordDownload(m *catalog.Manifest) (*ReleaseState, error) {
	ref := m.Ref()
	rec, ok, err := a.state.Get(ref.String())
	if err != nil {
		return nil, err
	}
	if !ok {
		rec = &ReleaseState{Name: ref.Name, Version: ref.Version, Queued: time.Now()}
	}
	rec.InfoHash, rec.Size = m.InfoHash, m.TotalSize
	if rec.Phase == "" {
		a.setPhase(rec, PhaseQueued, "")
	}
	if rec.Phase == PhaseQueued || rec.Phase == PhaseFailed {
		a.setPhase(rec, PhaseDownloading, "")
		rec.Started = time.Now()
		rec.LastError = ""
		rec.Reused = 0
	}
	if err := a.saveRecord(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *Agent) dropDownload(d *download) {
	d.stop()
	if a.lsd != nil {
		a.lsd.Remove(d.t.InfoHash())
	}
	if a.dht != nil {
		a.dht.Remove(d.t.InfoHash())
	}
	a.byHash.Delete(d.t.InfoHash())
	d.t.Drop()
	a.mu.Lock()
	delete(a.downloads, d.ref.String())
	a.mu.Unlock()
	for i := 0; i < d.t.NumPieces(); i++ {
		a.complete.Set(metainfoPieceKey(d, i), false)
	}
}

// announceTiers are the configured tiers with the agent's identity.
func (a *Agent) announceTiers() [][]string {
	var out [][]string
	for _, tier := range a.cfg.TrackerTiers() {
		urls := make([]string, len(tier))
		for i, u := range tier {
			urls[i] = a.announceURL(u)
		}
		out = append(out, urls)
	}
	return out
}

// announceURL carries the agent's identity to the tracker at tracker.
func (a *Agent) announceURL(tracker string) string {
	u, _ := url.Parse(tracker)
	q := u.Query()
	q.Set("role", "agent")
	if a.cfg.Tenant != "" {
		q.Set("tenant", a.cfg.Tenant)
	}
	if a.cfg.Site != "" {
		q.Set("site", a.cfg.Site)
	}
	if a.cfg.Region != "" {
		q.Set("region", a.cfg.Region)
	}
	if l := a.cfg.Swarm.Locality; l != "" && l != "any" {
		q.Set("locality", l)
	}
	if a.cfg.Swarm.Relay == RelayOrigin {
		q.Set("relay", RelayOrigin) // stored and answered by relay handle
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (a *Agent) setPhase(rec *ReleaseState, p Phase, reason string) {
	if rec.Phase != p {
		attrs := []any{"release", rec.Name, "version", rec.Version, "infohash", rec.InfoHash, "tenant", a.cfg.Tenant, "from", string(rec.Phase), "to", string(p)}
		if reason != "" {
			attrs = append(attrs, "reason", reason)
		}
		if p == PhaseFailed && rec.LastError != "" {
			attrs = append(attrs, "err", rec.LastError)
		}
		a.log.Info("release state", attrs...)
	}
	rec.Phase, rec.Reason = p, reason
}

// failOrWait records err as the release's failure, unless it is a full
// disk: then the release only waits for room (the GC may make some).
func (a *Agent) failOrWait(ref release.Ref, infoHash string, err error, now time.Time) error {
	if isNoSpace(err) {
		a.gcForDisk(now)
		return errors.New(writeFaultReason(err))
	}
	a.fail(ref, infoHash, err)
	return err
}

func (a *Agent) fail(ref release.Ref, infoHash string, err error) {
	rec, ok, _ := a.state.Get(ref.String())
	if !ok {
		rec = &ReleaseState{Name: ref.Name, Version: ref.Version, Queued: time.Now()}
	}
	if infoHash != "" {
		rec.InfoHash = infoHash
	}
	rec.LastError = err.Error()
	a.setPhase(rec, PhaseFailed, "")
	_ = a.saveRecord(rec) // logged; the failure is also returned to the caller
}

// saveProgressLocked copies live counters into the state record.
func (a *Agent) saveProgressLocked(d *download) {
	rec, ok, err := a.state.Get(d.ref.String())
	if err != nil || !ok {
		return
	}
	b, up := d.bytes()
	reused := d.reused.Load()
	changed := rec.Downloaded != b || rec.Uploaded != up || rec.Completed != d.t.BytesCompleted() || rec.Reused != reused
	rec.Downloaded, rec.Uploaded, rec.Completed, rec.Reused = b, up, d.t.BytesCompleted(), reused
	if changed {
		_ = a.saveRecord(rec) // logged; counters are saved again next pass
	}
}

// start runs the download's goroutines until stop: the origin offloader
// and, with a swarm view, its watcher, which ends early once the torrent
// completes (the view serves the offload; a seeding release polls
// nothing). Close waits for both through wg; poke wakes the agent's loop
// when the offloader ends.
func (d *download) start(wg *sync.WaitGroup, log *slog.Logger, poke func()) {
	offDone := make(chan struct{})
	if w := d.off.watch; w != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, stop := context.WithCancel(d.ctx)
			defer stop()
			go func() {
				select {
				case <-d.t.Complete().On():
					stop()
				case <-offDone: // a watermarked release is done with part of the torrent
					stop()
				case <-wctx.Done():
				}
			}()
			w.run(wctx)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(offDone)
		if err := d.off.run(d.ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("origin offload stopped", "release", d.ref.Name, "err", err)
		}
		poke()
	}()
}

// size is the bytes this agent fetches of the release: the whole torrent,
// or the pieces of its site's variants of a watermarked one.
func (d *download) size() int64 {
	if d.variants != nil {
		return d.variants.size
	}
	return d.manifest.TotalSize
}

// complete reports whether the download holds everything this agent
// wants: the whole torrent, or its site's variants of a watermarked one.
func (d *download) complete() bool {
	if d.variants != nil {
		return d.variants.done(d.t)
	}
	return d.t.Complete().Bool()
}

// stop ends the download's goroutines (and its write-room probes).
func (d *download) stop() { d.cancel() }

// bytes returns payload bytes by source and uploaded bytes, including
// earlier runs.
func (d *download) bytes() (Bytes, int64) {
	st := d.t.Stats()
	b := d.base
	b.Peer += st.ConnStats.BytesReadUsefulData.Int64()
	if d.off != nil {
		b.Origin += d.off.originBytes.Load()
	}
	return b, d.baseUp + st.ConnStats.BytesWrittenData.Int64()
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// PeerServeBudget is the client-wide budget of blocks read to answer
// peers (internal/btclient.ServeBudget): its limit and current use.
func (a *Agent) PeerServeBudget() *btclient.ServeBudget { return a.serve }
