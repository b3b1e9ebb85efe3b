package state_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swarmship/swarmship/internal/state"
	"github.com/swarmship/swarmship/internal/testenv"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    state.Config
		want string // substring of the error; "" = valid
	}{
		{"memory", state.Config{}, ""},
		{"redis", state.Config{Redis: &state.RedisConfig{URL: "redis://127.0.0.1:6379/0"}}, ""},
		{"rediss with password", state.Config{Redis: &state.RedisConfig{URL: "rediss://u:secret@redis.example:6380/2"}}, ""},
		{"no url", state.Config{Redis: &state.RedisConfig{}}, "redis.url"},
		{"http url", state.Config{Redis: &state.RedisConfig{URL: "http://u:secret@host/"}}, "not a redis://"},
		{"bad db", state.Config{Redis: &state.RedisConfig{URL: "redis://127.0.0.1:6379/x"}}, "redis.url"},
		{"prefix with space", state.Config{Redis: &state.RedisConfig{URL: "redis://h:1", Prefix: "a b"}}, "redis.prefix"},
		{"negative timeout", state.Config{Redis: &state.RedisConfig{URL: "redis://h:1", Timeout: -time.Second}}, "redis.timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), "secret"):
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	if r, err := state.Open(ctx, state.Config{}); r != nil || err != nil {
		t.Fatalf("memory state opened %v, %v", r, err)
	}

	srv := testenv.StartRedis(t)
	r, err := state.Open(ctx, state.Config{Redis: &state.RedisConfig{URL: srv.URL, Prefix: "t1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.Key("swarm", "abc"); got != "t1:swarm:abc" {
		t.Fatalf("key %q", got)
	}
	if err := r.Client.Set(ctx, r.Key("k"), "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	// A Redis that lost its data comes back empty on the same address. The
	// first command after the restart may meet a connection of the old
	// server: retry, the client must recover.
	srv.Restart(t)
	testenv.Eventually(t, 30*time.Second, 100*time.Millisecond, func() error {
		if n, err := r.Client.Exists(ctx, r.Key("k")).Result(); err != nil || n != 0 {
			return fmt.Errorf("after restart: exists=%d err=%v", n, err)
		}
		return nil
	})

	// Away: Open fails within the timeout with ErrUnavailable. Nothing
	// listens on port 1 (a killed server's port could be taken by a Redis
	// another package's test starts at the same time).
	start := time.Now()
	_, err = state.Open(ctx, state.Config{Redis: &state.RedisConfig{URL: "redis://127.0.0.1:1/0", Timeout: 300 * time.Millisecond}})
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("open with Redis away: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("open with Redis away took %v", d)
	}
}
