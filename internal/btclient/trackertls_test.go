package btclient

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anacrolix/torrent/tracker"
)

// The library's HTTPS announce skips certificate verification; through
// the trackerTLS dialer it verifies against the configured roots, and an
// announce to a tracker with a certificate from another CA fails.
func TestTrackerTLSVerifiesTheTracker(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("d8:intervali60e5:peers0:e"))
	}))
	defer srv.Close()
	good := x509.NewCertPool()
	good.AddCert(srv.Certificate())
	// httptest servers share one certificate: take another CA's.
	otherCert, err := throwawayCert()
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := x509.ParseCertificate(otherCert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	wrong := x509.NewCertPool()
	wrong.AddCert(otherCA)

	announce := func(dial func() (*trackerTLS, error)) error {
		req := tracker.Announce{TrackerUrl: srv.URL + "/announce", Request: tracker.AnnounceRequest{Left: -1, Port: 6881}}
		if dial != nil {
			tt, err := dial()
			if err != nil {
				t.Fatal(err)
			}
			req.DialContext = tt.DialContext
		}
		_, err := req.Do()
		return err
	}
	// The trap this file exists for: with no dialer, any certificate will do.
	if err := announce(nil); err != nil {
		t.Fatalf("library default: %v", err)
	}
	if hits.Load() != 1 {
		t.Fatalf("hits %d", hits.Load())
	}
	if err := announce(func() (*trackerTLS, error) { return newTrackerTLS(&tls.Config{RootCAs: good}, nil) }); err != nil {
		t.Fatalf("right CA: %v", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("right CA: hits %d, want 2", hits.Load())
	}
	err = announce(func() (*trackerTLS, error) { return newTrackerTLS(&tls.Config{RootCAs: wrong}, nil) })
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: %v, want a certificate error", err)
	}
	if hits.Load() != 2 {
		t.Fatalf("wrong CA reached the tracker: hits %d", hits.Load())
	}
	u, _ := url.Parse(srv.URL)
	t.Logf("tracker %s: default insecure, right CA ok, wrong CA refused: %v", u.Host, err)
}
