package media_test

import (
	"testing"
	"testing/fstest"

	"github.com/swarmship/swarmship/internal/media"
)

// fuzzFS is the release the fuzzed playlist sits in: a few segment files
// it may or may not reference.
func fuzzFS(name string, body []byte) (fstest.MapFS, []string) {
	fsys := fstest.MapFS{
		name:               {Data: body},
		"v/index.m3u8":     {Data: []byte("#EXTM3U\n#EXTINF:2,\ns0.ts\n")},
		"v/s0.ts":          {Data: []byte("ts")},
		"v/init.mp4":       {Data: []byte("init")},
		"c-1.m4s":          {Data: []byte("c")},
		"init-stream0.m4s": {Data: []byte("i")},
	}
	names := []string{name, "v/index.m3u8", "v/s0.ts", "v/init.mp4", "c-1.m4s", "init-stream0.m4s"}
	return fsys, names
}

// check says what every accepted result must satisfy: at least one
// segment, each an existing file that is not a playlist.
func check(t *testing.T, fsys fstest.MapFS, s *media.Stream) {
	if len(s.Segments) == 0 || len(s.Playlists) == 0 {
		t.Fatalf("accepted a stream with %d playlists and %d segments", len(s.Playlists), len(s.Segments))
	}
	for _, p := range s.Segments {
		if _, ok := fsys[p]; !ok || media.IsPlaylist(p) {
			t.Fatalf("segment %q is not a non-playlist file of the release", p)
		}
	}
}

func FuzzParseHLS(f *testing.F) {
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv/index.m3u8\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-MAP:URI=\"v/init.mp4\"\n#EXTINF:2,\nv/s0.ts\n#EXT-X-ENDLIST\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",URI=\"v/index.m3u8\"\n"))
	f.Add([]byte("#EXTM3U\n#EXTINF:2,\n../v/s0.ts\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		fsys, names := fuzzFS("master.m3u8", body)
		s, err := media.Parse(fsys, names)
		if err == nil {
			check(t, fsys, s)
		}
	})
}

func FuzzParseDASH(f *testing.F) {
	f.Add([]byte(`<MPD mediaPresentationDuration="PT2S"><Period><AdaptationSet><SegmentTemplate initialization="init-stream$RepresentationID$.m4s" media="c-$Number$.m4s" duration="2"/><Representation id="0"/></AdaptationSet></Period></MPD>`))
	f.Add([]byte(`<MPD><Period><AdaptationSet><Representation id="0"><SegmentList><SegmentURL media="v/s0.ts"/></SegmentList></Representation></AdaptationSet></Period></MPD>`))
	f.Add([]byte(`<MPD><Period><AdaptationSet><SegmentTemplate media="c-$Time$.m4s"><SegmentTimeline><S t="1" d="1"/></SegmentTimeline></SegmentTemplate><Representation id="0"/></AdaptationSet></Period></MPD>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		fsys, names := fuzzFS("manifest.mpd", body)
		// The HLS playlist of fuzzFS would mix formats: drop it.
		delete(fsys, "v/index.m3u8")
		names = append(names[:1], names[2:]...)
		s, err := media.Parse(fsys, names)
		if err == nil {
			check(t, fsys, s)
		}
	})
}
