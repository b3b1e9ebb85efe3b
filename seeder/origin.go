// Package seeder is the origin role (swarmship origin): the site- and
// tenant-aware tracker (seeder/tracker), a seeding client for every current
// release, the web seed for directory catalogs, agent reports and the
// rollout dashboard, and health and metrics endpoints.
package seeder

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/catalogevents"
	"github.com/swarmship/swarmship/internal/dht"
	"github.com/swarmship/swarmship/internal/lograte"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/relay"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/report"
	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder/catalogfeed"
	"github.com/swarmship/swarmship/seeder/rollout"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// Origin serves one catalog.
type Origin struct {
	cfg     Config
	log     *slog.Logger
	store   catalog.Store
	catalog *catalog.Client
	tracker *tracker.Tracker
	relay   *relay.Server // nil: relay.mode off
	bt      *torrent.Client
	serve   *btclient.ServeBudget // peer request data, all releases together
	dirRoot *os.Root              // set for directory catalogs: the web seed
	reports *rollout.Reports
	// quarantine is the operators' list of quarantined peers (quarantine.go).
	quarantine *quarantineList
	shared     *state.Redis // nil: the state lives in this process
	served     signedIndex  // what the web seed and catalog proxy may serve

	serverTLS *tls.Config // nil: plain HTTP
	// certs reread the HTTPS and peer TLS files now (ReloadCertificates);
	// they also follow the files by themselves.
	certs []func() error

	webSeedBytes atomic.Int64
	catalogBytes atomic.Int64

	mu      sync.Mutex
	seeding map[string]*torrent.Torrent // by name@version

	tokenKey ed25519.PublicKey // nil: no tokens required
	revoked  *token.Revocations
	refusals *lograte.Limiter
	// seederKey is the credential the origin's own seeder announces with
	// in token mode (in an Authorization header): random per process,
	// never leaves it; nobody else may announce as role=origin.
	seederKey string
	tenants   map[string]string // release tenant by name@version, from the signed manifests
	allow     allowlist
	lastErr   error
	lastOK    time.Time
	ready     atomic.Bool

	// events is the catalog change stream (nil when off); changed wakes
	// Run's refresh when the store's timestamp moved or another origin
	// said so over bus.
	events  *catalogfeed.Feed
	changed chan struct{}
	bus     catalogfeed.Bus

	dht []*dht.Node // one per tenant of cfg.DHT
	rz  *rendezvous // nil: rendezvous off
}

