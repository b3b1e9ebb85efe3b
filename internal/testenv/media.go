package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Rendition is one bitrate of a generated stream.
type Rendition struct {
	Name          string // subdirectory and playlist name, e.g. "720p"
	Width, Height int
	// VideoKbps is the video bitrate; with MediaOptions.CBR it is held
	// constant (x264 nal-hrd=cbr), so segment sizes are predictable.
	VideoKbps int
}

// MediaOptions says what GenerateHLS and GenerateDASH make. Zero values
// give a 10 s, one-rendition, 2 s-segment stream of a few hundred KiB.
type MediaOptions struct {
	Seconds        int // stream length; default 10
	SegmentSeconds int // target segment length; default 2
	Renditions     []Rendition
	FMP4           bool // HLS: fMP4 segments with an EXT-X-MAP init segment instead of .ts
	CBR            bool // constant video bitrate
	// DASHDuration makes GenerateDASH write SegmentTemplate@duration
	// ($Number$ only) instead of ffmpeg's default SegmentTimeline.
	DASHDuration bool
	// Mark, if set, draws a small box at this corner offset (x, y in
	// pixels): two streams generated with different marks differ in every
	// segment, for watermark variants.
	Mark *[2]int
}

func (o MediaOptions) withDefaults() MediaOptions {
	if o.Seconds <= 0 {
		o.Seconds = 10
	}
	if o.SegmentSeconds <= 0 {
		o.SegmentSeconds = 2
	}
	if len(o.Renditions) == 0 {
		o.Renditions = []Rendition{{Name: "360p", Width: 640, Height: 360, VideoKbps: 800}}
	}
	return o
}

// mediaFPS is the frame rate of generated streams: a keyframe starts
// every segment (GOP = fps × segment length).
const mediaFPS = 25

// RequireFFmpeg returns the ffmpeg path (see RequireTool).
func RequireFFmpeg(t testing.TB) string {
	t.Helper()
	return RequireTool(t, "ffmpeg")
}

// GenerateHLS writes an HLS stream made from ffmpeg's test sources into
// dir: dir/master.m3u8 naming dir/<rendition>/index.m3u8, each with its
// segments (seg000.ts … or init.mp4 + seg000.m4s …) beside it. It returns
// the master playlist's path. Nothing is downloaded.
func GenerateHLS(t testing.TB, dir string, opts MediaOptions) string {
	t.Helper()
	ff := RequireFFmpeg(t)
	opts = opts.withDefaults()
	var master strings.Builder
	master.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n")
	for _, r := range opts.Renditions {
		rdir := filepath.Join(dir, r.Name)
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			t.Fatal(err)
		}
		args := append(mediaInputArgs(opts), videoArgs(opts, r)...)
		args = append(args, "-f", "hls", "-hls_time", strconv.Itoa(opts.SegmentSeconds),
			"-hls_playlist_type", "vod", "-hls_list_size", "0")
		if opts.FMP4 {
			args = append(args, "-hls_segment_type", "fmp4", "-hls_fmp4_init_filename", "init.mp4",
				"-hls_segment_filename", filepath.Join(rdir, "seg%03d.m4s"))
		} else {
			args = append(args, "-hls_segment_filename", filepath.Join(rdir, "seg%03d.ts"))
		}
		args = append(args, filepath.Join(rdir, "index.m3u8"))
		runFFmpeg(t, ff, args)
		bw := (r.VideoKbps + 64) * 1000
		fmt.Fprintf(&master, "#EXT-X-STREAM-INF:BANDWIDTH=%d,RESOLUTION=%dx%d,CODECS=\"avc1.42c01e,mp4a.40.2\"\n%s/index.m3u8\n",
			bw*11/10, r.Width, r.Height, r.Name)
	}
	p := filepath.Join(dir, "master.m3u8")
	if err := os.WriteFile(p, []byte(master.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// GenerateDASH writes a DASH stream into dir: dir/manifest.mpd with a
// SegmentTemplate ($Number$; a SegmentTimeline unless DASHDuration) and init-stream<N>.m4s / chunk-stream<N>-<K>.m4s
// segments, one video representation per rendition plus audio. It returns
// the MPD's path.
func GenerateDASH(t testing.TB, dir string, opts MediaOptions) string {
	t.Helper()
	ff := RequireFFmpeg(t)
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := mediaInputArgs(opts)
	for range opts.Renditions {
		args = append(args, "-map", "0:v")
	}
	args = append(args, "-map", "1:a")
	for i, r := range opts.Renditions {
		rate := strconv.Itoa(r.VideoKbps) + "k"
		args = append(args, "-c:v:"+strconv.Itoa(i), "libx264", "-s:v:"+strconv.Itoa(i), fmt.Sprintf("%dx%d", r.Width, r.Height),
			"-b:v:"+strconv.Itoa(i), rate)
		if opts.CBR {
			args = append(args, "-minrate:v:"+strconv.Itoa(i), rate, "-maxrate:v:"+strconv.Itoa(i), rate, "-bufsize:v:"+strconv.Itoa(i), rate)
		}
	}
	args = append(args, gopArgs(opts)...)
	if opts.CBR {
		args = append(args, "-x264-params", "nal-hrd=cbr")
	}
	args = append(args, "-c:a", "aac", "-b:a", "64k", "-f", "dash", "-seg_duration", strconv.Itoa(opts.SegmentSeconds),
		"-use_template", "1", "-use_timeline", map[bool]string{true: "0", false: "1"}[opts.DASHDuration], filepath.Join(dir, "manifest.mpd"))
	runFFmpeg(t, ff, args)
	return filepath.Join(dir, "manifest.mpd")
}

func mediaInputArgs(opts MediaOptions) []string {
	src := fmt.Sprintf("testsrc=size=1280x720:rate=%d", mediaFPS)
	if opts.Mark != nil {
		src += fmt.Sprintf(",drawbox=x=%d:y=%d:w=16:h=16:color=white@0.4:t=fill", opts.Mark[0], opts.Mark[1])
	}
	return []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", src,
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(opts.Seconds)}
}

func gopArgs(opts MediaOptions) []string {
	gop := strconv.Itoa(mediaFPS * opts.SegmentSeconds)
	return []string{"-preset", "ultrafast", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0"}
}

func videoArgs(opts MediaOptions, r Rendition) []string {
	rate := strconv.Itoa(r.VideoKbps) + "k"
	args := []string{"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-s", fmt.Sprintf("%dx%d", r.Width, r.Height), "-b:v", rate}
	if opts.CBR {
		args = append(args, "-minrate", rate, "-maxrate", rate, "-bufsize", rate, "-x264-params", "nal-hrd=cbr")
	}
	args = append(args, gopArgs(opts)...)
	return append(args, "-c:a", "aac", "-b:a", "64k")
}

func runFFmpeg(t testing.TB, ff string, args []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, ff, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}
