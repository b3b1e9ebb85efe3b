// Package seeder is the origin role (swarmship origin): the site- and
// tenant-aware tracker (seeder/tracker), a seeding client for every current
// release, the web seed for directory catalogs, agent reports and the
// rollout dashboard, and health and metrics endpoints.
package seeder

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/torrentfile"
	"github.com/swarmship/swarmship/internal/btclient"
	"github.com/swarmship/swarmship/internal/peertls"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// Config is the origin's configuration; each component owns its part.
type Config struct {
	Listen          string         `yaml:"listen"`           // HTTP: tracker, web seed, health, metrics
	CacheDir        string         `yaml:"cache_dir"`        // payload copies of remote catalogs
	Seed            *bool          `yaml:"seed"`             // run the seeding client (default true)
	PeerPort        int            `yaml:"peer_port"`        // BitTorrent port of the seeder; 0 = free port
	PeerHost        string         `yaml:"peer_host"`        // listen host of the seeder
	RefreshInterval time.Duration  `yaml:"refresh_interval"` // catalog re-read interval
	Tracker         tracker.Config `yaml:"tracker"`
	Reports         ReportsConfig  `yaml:"reports"` // agent reports, rollout view, alerts
	// AnnounceURL is the tracker URL the seeder announces to; default
	// http://<listen>/announce.
	AnnounceURL string `yaml:"announce_url"`
	// TokenPublicKey (token.pub from `swarmship token keygen`) makes the
	// tracker require a valid token whose tenant, site and region match
	// the announce.
	TokenPublicKey string `yaml:"token_public_key"`
	// PrivateCatalog also requires a token to read the catalog and the
	// web seed over HTTP.
	PrivateCatalog bool `yaml:"private_catalog"`
	// PeerTLS makes the seeder's peer connections mutual TLS.
	PeerTLS peertls.Config `yaml:"peer_tls"`
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = ":7070"
	}
	if c.Seed == nil {
		t := true
		c.Seed = &t
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 30 * time.Second
	}
}

// Origin serves one catalog.
type Origin struct {
	cfg     Config
	log     *slog.Logger
	store   catalog.Store
	catalog *catalog.Client
	tracker *tracker.Tracker
	bt      *torrent.Client
	dirRoot *os.Root // set for directory catalogs: the web seed
	reports *reportStore

	webSeedBytes atomic.Int64
	catalogBytes atomic.Int64

	mu      sync.Mutex
	seeding map[string]*torrent.Torrent // by name@version

	tokenKey ed25519.PublicKey // nil: no tokens required
	lastErr  error
	lastOK   time.Time
	ready    atomic.Bool
}

