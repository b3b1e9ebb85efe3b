package publish_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/catalog/storetest"
)

// checkClean asserts that every signed release verifies (manifest, torrent
// and each payload object's SHA-256) and that nothing unsigned is left.
func checkClean(t *testing.T, c *pubCatalog, wantReleases int) {
	t.Helper()
	cl := c.client(t)
	problems, n, err := publish.VerifyCatalog(t.Context(), cl)
	if err != nil || n != wantReleases || len(problems) != 0 {
		t.Fatalf("VerifyCatalog = %d releases, problems %+v, %v; want %d releases and no problems", n, problems, err, wantReleases)
	}
	left, err := publish.FindLeftovers(t.Context(), c.store)
	if err != nil || len(left) != 0 {
		t.Fatalf("FindLeftovers = %+v, %v; want none", left, err)
	}
}

func TestPublishRaceDifferentNames(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		const rounds, writers = 2, 10
		retries := 0
		for round := range rounds {
			var (
				wg sync.WaitGroup
				mu sync.Mutex
			)
			for w := range writers {
				dir := storetest.WritePayload(t, map[string]string{"bin/app": fmt.Sprintf("app %d/%d", round, w), "README": "readme"})
				wg.Add(1)
				go func() {
					defer wg.Done()
					res, err := publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{
						Name: fmt.Sprintf("app-%d-%d", round, w), Version: "1.0", Channels: []string{"stable"}, Paths: []string{dir}})
					if err != nil {
						t.Errorf("publish %d/%d: %v", round, w, err)
						return
					}
					mu.Lock()
					retries += res.CommitRetries
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		cl := c.client(t)
		got := releaseNames(t, cl)
		if len(got) != rounds*writers {
			t.Fatalf("catalog lists %d releases %v; want %d", len(got), got, rounds*writers)
		}
		for round := range rounds {
			for w := range writers {
				name := fmt.Sprintf("app-%d-%d", round, w)
				if r, err := cl.Resolve(name, "stable", ""); err != nil || r.Version != "1.0" {
					t.Errorf("%s stable = %+v, %v", name, r, err)
				}
			}
		}
		checkClean(t, c, rounds*writers)
		t.Logf("%d publishes, %d commit retries in all", rounds*writers, retries)
	})
}

// publishAtOnce publishes each of dirs as name@version, all at the same
// time, and returns each publish's error.
func publishAtOnce(t *testing.T, c *pubCatalog, name, version string, dirs []string) []error {
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = publish.Publish(t.Context(), c.store, c.keys, publish.PublishOptions{Name: name, Version: version, Paths: []string{dirs[i]}})
		}()
	}
	wg.Wait()
	return errs
}

func TestPublishRaceSameVersion(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		const rounds = 10
		for round := range rounds {
			version := fmt.Sprintf("1.%d", round)
			contents := []string{fmt.Sprintf("bytes of writer A, round %d", round), fmt.Sprintf("writer B's other bytes, round %d!", round)}
			dirs := []string{storetest.WritePayload(t, map[string]string{"bin/app": contents[0]}), storetest.WritePayload(t, map[string]string{"bin/app": contents[1]})}
			errs := publishAtOnce(t, c, "app", version, dirs)
			winner := slices.IndexFunc(errs, func(err error) bool { return err == nil })
			if winner < 0 || errs[1-winner] == nil {
				t.Fatalf("round %d: errors %v; want exactly one success", round, errs)
			}
			loser := errs[1-winner]
			if !errors.Is(loser, catalog.ErrReleaseExists) {
				t.Fatalf("round %d: loser's error %v; want ErrReleaseExists", round, loser)
			}
			wantErrContains(t, "losing publish", loser, "already published with different bytes")
			// The signed release's bytes are the winner's, in place.
			cl := c.client(t)
			m, err := cl.Manifest(t.Context(), "app", version)
			if err != nil {
				t.Fatal(err)
			}
			if problems := publish.VerifyRelease(t.Context(), cl, "app", version); len(problems) != 0 {
				t.Fatalf("round %d: %+v", round, problems)
			}
			rc, err := s.Get(t.Context(), catalog.DataPrefix("app", version)+m.Files[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(b, []byte(contents[winner])) {
				t.Fatalf("round %d: store holds %q; the winner published %q", round, b, contents[winner])
			}
		}
		// The same bytes published twice at once: both succeed.
		dirs := []string{storetest.WritePayload(t, map[string]string{"bin/app": "same"}), storetest.WritePayload(t, map[string]string{"bin/app": "same"})}
		errs := publishAtOnce(t, c, "app", "9.0", dirs)
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("identical publishes at once: %v", errs)
		}
		checkClean(t, c, rounds+1)
	})
}

