package btclient

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/anacrolix/torrent"
	"github.com/anacrolix/torrent/bencode"
	"github.com/anacrolix/torrent/metainfo"
	"github.com/anacrolix/torrent/storage"
)

// BenchmarkTransferHashing moves 64 MiB from a seeder to a leecher in this
// process, with the leecher's pieces hashed as they are written or read
// back, and reports the CPU time of the process (both clients) per GiB.
// The seeder's share is the same either way, so the difference is the
// leecher's. Alternate the two (-count) on a loaded machine:
//
//	go test -run '^$' -bench TransferHashing -count 5 ./internal/btclient/
func BenchmarkTransferHashing(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []FileStorageOption
	}{{"self", nil}, {"readback", []FileStorageOption{WithReadBackHashing()}}} {
		b.Run(mode.name, func(b *testing.B) {
			const size = 64 << 20
			info, data := buildInfo(b, "v1", 512<<10, []testFile{{"a.bin", size}})
			infoBytes, err := bencode.Marshal(info)
			if err != nil {
				b.Fatal(err)
			}
			ih := metainfo.HashBytes(infoBytes)
			seedDir := b.TempDir()
			if err := os.MkdirAll(filepath.Join(seedDir, "v1"), 0o750); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(seedDir, "v1", "a.bin"), data, 0o640); err != nil {
				b.Fatal(err)
			}
			newClient := func() *torrent.Client {
				cl, err := New(Config{PeerIDPrefix: AgentPeerIDPrefix, ListenHost: "127.0.0.1", DataDir: b.TempDir()})
				if err != nil {
					b.Fatal(err)
				}
				return cl
			}
			seeder := newClient()
			defer seeder.Close()
			st, _ := seeder.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
				Storage: NewFileStorage(seedDir, TrustedCompletion{})})
			<-st.GotInfo()
			var cpu time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				leecher := newClient()
				lt, _ := leecher.AddTorrentOpt(torrent.AddTorrentOpts{InfoHash: ih, InfoBytes: infoBytes,
					Storage: NewFileStorage(b.TempDir(), storage.NewMapPieceCompletion(), mode.opts...)})
				<-lt.GotInfo()
				lt.DownloadAll()
				b.StartTimer()
				c0 := processCPU()
				lt.AddPeers([]torrent.PeerInfo{{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: seeder.LocalPort()}}})
				select {
				case <-lt.Complete().On():
				case <-time.After(2 * time.Minute):
					b.Fatalf("incomplete: %d bytes missing", lt.BytesMissing())
				}
				cpu += processCPU() - c0
				b.StopTimer()
				leecher.Close()
				b.StartTimer()
			}
			b.SetBytes(size)
			b.ReportMetric(cpu.Seconds()/float64(b.N)/(float64(size)/(1<<30)), "cpu-s/GiB")
		})
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