// New prepares an origin for a catalog. client must read the same store.
func New(cfg Config, store catalog.Store, client *catalog.Client, log *slog.Logger) (*Origin, error) {
	cfg.SetDefaults()
	if log == nil {
		log = slog.Default()
	}
	o := &Origin{cfg: cfg, log: log, store: store, catalog: client, tracker: tracker.New(cfg.Tracker), seeding: map[string]*torrent.Torrent{}}
	if cfg.TokenPublicKey != "" {
		pub, err := token.LoadPublicKey(cfg.TokenPublicKey)
		if err != nil {
			return nil, err
		}
		o.tokenKey = pub
		o.tracker.Authorize(o.authorizeAnnounce)
	} else if cfg.PrivateCatalog {
		return nil, errors.New("origin: private_catalog needs token_public_key")
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
		peerTLS, _, err := peertls.Load(cfg.PeerTLS)
		if err != nil {
			return nil, fmt.Errorf("origin: peer_tls: %w", err)
		}
		bt, err := btclient.New(btclient.Config{
			PeerIDPrefix: btclient.OriginPeerIDPrefix,
			ListenHost:   cfg.PeerHost,
			ListenPort:   cfg.PeerPort,
			DataDir:      cfg.CacheDir,
			TLS:          peerTLS,
			TLSLog:       log,
		})
		if err != nil {
			return nil, err
		}
		o.bt = bt
	}
	reports, err := openReports(cfg.Reports, cfg.CacheDir, o, log)
	if err != nil {
		o.Close()
		return nil, err
	}
	o.reports = reports
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

// Egress is what the origin has sent: web seed bytes over HTTP and payload
// bytes uploaded by its seeding client.
type Egress struct {
	WebSeed int64 `json:"webseed"`
	Peer    int64 `json:"peer"`
	Catalog int64 `json:"catalog"` // metadata, manifests and torrents
}

// Total is payload egress.
func (e Egress) Total() int64 { return e.WebSeed + e.Peer }

// Egress reports the origin's egress so far.
func (o *Origin) Egress() Egress {
	e := Egress{WebSeed: o.webSeedBytes.Load(), Catalog: o.catalogBytes.Load()}
	if o.bt != nil {
		st := o.bt.Stats()
		e.Peer = st.BytesWrittenData.Int64()
	}
	return e
}

// Run refreshes the catalog and seeds current releases until ctx ends.
func (o *Origin) Run(ctx context.Context) error {
	go o.tracker.Run(ctx)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
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
	if o.bt != nil {
		errs = append(errs, o.bt.Close()...)
	}
	if o.dirRoot != nil {
		errs = append(errs, o.dirRoot.Close())
	}
	errs = append(errs, o.reports.close())
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
	o.ready.Store(true)
	rels, err := o.catalog.Releases()
	if err != nil {
		return err
	}
	for _, r := range rels {
		if r.Yanked {
			o.stopSeeding(r.Ref)
			continue
		}
		m, err := o.catalog.Manifest(ctx, r.Name, r.Version)
		if err != nil {
			o.log.Warn("origin: manifest", "release", r.Name, "version", r.Version, "err", err)
			continue
		}
		if m.Expired(time.Now()) {
			o.stopSeeding(r.Ref)
			continue
		}
		if len(m.Regions) > 0 {
			var ih [20]byte
			b, _ := hex.DecodeString(m.InfoHash)
			copy(ih[:], b)
			o.tracker.SetAllowedRegions(ih, m.Regions)
		}
		if o.bt != nil {
			if err := o.seed(ctx, m); err != nil {
				o.log.Warn("origin: cannot seed", "release", r.Name, "version", r.Version, "err", err)
			}
		}
	}
	return nil
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
	stor := btclient.NewFileStorage(base, btclient.TrustedCompletion{})
	t, _ := o.bt.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: tf.InfoHash, InfoBytes: tf.MetaInfo.InfoBytes, Storage: stor})
	// The seeder must never write into the catalog.
	t.DisallowDataDownload()
	t.AddTrackers([][]string{{o.announceURL()}})
	o.mu.Lock()
	o.seeding[ref.String()] = t
	o.mu.Unlock()
	o.log.Info("origin seeding", "release", m.Name, "version", m.Version, "infohash", m.InfoHash)
	return nil
}

func (o *Origin) announceURL() string {
	if o.cfg.AnnounceURL != "" {
		return o.cfg.AnnounceURL + "?role=origin"
	}
	return "http://" + hostPort(o.cfg.Listen) + "/announce?role=origin"
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
	reg.MustRegister(originCollector{o}, rolloutCollector{o.reports})
	mux := http.NewServeMux()
	mux.Handle("/announce", o.tracker)
	mux.Handle("/scrape", o.tracker)
	mux.Handle("/swarm", o.tracker)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", o.healthz)
	o.reports.routes(mux) // /api/v1/report, /api/v1/rollout, /dashboard
	var catalogHandler http.Handler
	if o.dirRoot != nil {
		catalogHandler = &catalogServer{root: o.dirRoot, webSeed: &o.webSeedBytes, catalog: &o.catalogBytes}
	} else {
		catalogHandler = &remoteCatalogServer{store: o.store, catalog: &o.catalogBytes, ttl: 15 * time.Minute}
	}
	if o.cfg.PrivateCatalog {
		catalogHandler = o.requireToken(catalogHandler)
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
		// Still serving the last good catalog: degraded, not down.
		fmt.Fprintf(w, "degraded: last good catalog at %s; refresh error: %v\n", last.Format(time.RFC3339), err)
		return
	}
	fmt.Fprintln(w, "ok")
}

var (
	descOriginBytes = prometheus.NewDesc("swarmship_origin_egress_bytes_total", "Bytes the origin sent, by kind (webseed, peer, catalog).", []string{"kind"}, nil)
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
	tok := token.FromRequest(r.Header.Get("Authorization"), r.URL.Query().Get("token"))
	c, err := token.Verify(o.tokenKey, tok, time.Now())
	if errors.Is(err, token.ErrMissing) {
		return fmt.Errorf("%w: %w", tracker.ErrUnauthenticated, err)
	}
	if err != nil {
		return err
	}
	return matchClaims(c, id.Tenant, id.Site, id.Region)
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

// requireToken guards the catalog of a private deployment.
func (o *Origin) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := token.FromRequest(r.Header.Get("Authorization"), r.URL.Query().Get("token"))
		if _, err := token.Verify(o.tokenKey, tok, time.Now()); err != nil {
			code := http.StatusForbidden
			if errors.Is(err, token.ErrMissing) {
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="swarmship"`)
			}
			o.log.Warn("catalog request refused", "path", r.URL.Path, "peer", r.RemoteAddr, "err", err)
			http.Error(w, "token required: "+err.Error(), code)
			return
		}
		next.ServeHTTP(w, r)
	})
}
