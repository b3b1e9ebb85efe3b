package cmd

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/swarmship/swarmship/agent"
)

// agentHUP rereads the running agent's certificates on SIGHUP (they also
// follow their files by themselves). One handler serves the agents a
// self-updating run goes through, so that a SIGHUP between two of them
// does not end the process; stop removes it.
func agentHUP(ctx context.Context) (current *atomic.Pointer[agent.Agent], stop func()) {
	current = new(atomic.Pointer[agent.Agent])
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				a := current.Load()
				if a == nil {
					continue
				}
				if err := a.ReloadCertificates(); err != nil {
					slog.Warn("certificates not reloaded; the previous ones stay in force", "err", err)
				} else {
					slog.Info("SIGHUP: certificates reread")
				}
			}
		}
	}()
	return current, func() {
		signal.Stop(ch)
		cancel()
	}
}