func TestPublishRacePromoteYank(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		for _, v := range []string{"1.0", "2.0"} {
			c.publish(t, publish.PublishOptions{Name: "app", Version: v, Channels: []string{"stable"},
				Paths: []string{storetest.WritePayload(t, map[string]string{"bin/app": "app " + v})}})
		}
		dir := storetest.WritePayload(t, map[string]string{"bin/app": "app 3.0"})
		var wg sync.WaitGroup
		errs := make([]error, 3)
		wg.Add(3)
		go func() {
			defer wg.Done()
			_, errs[0] = publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: "app", Version: "3.0", Channels: []string{"beta"}, Paths: []string{dir}})
		}()
		go func() {
			defer wg.Done()
			_, errs[1] = catalog.Update(t.Context(), s, c.keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { return r.Promote("app", "1.0", "stable") })
		}()
		go func() {
			defer wg.Done()
			_, errs[2] = catalog.Update(t.Context(), s, c.keys, catalog.UpdateOptions{}, func(r *catalog.Repo) error { return r.Yank("app", "2.0") })
		}()
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("writer %d: %v", i, err)
			}
		}
		cl := c.client(t)
		rels, err := cl.Releases()
		if err != nil {
			t.Fatal(err)
		}
		state := map[string]catalog.EntryState{}
		for _, r := range rels {
			state[r.Version] = r.EntryState
		}
		if !slices.Equal(state["1.0"].Channels, []string{"stable"}) || !state["2.0"].Yanked || !slices.Equal(state["3.0"].Channels, []string{"beta"}) || len(rels) != 3 {
			t.Fatalf("after publish, promote and yank at once: %+v; want 1.0 stable, 2.0 yanked, 3.0 beta", state)
		}
		checkClean(t, c, 3)
	})
}

// TestPublishRaceTwenty measures how often 20 publishers started at once
// had to retry their commit (a figure for the docs, not a bound).
func TestPublishRaceTwenty(t *testing.T) {
	gw := storetest.Gateway(t)
	storetest.EachStore(t, gw, func(t *testing.T, s catalog.Store) {
		c := newPubCatalog(t, s)
		const writers = 20
		dirs := make([]string, writers)
		for w := range dirs {
			dirs[w] = storetest.WritePayload(t, map[string]string{"f": fmt.Sprint("payload ", w)})
		}
		retries := make([]int, writers)
		// An agent refreshing throughout: a timestamp that went backwards
		// (two writers overwriting it in the wrong order) would show here.
		agent := c.client(t)
		stop := make(chan struct{})
		refreshes, refreshErrs := 0, 0
		var lastErr error
		agentDone := make(chan struct{})
		go func() {
			defer close(agentDone)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				refreshes++
				if err := agent.Refresh(t.Context()); err != nil {
					refreshErrs++
					lastErr = err
				}
			}
		}()
		start := time.Now()
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := publish.Publish(t.Context(), s, c.keys, publish.PublishOptions{Name: fmt.Sprint("r", w), Version: "1", Paths: []string{dirs[w]}})
				if err != nil {
					t.Errorf("publisher %d: %v", w, err)
					return
				}
				retries[w] = res.CommitRetries
			}()
		}
		wg.Wait()
		took := time.Since(start)
		close(stop)
		<-agentDone
		t.Logf("FIGURE %s: an agent refreshing every 5 ms meanwhile: %d refreshes, %d failed (last: %v)", t.Name(), refreshes, refreshErrs, lastErr)
		total := 0
		for _, r := range retries {
			total += r
		}
		slices.Sort(retries)
		if got := len(releaseNames(t, c.client(t))); got != writers {
			t.Fatalf("catalog lists %d releases; want %d", got, writers)
		}
		t.Logf("FIGURE %s: %d concurrent publishers: %d commit retries in all, max %d for one, median %d; %v wall", t.Name(), writers, total, retries[writers-1], retries[writers/2], took.Round(time.Millisecond))
		checkClean(t, c, writers)
	})
}
