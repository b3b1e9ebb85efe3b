package tracker

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkAnnounceGateway is scripts/bench/tracker's load in-process: 5000
// agents in 50 swarms and 500 sites (10 sites of 10 agents per swarm), half
// of them seeders, each re-announcing with locality=gateway and numwant=50,
// so every answer elects its swarm's gateways. Profile the handler with
//
//	go test -run - -bench AnnounceGateway -cpu 1 -cpuprofile cpu.out ./seeder/tracker/
func BenchmarkAnnounceGateway(b *testing.B) {
	tr := New(Config{MaxPeersPerAddress: -1, MaxSwarmsPerAddress: -1})
	const agents, swarms, sites = 5000, 50, 500
	reqs := make([]*http.Request, agents)
	for i := range agents {
		left := int64(1 << 30)
		if i%2 == 0 {
			left = 0
		}
		a := ann{ih: hash(fmt.Sprint("swarm", i%swarms)), id: pid(i), port: 10000 + i, left: left,
			ident: Identity{Tenant: "acme", Site: fmt.Sprint("site-", i%sites), Region: fmt.Sprint("region-", i%sites%4), Role: RoleAgent}}
		q := a.values()
		q.Set("numwant", "50")
		q.Set("compact", "1")
		q.Set("key", fmt.Sprintf("%08x", i))
		q.Set("locality", "gateway")
		req := httptest.NewRequest(http.MethodGet, "/announce?"+q.Encode(), nil)
		req.RemoteAddr = "127.0.0.1:40000"
		reqs[i] = req
		if err := serveOK(tr, req.URL.String(), req.RemoteAddr); err != nil {
			b.Fatal(err)
		}
	}
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	i := 0
	cpu0 := processCPU()
	for b.Loop() {
		tr.ServeHTTP(w, reqs[i%agents])
		i++
	}
	if cpu := processCPU() - cpu0; cpu > 0 {
		// CPU time per announce: other processes' load leaves it alone.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "announces/s")
}
