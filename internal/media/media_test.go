package media_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/swarmship/swarmship/internal/media"
	"github.com/swarmship/swarmship/internal/testenv"
)

// releaseFiles lists dir's files as release paths.
func releaseFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseGenerated(t *testing.T) {
	two := []testenv.Rendition{{Name: "lo", Width: 320, Height: 180, VideoKbps: 300}, {Name: "hi", Width: 640, Height: 360, VideoKbps: 800}}
	cases := []struct {
		name                string
		gen                 func(t testing.TB, dir string)
		format              string
		playlists, segments int
	}{
		{"hls-ts", func(t testing.TB, d string) {
			testenv.GenerateHLS(t, d, testenv.MediaOptions{Seconds: 6, Renditions: two})
		}, media.HLS, 3, 6},
		{"hls-fmp4", func(t testing.TB, d string) {
			testenv.GenerateHLS(t, d, testenv.MediaOptions{Seconds: 6, FMP4: true})
		}, media.HLS, 2, 4},
		{"dash-timeline", func(t testing.TB, d string) {
			testenv.GenerateDASH(t, d, testenv.MediaOptions{Seconds: 6, Renditions: two})
		}, media.DASH, 1, 3*4 + 1}, // ffmpeg writes a short last audio segment
		{"dash-duration", func(t testing.TB, d string) {
			testenv.GenerateDASH(t, d, testenv.MediaOptions{Seconds: 6, DASHDuration: true})
		}, media.DASH, 1, 2 * 4},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.gen(t, dir)
			s, err := media.Parse(os.DirFS(dir), releaseFiles(t, dir))
			if err != nil {
				t.Fatal(err)
			}
			if s.Format != c.format || len(s.Playlists) != c.playlists || len(s.Segments) != c.segments {
				t.Fatalf("got %s, %d playlists %v, %d segments %v; want %s, %d, %d", s.Format, len(s.Playlists), s.Playlists, len(s.Segments), s.Segments, c.format, c.playlists, c.segments)
			}
			if strings.Contains(s.Playlists[0], "/") {
				t.Errorf("entry playlist %q is not top level", s.Playlists[0])
			}
		})
	}
}

func mapFS(files map[string]string) (fstest.MapFS, []string) {
	m := fstest.MapFS{}
	var names []string
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
		names = append(names, k)
	}
	return m, names
}