// New prepares an origin for a catalog. client must read the same store.
func New(cfg Config, store catalog.Store, client *catalog.Client, log *slog.Logger) (*Origin, error) {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.Default()
	}
	o := &Origin{cfg: cfg, log: log, store: store, catalog: client, tracker: newTracker(cfg.Tracker, log), seeding: map[string]*torrent.Torrent{}, refusals: &lograte.Limiter{}}
	o.changed = make(chan struct{}, 1)
	if cfg.Events.On() {
		o.events = catalogfeed.New(cfg.Events)
	}
	if cfg.TokenPublicKey != "" {
		pub, err := token.LoadPublicKey(cfg.TokenPublicKey)
		if err != nil {
			return nil, err
		}
		o.tokenKey = pub
		o.seederKey = token.NewID()
		o.tracker.Authorize(o.authorizeAnnounce)
	} else if cfg.PrivateCatalog {
		return nil, errors.New("origin: private_catalog needs token_public_key")
	} else if cfg.RevocationList != "" {
		return nil, errors.New("origin: revocation_list needs token_public_key")
	}
	if cfg.RevocationList != "" {
		rl, err := token.OpenRevocations(cfg.RevocationList)
		if err != nil {
			return nil, fmt.Errorf("origin: %w", err)
		}
		o.revoked = rl
	}
	if !cfg.Tracker.AllowUnknownInfoHashes {
		o.allow.reload = o.reloadAllowlist
		o.tracker.SetCatalog(&o.allow)
	}
	if cfg.Relay.On() {
		o.relay = relay.NewServer(cfg.Relay, o.authorizeRelay, log)
	}
	if cfg.TLS.Enabled() {
		tc, pair, err := cfg.TLS.serverConfig(log)
		if err != nil {
			return nil, fmt.Errorf("origin: %w", err)
		}
		o.serverTLS = tc
		o.certs = append(o.certs, wrapReload("tls", pair.Reload))
	}
	if ds, ok := store.(*catalog.DirStore); ok {
		root, err := os.OpenRoot(ds.Root())
		if err != nil {
			return nil, fmt.Errorf("web seed: %w", err)
		}
		o.dirRoot = root
	}
	if *cfg.Seed {
		if o.dirRoot == nil && cfg.CacheDir == "" {
			return nil, errors.New("origin: cache_dir is required to seed a remote catalog")
		}
		peerSrc, err := peertls.Open(cfg.PeerTLS, log)
		if err != nil {
			return nil, fmt.Errorf("origin: peer_tls: %w", err)
		}
		peerTLS := peerSrc.TLS()
		o.certs = append(o.certs, wrapReload("peer_tls", peerSrc.Reload))
		bt, err := btclient.New(btclient.Config{
			TrackerRequest: o.authorizeSeederRequest,
			PeerIDPrefix:   btclient.OriginPeerIDPrefix,
			ListenHost:     cfg.PeerHost,
			ListenPort:     cfg.PeerPort,
			DataDir:        cfg.CacheDir,
			TLS:            peerTLS,
			TLSLog:         log,
			TrackerTLS:     o.trackerTLS(),
		})
		if err != nil {
			return nil, err
		}
		o.bt = bt
		o.serve = btclient.NewServeBudget(btclient.DefaultServeBudget)
	}
	o.served.reload = func(ctx context.Context) error {
		if err := o.catalog.Refresh(ctx); err != nil {
			return err
		}
		return o.served.update(ctx, o.catalog, o.log)
	}
	shared, err := state.Open(context.Background(), cfg.State)
	if err != nil {
		o.Close()
		return nil, fmt.Errorf("origin: state: %w", err)
	}
	if shared != nil {
		o.shared = shared
		if err := o.tracker.Share(context.Background(), shared); err != nil {
			o.Close()
			return nil, fmt.Errorf("origin: tracker on shared state: %w", err)
		}
	}
	if o.quarantine, err = openQuarantine(cfg.CacheDir, o.shared); err != nil {
		o.Close()
		return nil, err
	}
	reports, err := o.openReports()
	if err != nil {
		o.Close()
		return nil, err
	}
	o.reports = reports
	if err := o.startDHT(); err != nil {
		o.Close()
		return nil, err
	}
	if err := o.startRendezvous(); err != nil {
		o.Close()
		return nil, err
	}
	return o, nil
}

// Tracker is the origin's tracker (for tests and dashboards).
func (o *Origin) Tracker() *tracker.Tracker { return o.tracker }

// PeerPort is the seeder's BitTorrent port, 0 if not seeding.
func (o *Origin) PeerPort() int {
	if o.bt == nil {
		return 0
	}
	return o.bt.LocalPort()
}

// Egress reports the origin's egress so far.
func (o *Origin) Egress() Egress {
	e := Egress{WebSeed: o.webSeedBytes.Load(), Catalog: o.catalogBytes.Load()}
	if o.bt != nil {
		st := o.bt.Stats()
		e.Peer = st.BytesWrittenData.Int64()
	}
	if o.relay != nil {
		e.Relay = o.relay.Stats().Bytes
	}
	return e
}

// SetEventBus makes the origin tell other origins of the catalog versions
// it verifies, and refresh when they tell it of theirs. Call it before Run.
func (o *Origin) SetEventBus(b catalogfeed.Bus) { o.bus = b }

