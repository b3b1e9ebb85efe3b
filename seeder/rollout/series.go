package rollout

import (
	"slices"
	"time"
)

// sampleLocked appends the current totals to each release's series,
// drops the series of releases no agent reports any more, and samples the
// upload capacity. s.mu is held for writing.
func (s *Reports) sampleLocked(now time.Time, a *aggregate) {
	for key, ra := range a.rels {
		sr := s.series[key]
		if sr == nil {
			sr = &series{step: time.Second}
			s.series[key] = sr
		}
		sr.add(now, SeriesPoint{T: now.UnixMilli(), Peer: ra.r.Bytes.Peer, Origin: ra.r.Bytes.Origin, WebSeed: ra.r.Bytes.WebSeed,
			Completed: ra.completed, Active: ra.r.Active})
	}
	for key := range s.series {
		if a.rels[key] == nil {
			delete(s.series, key)
			delete(s.firstSeen, key)
		}
	}
	// Upload capacity: one sample per 10s over the last hour.
	if n := len(s.capacity); n == 0 || now.Sub(s.capacity[n-1].t) >= 10*time.Second {
		s.capacity = append(s.capacity, capSample{t: now, n: a.counts.Seeding})
	} else {
		s.capacity[n-1].n = max(s.capacity[n-1].n, a.counts.Seeding)
	}
	i := 0
	for i < len(s.capacity) && now.Sub(s.capacity[i].t) > time.Hour {
		i++
	}
	s.capacity = s.capacity[i:]
}

// capSample is the agents able to seed at one time.
type capSample struct {
	t time.Time
	n int
}

// series keeps up to seriesCap points; when full it halves its resolution,
// so it always covers the release's whole life.
type series struct {
	step   time.Duration
	last   time.Time
	points []SeriesPoint
}

const seriesCap = 240

func (sr *series) add(now time.Time, p SeriesPoint) {
	if n := len(sr.points); n > 0 && now.Sub(sr.last) < sr.step {
		sr.points[n-1] = p
		return
	}
	sr.points = append(sr.points, p)
	sr.last = now
	if len(sr.points) > seriesCap {
		// Keep every other point, always the newest.
		var kept []SeriesPoint
		for i := len(sr.points) - 1; i >= 0; i -= 2 {
			kept = append(kept, sr.points[i])
		}
		slices.Reverse(kept)
		sr.points = kept
		sr.step *= 2
	}
}

// rate is completed bytes per second over about the last minute.
func (sr *series) rate() float64 {
	if sr == nil || len(sr.points) < 2 {
		return 0
	}
	last := sr.points[len(sr.points)-1]
	first := sr.points[0]
	for i := len(sr.points) - 2; i >= 0; i-- {
		first = sr.points[i]
		if last.T-first.T >= 60_000 {
			break
		}
	}
	dt := float64(last.T-first.T) / 1000
	if dt <= 0 || last.Completed <= first.Completed {
		return 0
	}
	return float64(last.Completed-first.Completed) / dt
}