func TestParseRefuses(t *testing.T) {
	seg := "x"
	media1 := "#EXTM3U\n#EXTINF:2,\n%s\n#EXT-X-ENDLIST\n"
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"missing segment":  {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "s1.ts", 1)}, "not in the release"},
		"absolute URL":     {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "https://cdn.example/s1.ts", 1), "s1.ts": seg}, "URL"},
		"scheme":           {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "file:s1.ts", 1), "s1.ts": seg}, "scheme"},
		"absolute path":    {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "/etc/passwd", 1)}, "absolute path"},
		"dotdot":           {map[string]string{"d/a.m3u8": strings.Replace(media1, "%s", "../s1.ts", 1), "s1.ts": seg}, "leaves its directory"},
		"query":            {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "s1.ts?x=1", 1), "s1.ts": seg}, "query"},
		"byterange":        {map[string]string{"a.m3u8": "#EXTM3U\n#EXTINF:2,\n#EXT-X-BYTERANGE:100@0\ns1.ts\n", "s1.ts": seg}, "EXT-X-BYTERANGE"},
		"map byterange":    {map[string]string{"a.m3u8": "#EXTM3U\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"10@0\"\n#EXTINF:2,\ns1.m4s\n", "s1.m4s": seg, "i.mp4": seg}, "BYTERANGE"},
		"encrypted":        {map[string]string{"a.m3u8": "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXTINF:2,\ns1.ts\n", "s1.ts": seg}, "encrypted"},
		"not m3u":          {map[string]string{"a.m3u8": "hello\n"}, "#EXTM3U"},
		"mixed":            {map[string]string{"a.m3u8": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nb.m3u8\n#EXTINF:2,\ns1.ts\n", "b.m3u8": strings.Replace(media1, "%s", "s1.ts", 1), "s1.ts": seg}, "mixes"},
		"variant not m3u8": {map[string]string{"a.m3u8": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nb.txt\n", "b.txt": "x"}, "not named .m3u8"},
		"segment is list":  {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "b.m3u8", 1), "b.m3u8": strings.Replace(media1, "%s", "s1.ts", 1), "s1.ts": seg}, "is a playlist"},
		"no playlist":      {map[string]string{"s1.ts": seg}, "no playlist"},
		"hls and dash":     {map[string]string{"a.m3u8": strings.Replace(media1, "%s", "s1.ts", 1), "b.mpd": "<MPD/>", "s1.ts": seg}, "mixes HLS and DASH"},
		"dash dynamic":     {map[string]string{"a.mpd": `<MPD type="dynamic"><Period/></MPD>`}, "dynamic"},
		"dash escape":      {map[string]string{"a.mpd": `<MPD><Period><AdaptationSet><Representation id="1"><SegmentList><SegmentURL media="../x"/></SegmentList></Representation></AdaptationSet></Period></MPD>`}, "leaves"},
		"dash baseurl":     {map[string]string{"a.mpd": `<MPD><BaseURL>http://cdn/</BaseURL><Period><AdaptationSet><Representation id="1"><SegmentList><SegmentURL media="x"/></SegmentList></Representation></AdaptationSet></Period></MPD>`, "x": seg}, "URL"},
		"dash range":       {map[string]string{"a.mpd": `<MPD><Period><AdaptationSet><Representation id="1"><SegmentList><SegmentURL media="x" mediaRange="0-9"/></SegmentList></Representation></AdaptationSet></Period></MPD>`, "x": seg}, "mediaRange"},
		"dash missing":     {map[string]string{"a.mpd": `<MPD mediaPresentationDuration="PT4S"><Period><AdaptationSet><SegmentTemplate media="c-$Number$.m4s" duration="2"/><Representation id="1"/></AdaptationSet></Period></MPD>`, "c-1.m4s": seg}, "c-2.m4s"},
		"dash identifier":  {map[string]string{"a.mpd": `<MPD mediaPresentationDuration="PT4S"><Period><AdaptationSet><SegmentTemplate media="c-$Foo$.m4s" duration="2"/><Representation id="1"/></AdaptationSet></Period></MPD>`}, "unknown template identifier"},
		"dash huge repeat": {map[string]string{"a.mpd": `<MPD><Period><AdaptationSet><SegmentTemplate media="c-$Time$.m4s"><SegmentTimeline><S t="0" d="1" r="9999999"/></SegmentTimeline></SegmentTemplate><Representation id="1"/></AdaptationSet></Period></MPD>`}, "repeats more"},
		"dash huge count":  {map[string]string{"a.mpd": `<MPD mediaPresentationDuration="PT100000H"><Period><AdaptationSet><SegmentTemplate media="c-$Number$.m4s" duration="1"/><Representation id="1"/></AdaptationSet></Period></MPD>`}, "more than"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fsys, names := mapFS(c.files)
			_, err := media.Parse(fsys, names)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func TestParseDASHTimeAndList(t *testing.T) {
	fsys, names := mapFS(map[string]string{
		"a.mpd": `<MPD type="static"><Period><BaseURL>v/</BaseURL><AdaptationSet>
<SegmentTemplate initialization="i-$RepresentationID$.mp4" media="t-$RepresentationID$-$Time%06d$.m4s" timescale="10">
<SegmentTimeline><S t="5" d="20" r="1"/><S d="7"/></SegmentTimeline></SegmentTemplate>
<Representation id="r1"/></AdaptationSet>
<AdaptationSet><Representation id="r2"><SegmentList><Initialization sourceURL="l/init.mp4"/><SegmentURL media="l/1.m4s"/></SegmentList></Representation></AdaptationSet></Period></MPD>`,
		"v/i-r1.mp4": "i", "v/t-r1-000005.m4s": "a", "v/t-r1-000025.m4s": "b", "v/t-r1-000045.m4s": "c",
		"v/l/init.mp4": "i", "v/l/1.m4s": "d", "other.txt": "not media",
	})
	s, err := media.Parse(fsys, names)
	if err != nil {
		t.Fatal(err)
	}
	want := "v/i-r1.mp4 v/l/1.m4s v/l/init.mp4 v/t-r1-000005.m4s v/t-r1-000025.m4s v/t-r1-000045.m4s"
	if got := strings.Join(s.Segments, " "); got != want {
		t.Fatalf("segments %q, want %q", got, want)
	}
}