// Run refreshes the catalog and seeds current releases until ctx ends.
func (o *Origin) Run(ctx context.Context) error {
	go o.tracker.Run(ctx)
	go o.watchRevocations(ctx)
	go o.tickReports(ctx)
	if o.events != nil {
		defer o.events.Close()
		if o.bus == nil && o.shared != nil {
			// Origins sharing a Redis tell each other of the versions
			// they verify.
			o.bus = catalogfeed.NewRedisBus(o.shared)
		}
		go catalogfeed.WatchStore(ctx, o.store, o.events.Config().PollInterval, o.catalogChanged)
		if o.bus != nil {
			go func() {
				err := o.bus.Subscribe(ctx, func(v int64) {
					if v > o.events.Version() {
						o.catalogChanged()
					}
				})
				if err != nil && ctx.Err() == nil {
					o.log.Warn("catalog events: other origins' changes not received; the store poll still sees them", "err", err)
				}
			}()
		}
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-o.changed:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		if err := o.refresh(ctx); err != nil {
			o.log.Warn("origin catalog refresh failed", "catalog", o.store.String(), "err", err)
		}
		t.Reset(o.cfg.RefreshInterval)
	}
}

// Close stops seeding.
func (o *Origin) Close() error {
	var errs []error
	for _, n := range o.dht {
		errs = append(errs, n.Close())
	}
	if o.relay != nil {
		o.relay.Close()
	}
	if o.rz != nil {
		errs = append(errs, o.rz.close())
	}
	if o.bt != nil {
		errs = append(errs, o.bt.Close()...)
	}
	if o.dirRoot != nil {
		errs = append(errs, o.dirRoot.Close())
	}
	errs = append(errs, o.reports.Close())
	if o.shared != nil {
		o.tracker.Close()
		errs = append(errs, o.shared.Close())
	}
	return errors.Join(errs...)
}

func (o *Origin) refresh(ctx context.Context) error {
	err := o.catalog.Refresh(ctx)
	o.mu.Lock()
	o.lastErr = err
	if err == nil {
		o.lastOK = time.Now()
	}
	o.mu.Unlock()
	if err != nil {
		return err
	}
	if err := o.served.update(ctx, o.catalog, o.log); err != nil {
		return err
	}
	ms, err := o.updateAllowlist(ctx)
	if err != nil {
		return err
	}
	// Ready once the tracker's allowlist and the catalog guard's tenants
	// are loaded too: before that both would refuse what they will accept.
	o.ready.Store(true)
	// Watchers learn of the change now, before any new release is seeded
	// (a remote payload may take a while to copy); they find its metadata
	// served already.
	o.announceVersion(ctx)
	for _, r := range ms.gone {
		o.stopSeeding(r)
		if o.rz != nil {
			o.rz.leave(r)
		}
	}
	for _, m := range ms.current {
		if o.bt != nil {
			if err := o.seed(ctx, m); err != nil {
				o.log.Warn("origin: cannot seed", "release", m.Name, "version", m.Version, "err", err)
			}
		}
		if o.rz != nil {
			if err := o.rz.join(ctx, o.catalog, m); err != nil {
				o.log.Warn("origin: rendezvous cannot join", "release", m.Name, "version", m.Version, "err", err)
			}
		}
	}
	return nil
}

// catalogChanged wakes Run for a refresh now.
func (o *Origin) catalogChanged() {
	select {
	case o.changed <- struct{}{}:
	default:
	}
}

// announceVersion tells watchers (and other origins) the catalog version
// the origin has just verified, if it is new.
func (o *Origin) announceVersion(ctx context.Context) {
	if o.events == nil {
		return
	}
	v, err := o.catalog.TimestampVersion()
	if err != nil || !o.events.Publish(v) {
		return
	}
	if o.bus != nil {
		if err := o.bus.Publish(ctx, v); err != nil {
			o.log.Warn("catalog events: other origins not told of the change; their own poll will see it", "version", v, "err", err)
		}
	}
}

// releaseSet is the catalog's releases as the origin serves them.
type releaseSet struct {
	current []*catalog.Manifest // neither yanked nor expired, manifest loaded
	gone    []release.Ref       // yanked or expired
}

