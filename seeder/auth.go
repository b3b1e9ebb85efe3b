package seeder

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/token"
	"github.com/swarmship/swarmship/seeder/tracker"
)

// Authorization: every origin endpoint calls authenticate, which verifies
// the token (signature, expiry, revocation) once, and then checks the
// scope its endpoint needs:
//
//	announce         agent token; tenant, site, region match the announce
//	catalog/web seed agent token of the release's tenant, or an operator
//	                 token of that tenant or of the fleet (private_catalog)
//	report           agent token; tenant, site, region (and agent id if the
//	                 token names one) match the report
//	catalog events   as the catalog's metadata: any valid token (private_catalog)
//	dashboard APIs   operator token; the view is cut to its tenant
//	/metrics         fleet operator token
//
// Without token_public_key nothing is checked (dev mode, the demo).

// errForbidden is a scope refusal (403) rather than a missing token (401).
var errForbidden = errors.New("forbidden")

// revocationCheckEvery is how often the revocation list file is checked
// for changes (SIGHUP reloads it at once).
const revocationCheckEvery = 2 * time.Second

// tokensOn reports whether the origin requires tokens.
func (o *Origin) tokensOn() bool { return o.tokenKey != nil }

// authenticate verifies the request's token. allowQuery admits a "token"
// query parameter (announce URLs); other endpoints take only the
// Authorization header, which keeps operator tokens out of access logs.
func (o *Origin) authenticate(r *http.Request, allowQuery bool) (token.Claims, error) {
	q := ""
	if allowQuery {
		q = r.URL.Query().Get("token")
	}
	tok := token.FromRequest(r.Header.Get("Authorization"), q)
	c, err := token.Verify(o.tokenKey, tok, time.Now())
	if err != nil {
		return c, err
	}
	if err := o.revoked.Check(c, tok); err != nil {
		return c, err
	}
	return c, nil
}

// statusFor maps an authentication or scope error to 401 or 403.
func statusFor(err error) int {
	if errors.Is(err, token.ErrMissing) || errors.Is(err, tracker.ErrUnauthenticated) {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}

// refuse answers a refused request without naming anything the caller
// may not see: the body says only why the caller's own token failed.
func (o *Origin) refuse(w http.ResponseWriter, r *http.Request, what string, err error) {
	code := statusFor(err)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="swarmship"`)
	}
	if ok, dropped := o.refusals.Allow(time.Now()); ok {
		o.log.Warn(what+" refused", "path", r.URL.Path, "peer", r.RemoteAddr, "err", err, "unlogged_before", dropped)
	}
	msg := "token required"
	switch {
	case errors.Is(err, token.ErrRevoked), errors.Is(err, token.ErrExpired), errors.Is(err, token.ErrSignature), errors.Is(err, token.ErrMalformed):
		msg = "token refused: " + err.Error()
	case code == http.StatusForbidden:
		msg = "forbidden: this token does not cover " + what
	}
	http.Error(w, msg, code)
}

// ReloadRevocations re-reads the revocation list now (SIGHUP).
func (o *Origin) ReloadRevocations() error {
	if o.revoked == nil {
		return nil
	}
	changed, err := o.revoked.Reload()
	if changed {
		o.log.Info("revocation list loaded", "path", o.revoked.Path(), "entries", o.revoked.Len())
	}
	return err
}

func (o *Origin) watchRevocations(ctx context.Context) {
	if o.revoked == nil {
		return
	}
	t := time.NewTicker(revocationCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := o.ReloadRevocations(); err != nil {
				o.log.Warn("revocation list not reloaded; the previous one stays in force", "err", err)
			}
		}
	}
}

// operator guards the dashboard data: with tokens on, an operator token
// is required, and fleetOnly endpoints need one for every tenant. h gets
// the tenant the view is cut to, "" for the whole fleet.
func (o *Origin) operator(fleetOnly bool, what string, h func(w http.ResponseWriter, r *http.Request, tenant string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !o.tokensOn() {
			h(w, r, "")
			return
		}
		c, err := o.authenticate(r, false)
		if err == nil && (!c.IsOperator() || fleetOnly && !c.Fleet()) {
			err = errForbidden
		}
		if err != nil {
			o.refuse(w, r, what, err)
			return
		}
		h(w, r, c.Tenant)
	}
}

// authorizeSeeder admits a role=origin announce only from this origin's
// own seeder, by the per-process credential in its Authorization header:
// an agent token cannot make a peer look like the origin.
func (o *Origin) authorizeSeeder(r *http.Request) error {
	got := r.Header.Get("Authorization")
	if got == "" {
		return fmt.Errorf("%w: role=origin without the origin's key", tracker.ErrUnauthenticated)
	}
	if o.seederKey == "" || subtle.ConstantTimeCompare([]byte(got), []byte(seederAuthorization(o.seederKey))) != 1 {
		return fmt.Errorf("%w: role=origin is this origin's seeder only", errForbidden)
	}
	return nil
}

// agentClaims checks an agent's token against the identity it claims.
func agentClaims(c token.Claims, tenant, site, region string) error {
	if c.IsOperator() {
		return fmt.Errorf("%w: an operator token is not an agent's", errForbidden)
	}
	return matchClaims(c, tenant, site, region)
}

// catalogGuard guards the catalog of a private deployment: a valid token,
// and for release files (manifests, torrents, payload) one of the
// release's tenant. Signed metadata is readable by every token holder:
// agents of all tenants need it to verify anything. The token comes only
// in the Authorization header (agents never put it in a URL, where it
// would end up in proxies' and servers' logs).
func (o *Origin) catalogGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := o.authenticate(r, false)
		if err == nil && !o.mayRead(c, strings.TrimPrefix(r.URL.Path, "/")) {
			o.mu.Lock()
			loaded := o.tenants != nil
			o.mu.Unlock()
			if !loaded {
				http.Error(w, "catalog not loaded yet", http.StatusServiceUnavailable)
				return
			}
			err = errForbidden
		}
		if err != nil {
			o.refuse(w, r, "catalog request", err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// catalogWatchGuard admits to the catalog change stream whoever may read
// the catalog's metadata: anyone without private_catalog, else any valid
// token (agent or operator, any tenant). Events carry only a version
// number, which the metadata reveals anyway.
func (o *Origin) catalogWatchGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.cfg.PrivateCatalog {
			if _, err := o.authenticate(r, false); err != nil {
				o.refuse(w, r, "catalog events", err)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// mayRead reports whether c may read catalog key.
func (o *Origin) mayRead(c token.Claims, key string) bool {
	if c.Fleet() {
		return true
	}
	top, rest, _ := strings.Cut(key, "/")
	if top == "metadata" {
		return true
	}
	if top != "releases" && top != "torrents" && top != "data" {
		return false // nothing else is served
	}
	name, rest, _ := strings.Cut(rest, "/")
	version := ""
	switch top {
	case "data":
		version, _, _ = strings.Cut(rest, "/")
	case "releases":
		version, _ = strings.CutSuffix(rest, ".json")
	case "torrents":
		version, _ = strings.CutSuffix(rest, ".torrent")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if t, ok := o.tenants[release.Ref{Name: name, Version: version}.String()]; ok {
		return t == "" || t == c.Tenant
	}
	// A key whose version is not a release the origin knows (a target
	// name it cannot parse): allowed only if every known version of the
	// name is the caller's tenant's or shared.
	known := false
	for ref, t := range o.tenants {
		if n, _, _ := strings.Cut(ref, "@"); n == name {
			known = true
			if t != "" && t != c.Tenant {
				return false
			}
		}
	}
	return known
}
