package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/agent"
	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/testenv"
	"github.com/swarmship/swarmship/localswarm"
)

func s3Store(t *testing.T, v *testenv.VersityGW) *catalog.S3Store {
	t.Helper()
	bucket := v.NewBucket(t)
	s, err := catalog.NewS3Store(context.Background(), catalog.S3Config{
		Endpoint: v.Endpoint, Bucket: bucket, Prefix: "acme", AccessKey: v.AccessKey, SecretKey: v.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A public-read bucket is catalog and web seed at once: agents read it
// anonymously over HTTP and take their shards straight from S3.
func TestS3PublicReadCatalog(t *testing.T) {
	v := testenv.StartVersityGW(t)
	store := s3Store(t, v)
	if err := store.SetPublicRead(context.Background()); err != nil {
		t.Fatal(err)
	}
	sw := newSwarm(t, localswarm.OriginOptions{Store: store})
	m := publish(t, sw, "app", "1.0", 40, map[string]int64{"app.bin": 6 << 20, "etc/x.conf": 100}, "stable")
	publicURL := strings.TrimSuffix(store.ObjectURL("x"), "x")
	agents := startAgents(t, sw, 3, agent.Subscription{Name: "app", Channel: "stable"}, func(c *agent.Config) {
		c.Catalog.URL = publicURL // anonymous HTTP reads of the bucket
	})
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	var fromOrigin int64
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
		fromOrigin += releaseStatus(ra, "app", "1.0").Downloaded.Origin
	}
	if fromOrigin < m.TotalSize {
		t.Fatalf("agents took %d bytes from S3, want at least one copy (%d)", fromOrigin, m.TotalSize)
	}
	// Anonymous writes stay refused.
	req, _ := http.NewRequest(http.MethodPut, publicURL+"metadata/timestamp.json", strings.NewReader("{}"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("anonymous PUT into the catalog got %s", resp.Status)
	}
}

// A private bucket: agents hold no credentials; they read the catalog
// through the origin, which redirects payload reads to presigned URLs.
func TestS3PrivateBucketPresigned(t *testing.T) {
	v := testenv.StartVersityGW(t)
	store := s3Store(t, v)
	sw := newSwarm(t, localswarm.OriginOptions{Store: store})
	m := publish(t, sw, "app", "1.0", 41, map[string]int64{"app.bin": 6 << 20, "etc/x.conf": 100}, "stable")
	// Anonymous reads of the bucket are refused...
	resp, err := http.Get(store.ObjectURL(catalog.DataPrefix("app", "1.0") + "app.bin"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous GET of a private bucket got %s", resp.Status)
	}
	// ...yet agents complete through the origin's presigned redirects.
	agents := startAgents(t, sw, 3, agent.Subscription{Name: "app", Channel: "stable"}, nil)
	waitActive(t, "app", "1.0", 90*time.Second, agents...)
	for _, ra := range agents {
		checkActiveFiles(t, ra, m)
	}
}