// updateAllowlist reads the releases of the loaded catalog and gives the
// tracker their infohashes.
func (o *Origin) updateAllowlist(ctx context.Context) (releaseSet, error) {
	var out releaseSet
	rels, err := o.catalog.Releases()
	if err != nil {
		return out, err
	}
	// Release tenants for the catalog guard, from the signed manifests.
	o.mu.Lock()
	prev := o.tenants
	o.mu.Unlock()
	tenants := make(map[string]string, len(rels))
	defer func() {
		o.mu.Lock()
		o.tenants = tenants
		o.mu.Unlock()
	}()
	live := map[string]bool{}
	for _, r := range rels {
		if r.Yanked {
			out.gone = append(out.gone, r.Ref)
			// Manifests are immutable: a yanked one is read once, for its tenant.
			if t, ok := prev[r.Ref.String()]; ok {
				tenants[r.Ref.String()] = t
			} else if m, err := o.catalog.Manifest(ctx, r.Name, r.Version); err == nil {
				tenants[r.Ref.String()] = m.Tenant
			}
			continue
		}
		m, err := o.catalog.Manifest(ctx, r.Name, r.Version)
		if err != nil {
			live[r.String()] = true // keep its swarm meanwhile
			o.log.Warn("origin: manifest", "release", r.Name, "version", r.Version, "err", err)
			continue
		}
		tenants[r.Ref.String()] = m.Tenant
		if m.Expired(time.Now()) {
			out.gone = append(out.gone, r.Ref)
			continue
		}
		live[r.String()] = true
		out.current = append(out.current, m)
		// Residency first: the release is open to announces from the
		// moment the allowlist has it.
		if len(m.Regions) > 0 {
			var ih [20]byte
			b, _ := hex.DecodeString(m.InfoHash)
			copy(ih[:], b)
			o.tracker.SetAllowedRegions(ih, m.Regions)
		}
	}
	o.allow.update(out.current, live)
	o.tracker.CatalogChanged()
	return out, nil
}

// reloadAllowlist re-reads the catalog for the tracker (allowlist.Reload).
func (o *Origin) reloadAllowlist(ctx context.Context) error {
	if err := o.catalog.Refresh(ctx); err != nil {
		return err
	}
	_, err := o.updateAllowlist(ctx)
	return err
}

// authorizeSeederRequest puts the seeder's credential on its announces.
func (o *Origin) authorizeSeederRequest(r *http.Request) error {
	if o.seederKey != "" {
		r.Header.Set("Authorization", seederAuthorization(o.seederKey))
	}
	return nil
}

func seederAuthorization(key string) string {
	if key == "" {
		return ""
	}
	return "Bearer " + key
}

func (o *Origin) stopSeeding(ref release.Ref) {
	o.mu.Lock()
	t := o.seeding[ref.String()]
	delete(o.seeding, ref.String())
	o.mu.Unlock()
	if t != nil {
		t.Drop()
		o.log.Info("origin stopped seeding", "release", ref.Name, "version", ref.Version)
	}
}

// seed adds a release to the seeding client. A directory catalog is seeded
// in place; a remote one is copied into the cache once and checked against
// the manifest first.
func (o *Origin) seed(ctx context.Context, m *catalog.Manifest) error {
	ref := m.Ref()
	o.mu.Lock()
	_, have := o.seeding[ref.String()]
	o.mu.Unlock()
	if have {
		return nil
	}
	tb, err := o.catalog.Torrent(ctx, m.Name, m.Version)
	if err != nil {
		return err
	}
	tf, err := torrentfile.Parse(tb, m)
	if err != nil {
		return err
	}
	var base string
	if ds, ok := o.store.(*catalog.DirStore); ok {
		base = filepath.Join(ds.Root(), "data", m.Name)
	} else {
		base = filepath.Join(o.cfg.CacheDir, "data", m.Name)
	}
	if err := o.ensurePayload(ctx, base, m); err != nil {
		return err
	}
	stor := btclient.NewFileStorage(base, btclient.TrustedCompletion{}, btclient.WithServeBudget(o.serve))
	t, _ := o.bt.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: tf.InfoHash, InfoBytes: tf.MetaInfo.InfoBytes, Storage: stor})
	// The seeder must never write into the catalog.
	t.DisallowDataDownload()
	t.AddTrackers([][]string{{o.announceURL(m.Tenant)}})
	o.mu.Lock()
	o.seeding[ref.String()] = t
	o.mu.Unlock()
	o.log.Info("origin seeding", "release", m.Name, "version", m.Version, "infohash", m.InfoHash)
	return nil
}

// announceURL is where the seeder announces a release of tenant: in that
// tenant's swarm, where the tenant's foreign clients are (the tracker
// accepts a release's infohash only in its own tenant's swarm).
func (o *Origin) announceURL(tenant string) string {
	base := o.cfg.AnnounceURL
	if base == "" {
		scheme := "http://"
		if o.serverTLS != nil {
			scheme = "https://"
		}
		base = scheme + hostPort(o.cfg.Listen) + "/announce"
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	q := url.Values{"role": {tracker.RoleOrigin}}
	if tenant != "" {
		q.Set("tenant", tenant)
	}
	return base + sep + q.Encode()
}

// ServerTLS is the TLS config for the Listen socket; nil: plain HTTP.
func (o *Origin) ServerTLS() *tls.Config { return o.serverTLS }

// trackerTLS is how the seeder verifies an https tracker; nil for http.
func (o *Origin) trackerTLS() *tls.Config {
	if !strings.HasPrefix(o.announceURL(""), "https://") {
		return nil
	}
	if o.serverTLS == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12} // system roots
	}
	return selfTrackerTLS(o.serverTLS)
}

func hostPort(listen string) string {
	if len(listen) > 0 && listen[0] == ':' {
		return "127.0.0.1" + listen
	}
	return listen
}

// ensurePayload checks (and for remote catalogs fetches) every file of m
// under base/<version>/, verifying sizes and SHA-256 against the manifest.
func (o *Origin) ensurePayload(ctx context.Context, base string, m *catalog.Manifest) error {
	dir := filepath.Join(base, m.Version)
	_, local := o.store.(*catalog.DirStore)
	for _, f := range m.Files {
		p := filepath.Join(dir, filepath.FromSlash(f.Path))
		if st, err := os.Stat(p); err == nil && st.Size() == f.Size {
			if err := fileSHA256(p, f.SHA256); err == nil {
				continue
			} else if local {
				return err
			}
		} else if local {
			return fmt.Errorf("payload %s: missing or wrong size", p)
		}
		if err := o.fetchFile(ctx, catalog.DataPrefix(m.Name, m.Version)+f.Path, p, f); err != nil {
			return err
		}
	}
	return nil
}

func (o *Origin) fetchFile(ctx context.Context, key, dst string, f catalog.ManifestFile) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	rc, err := o.store.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(rc, f.Size+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", key, err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("fetch %s: content does not match the signed manifest", key)
	}
	return os.Rename(tmp.Name(), dst)
}

func fileSHA256(p, want string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != want {
		return fmt.Errorf("payload %s does not match the signed manifest", p)
	}
	return nil
}

// Handler serves the tracker (/announce, /scrape, /swarm), the catalog read-only
// over HTTP for directory catalogs (the web seed), /healthz and /metrics.
func (o *Origin) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(o.tracker.Collectors()...)
	reg.MustRegister(originCollector{o}, o.reports.Collector())
	if o.events != nil {
		reg.MustRegister(o.events.Collector())
	}
	if o.relay != nil {
		reg.MustRegister(relayCollector{o.relay})
	}
	mux := http.NewServeMux()
	mux.Handle("/announce", o.tracker)
	mux.Handle("/scrape", o.tracker)
	mux.Handle("/swarm", o.tracker)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux.Handle("GET /metrics", o.operator(true, "metrics", func(w http.ResponseWriter, r *http.Request, _ string) {
		metrics.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /healthz", o.healthz)
	if o.relay != nil {
		mux.Handle("/relay/", o.relay)
	}
	o.reports.Routes(mux) // /api/v1/report, /api/v1/rollout, /dashboard
	o.quarantineRoutes(mux)
	if o.events != nil {
		mux.Handle(catalogevents.Path, o.catalogWatchGuard(o.events))
	}
	var catalogHandler http.Handler
	if o.dirRoot != nil {
		catalogHandler = &catalogServer{root: o.dirRoot, webSeed: &o.webSeedBytes, catalog: &o.catalogBytes}
	} else {
		catalogHandler = &remoteCatalogServer{store: o.store, catalog: &o.catalogBytes, ttl: 15 * time.Minute}
	}
	catalogHandler = o.served.guard(catalogHandler)
	if o.cfg.PrivateCatalog {
		catalogHandler = o.catalogGuard(catalogHandler)
	}
	mux.Handle("/", catalogHandler)
	return mux
}

func (o *Origin) healthz(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	err, last := o.lastErr, o.lastOK
	o.mu.Unlock()
	if !o.ready.Load() {
		http.Error(w, "catalog not loaded yet", http.StatusServiceUnavailable)
		return
	}
	if err != nil {
		// Still serving the last good catalog: degraded, not down. The
		// error (store names, keys) is for operators: the log has it.
		if o.tokensOn() {
			fmt.Fprintf(w, "degraded: last good catalog at %s\n", last.Format(time.RFC3339))
			return
		}
		fmt.Fprintf(w, "degraded: last good catalog at %s; refresh error: %v\n", last.Format(time.RFC3339), err)
		return
	}
	fmt.Fprintln(w, "ok")
}

var (
	descOriginBytes = prometheus.NewDesc("swarmship_origin_egress_bytes_total", "Bytes the origin sent, by kind (webseed, peer, catalog, relay).", []string{"kind"}, nil)
	descSeeding     = prometheus.NewDesc("swarmship_origin_seeding_releases", "Releases the origin seeds.", nil, nil)
	descCatalogOK   = prometheus.NewDesc("swarmship_origin_catalog_last_refresh_timestamp_seconds", "Unix time of the last successful catalog refresh.", nil, nil)
)

type originCollector struct{ o *Origin }

func (c originCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOriginBytes
	ch <- descSeeding
	ch <- descCatalogOK
}

func (c originCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.o.Egress()
	ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(e.WebSeed), "webseed")
	ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(e.Peer), "peer")
	ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(e.Catalog), "catalog")
	ch <- prometheus.MustNewConstMetric(descOriginBytes, prometheus.CounterValue, float64(e.Relay), "relay")
	c.o.mu.Lock()
	n, last := len(c.o.seeding), c.o.lastOK
	c.o.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descSeeding, prometheus.GaugeValue, float64(n))
	var ts float64
	if !last.IsZero() {
		ts = float64(last.Unix())
	}
	ch <- prometheus.MustNewConstMetric(descCatalogOK, prometheus.GaugeValue, ts)
}

// authorizeAnnounce admits an announce only with a valid token whose
// claims match the identity in the announce URL.
func (o *Origin) authorizeAnnounce(r *http.Request, id tracker.Identity) error {
	if id.Role == tracker.RoleOrigin {
		return o.authorizeSeeder(r)
	}
	// The token parameter is for BitTorrent clients, which can set no
	// header on announces and scrapes. The swarm view is swarmship's own
	// and agents send the header there, so a token in its URL is ignored.
	c, err := o.authenticate(r, !strings.HasSuffix(r.URL.Path, "/"+report.SwarmPath))
	if errors.Is(err, token.ErrMissing) {
		return fmt.Errorf("%w: %w", tracker.ErrUnauthenticated, err)
	}
	if err != nil {
		return err
	}
	return agentClaims(c, id.Tenant, id.Site, id.Region)
}

func matchClaims(c token.Claims, tenant, site, region string) error {
	switch {
	case c.Tenant != tenant:
		return fmt.Errorf("token is for tenant %q, not %q", c.Tenant, tenant)
	case c.Site != "" && c.Site != site:
		return fmt.Errorf("token is for site %q, not %q", c.Site, site)
	case c.Region != "" && c.Region != region:
		return fmt.Errorf("token is for region %q, not %q", c.Region, region)
	}
	return nil
}

// newTracker is the origin's tracker, logging through the origin's logger.
func newTracker(cfg tracker.Config, log *slog.Logger) *tracker.Tracker {
	t := tracker.New(cfg)
	t.SetLogger(log)
	return t
}
