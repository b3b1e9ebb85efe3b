// Command delta builds the realistic release pair of issue 17
// (internal/deltapair: v1 of SIZE in 200 files; v2 with 3 files changed in
// place, 1/1024 of SIZE inserted in the middle of a SIZE/16 file, one file
// renamed, 10 added, 5 removed) and measures, side by side, the bytes each
// way of bringing v1 to v2 moves from one machine to another, all on loopback:
//
//   - zsync: zsyncmake on a tar of v2, then zsync seeded with the tar of v1
//     from a loopback HTTP server; bytes are counted at the server.
//   - rsync: a loopback rsync daemon serving v2, pulled into a copy of v1
//     with `rsync -a --no-whole-file --delete --stats`; bytes from its stats.
//   - swarmship publish of v1 then v2 into a directory catalog and into
//     versitygw; bytes are counted at the store (everything written for v2:
//     payload, torrent, manifest, signed metadata).
//
// Every method's result is checked against v2 byte for byte.
//
//	go run ./scripts/bench/delta                   SIZE 1GiB (env SIZE or -size)
//	go run ./scripts/bench/delta -size 64MiB -json
//	go run ./scripts/bench/delta -gen DIR          write the pair only, print it as JSON
//
// versitygw is found on $PATH or in $SWARMSHIP_TOOLS (scripts/test.sh
// installs it); without it the S3 row is skipped.
package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/deltapair"
	"github.com/swarmship/swarmship/internal/testenv"
)

func main() {
	size := flag.String("size", envOr("SIZE", "1GiB"), "bytes of v1 (env SIZE)")
	files := flag.Int("files", 200, "files in v1")
	gen := flag.String("gen", "", "write the pair under `DIR` (DIR/v1, DIR/v2), print it as JSON and exit")
	work := flag.String("dir", "", "work directory (default: a new temporary one, removed at the end)")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.Parse()
	n, err := bytesize.Parse(*size)
	if err != nil {
		fail(fmt.Errorf("-size: %w", err))
	}
	spec := deltapair.Spec{Size: int64(n), Files: *files}
	if *gen != "" {
		p, err := deltapair.Generate(*gen, spec)
		if err != nil {
			fail(err)
		}
		fail(printJSON(p))
		return
	}
	dir := *work
	if dir == "" {
		if dir, err = os.MkdirTemp(envOr("BENCH_TMP", os.TempDir()), "swarmship-bench-delta."); err != nil {
			fail(err)
		}
		defer os.RemoveAll(dir)
	}
	cfg := config{Spec: spec, Dir: dir, VersityGW: testenv.FindTool("versitygw"), Log: os.Stderr}
	rep, err := run(context.Background(), cfg)
	if err != nil {
		fail(err)
	}
	if *asJSON {
		fail(printJSON(rep))
		return
	}
	rep.print(os.Stdout)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "delta:", err)
		os.Exit(1)
	}
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type config struct {
	Spec deltapair.Spec
	Dir  string // work directory, empty or missing
	// VersityGW is the versitygw binary to start for the S3 row; GW, if
	// set, is a running gateway to use instead. Neither: no S3 row.
	VersityGW string
	GW        *testenv.VersityGW
	Log       io.Writer
}

// Result is one way of bringing v1 to v2.
type Result struct {
	Method string `json:"method"`
	// Bytes is what crossed from the side holding v2 to the side holding
	// v1 (download, or upload into the catalog); Other is what went the
	// other way or served as control data (requests, checksums, the
	// .zsync file).
	Bytes int64         `json:"bytes"`
	Other int64         `json:"other_bytes"`
	Time  time.Duration `json:"time_ns"`
	Note  string        `json:"note,omitempty"`
}

// Report is the whole run.
type Report struct {
	Pair    *deltapair.Pair `json:"pair"`
	Results []Result        `json:"results"`
}

func run(ctx context.Context, cfg config) (*Report, error) {
	logf := func(format string, a ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", a...)
		}
	}
	logf("writing the pair (%s) under %s", bytesize.Format(cfg.Spec.Size), cfg.Dir)
	pair, err := deltapair.Generate(cfg.Dir, cfg.Spec)
	if err != nil {
		return nil, err
	}
	want, err := treeHashes(pair.V2)
	if err != nil {
		return nil, err
	}
	rep := &Report{Pair: pair}
	steps := []struct {
		name string
		fn   func(context.Context, config, *deltapair.Pair, map[string][32]byte) ([]Result, error)
	}{
		{"zsync", runZsync},
		{"rsync", runRsync},
		{"publish", runPublish},
	}
	for _, s := range steps {
		logf("measuring %s", s.name)
		rs, err := s.fn(ctx, cfg, pair, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		rep.Results = append(rep.Results, rs...)
	}
	return rep, nil
}

func (r *Report) print(w io.Writer) {
	p := r.Pair
	fmt.Fprintf(w, "pair: v1 %s in %d files, v2 %s in %d files; changed bytes %s in %d regions; changed files %s\n",
		bytesize.Format(p.V1Size), p.V1Files, bytesize.Format(p.V2Size), p.V2Files,
		bytesize.Format(p.ChangedBytes), p.ChangedRegions, bytesize.Format(p.ChangedFileBytes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tbytes moved\tx changed bytes\tx changed files\tother way / control\ttime\t")
	for _, res := range r.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.3f\t%.3f\t%d\t%.1fs\t\n", res.Method, res.Bytes, float64(res.Bytes)/float64(p.ChangedBytes),
			float64(res.Bytes)/float64(p.ChangedFileBytes), res.Other, res.Time.Seconds())
	}
	tw.Flush()
	for _, res := range r.Results {
		if res.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", res.Method, res.Note)
		}
	}
}

// runZsync serves v2.tar and its .zsync over loopback HTTP and lets zsync
// rebuild it from v1.tar, counting the bytes the server sends.
func runZsync(ctx context.Context, cfg config, pair *deltapair.Pair, want map[string][32]byte) ([]Result, error) {
	zsyncmake, err := exec.LookPath("zsyncmake")
	if err != nil {
		return nil, err
	}
	zsync, err := exec.LookPath("zsync")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(cfg.Dir, "zsync")
	srv, client := filepath.Join(root, "server"), filepath.Join(root, "client")
	for _, d := range []string{srv, client} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	v1tar, v2tar := filepath.Join(client, "v1.tar"), filepath.Join(srv, "v2.tar")
	if err := writeTar(pair.V1, v1tar); err != nil {
		return nil, err
	}
	if err := writeTar(pair.V2, v2tar); err != nil {
		return nil, err
	}
	mk := exec.CommandContext(ctx, zsyncmake, "-o", "v2.tar.zsync", "-u", "v2.tar", "v2.tar")
	mk.Dir = srv
	if out, err := mk.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("zsyncmake: %w\n%s", err, out)
	}
	var payload, control atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := &payload
		if strings.HasSuffix(r.URL.Path, ".zsync") {
			n = &control
		}
		serveRanges(countingWriter{w, n}, r, filepath.Join(srv, filepath.Base(r.URL.Path)))
	}), ReadHeaderTimeout: time.Minute}
	go hs.Serve(ln)
	defer hs.Close()
	start := time.Now()
	cmd := exec.CommandContext(ctx, zsync, "-q", "-i", "v1.tar", "-o", "out.tar", "http://"+ln.Addr().String()+"/v2.tar.zsync")
	cmd.Dir = client
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("zsync: %w\n%s", err, out)
	}
	took := time.Since(start)
	got, err := tarHashes(filepath.Join(client, "out.tar"))
	if err != nil {
		return nil, err
	}
	if err := sameTree(got, want); err != nil {
		return nil, fmt.Errorf("zsync's result: %w", err)
	}
	return []Result{{Method: "zsync (tar of the tree)", Bytes: payload.Load(), Other: control.Load(), Time: took,
		Note: "other: the .zsync file"}}, nil
}

// serveRanges serves the file at path. Requests for several ranges get a
// multipart/byteranges body written the way zsync reads it (Go's own
// starts with the boundary line, zsync expects a line break first and
// then asks again forever); the rest goes to http.ServeContent.
func serveRanges(w http.ResponseWriter, r *http.Request, path string) {
	f, err := os.Open(path)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	spec, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !ok || !strings.Contains(spec, ",") {
		http.ServeContent(w, r, path, st.ModTime(), f)
		return
	}
	type span struct{ from, to int64 }
	var spans []span
	for _, part := range strings.Split(spec, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(part), "-")
		from, err1 := strconv.ParseInt(a, 10, 64)
		to, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || from > to || from >= st.Size() {
			http.Error(w, "unsupported range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		to = min(to, st.Size()-1) // zsync asks for whole blocks past the end
		spans = append(spans, span{from, to})
	}
	const boundary = "swarmshipbenchboundary"
	heads := make([]string, len(spans))
	tail := "\r\n--" + boundary + "--\r\n"
	length := int64(len(tail))
	for i, sp := range spans {
		heads[i] = fmt.Sprintf("\r\n--%s\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes %d-%d/%d\r\n\r\n", boundary, sp.from, sp.to, st.Size())
		length += int64(len(heads[i])) + sp.to - sp.from + 1
	}
	// A length, not chunked encoding, which zsync does not read.
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.Header().Set("Content-Type", "multipart/byteranges; boundary="+boundary)
	w.WriteHeader(http.StatusPartialContent)
	for i, sp := range spans {
		io.WriteString(w, heads[i])
		if _, err := io.Copy(w, io.NewSectionReader(f, sp.from, sp.to-sp.from+1)); err != nil {
			return
		}
	}
	io.WriteString(w, tail)
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// runRsync pulls v2 from a loopback rsync daemon into a copy of v1.
func runRsync(ctx context.Context, cfg config, pair *deltapair.Pair, want map[string][32]byte) ([]Result, error) {
	rsync, err := exec.LookPath("rsync")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(cfg.Dir, "rsync")
	dst := filepath.Join(root, "dst")
	if err := linkTree(pair.V1, dst); err != nil {
		return nil, err
	}
	conf := "use chroot = no\nmax connections = 4\n"
	if os.Geteuid() == 0 {
		// As root the daemon would drop to nobody, who cannot enter
		// private temporary directories.
		conf += "uid = 0\ngid = 0\n"
	}
	conf += "[v2]\n  path = " + pair.V2 + "\n  read only = yes\n"
	confPath := filepath.Join(root, "rsyncd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	var addr string
	var daemon *exec.Cmd
	for range 3 { // the free port may be taken before the daemon binds it
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		daemon = exec.Command(rsync, "--daemon", "--no-detach", "--address=127.0.0.1", "--port="+strconv.Itoa(port),
			"--config="+confPath, "--log-file="+filepath.Join(root, "rsyncd.log"))
		testenv.DieWithParent(daemon)
		if err := daemon.Start(); err != nil {
			return nil, err
		}
		exited := make(chan struct{})
		go func() { daemon.Wait(); close(exited) }()
		up := testenv.Poll(15*time.Second, 20*time.Millisecond, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		select {
		case <-exited:
			up = false
		default:
		}
		if up {
			defer func() { daemon.Process.Kill(); <-exited }()
			break
		}
		daemon.Process.Kill()
		<-exited
		daemon = nil
	}
	if daemon == nil {
		return nil, errors.New("the rsync daemon did not start (see rsyncd.log)")
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, rsync, "-a", "--no-whole-file", "--delete", "--stats", "rsync://"+addr+"/v2/", dst+"/").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("rsync: %w\n%s", err, out)
	}
	took := time.Since(start)
	received, err1 := statField(out, "Total bytes received")
	sent, err2 := statField(out, "Total bytes sent")
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("%w in:\n%s", err, out)
	}
	got, err := treeHashes(dst)
	if err != nil {
		return nil, err
	}
	if err := sameTree(got, want); err != nil {
		return nil, fmt.Errorf("rsync's result: %w", err)
	}
	return []Result{{Method: "rsync --no-whole-file", Bytes: received, Other: sent, Time: took,
		Note: "other: bytes sent (block checksums)"}}, nil
}

func statField(out []byte, name string) (int64, error) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: ([0-9,.]+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no %q", name)
	}
	return strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(string(m[1])), 10, 64)
}

// runPublish publishes v1 then v2 into directory catalogs and, when
// versitygw is at hand, into S3 buckets, counting what v2 writes: once with
// whole-file reuse only (--base none), once with delta hints against v1
// (--base 1), which lets the store build changed files from v1's objects.
func runPublish(ctx context.Context, cfg config, pair *deltapair.Pair, _ map[string][32]byte) ([]Result, error) {
	root := filepath.Join(cfg.Dir, "publish")
	var out []Result
	for _, hints := range []bool{false, true} {
		dir := filepath.Join(root, fmt.Sprintf("catalog-%v", hints))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		s, err := catalog.NewDirStore(dir)
		if err != nil {
			return nil, err
		}
		r, err := publishPair(ctx, s, filepath.Join(root, fmt.Sprintf("keys-dir-%v", hints)), pair, hints)
		if err != nil {
			return nil, err
		}
		r.Method = "swarmship publish, directory" + map[bool]string{false: "", true: ", hints"}[hints]
		out = append(out, r)
	}

	gw := cfg.GW
	if gw == nil && cfg.VersityGW != "" {
		if err := os.MkdirAll(filepath.Join(root, "s3"), 0o755); err != nil {
			return nil, err
		}
		var err error
		if gw, err = testenv.LaunchVersityGW(cfg.VersityGW, filepath.Join(root, "s3")); err != nil {
			return nil, err
		}
		defer gw.Stop()
	}
	if gw == nil {
		return out, nil
	}
	u := strings.TrimPrefix(gw.Endpoint, "http://")
	mc, err := minio.New(u, &minio.Options{Creds: credentials.NewStaticV4(gw.AccessKey, gw.SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return nil, err
	}
	for _, hints := range []bool{false, true} {
		bucket := fmt.Sprintf("bench-delta-%d", time.Now().UnixNano())
		if err := mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			return nil, err
		}
		s3, err := catalog.NewS3Store(ctx, catalog.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "catalog", AccessKey: gw.AccessKey, SecretKey: gw.SecretKey})
		if err != nil {
			return nil, err
		}
		r, err := publishPair(ctx, s3, filepath.Join(root, fmt.Sprintf("keys-s3-%v", hints)), pair, hints)
		if err != nil {
			return nil, err
		}
		r.Method = "swarmship publish, S3 (versitygw)" + map[bool]string{false: "", true: ", hints"}[hints]
		out = append(out, r)
	}
	return out, nil
}

func publishPair(ctx context.Context, s catalog.Store, keysDir string, pair *deltapair.Pair, withHints bool) (Result, error) {
	keys, err := catalog.GenerateKeys(keysDir)
	if err != nil {
		return Result{}, err
	}
	if _, err := catalog.Init(ctx, s, keys, catalog.DefaultExpiry, time.Now()); err != nil {
		return Result{}, err
	}
	cs := &countingStore{Store: s}
	if _, err := publish.Publish(ctx, cs, keys, publish.PublishOptions{Name: "app", Version: "1", Paths: []string{pair.V1}}); err != nil {
		return Result{}, err
	}
	opts := publish.PublishOptions{Name: "app", Version: "2", Paths: []string{pair.V2}, Base: publish.BaseNone}
	if withHints {
		opts.Base = "1" // publish --base 1: the rolling-checksum match signs hints
	}
	cs.written.Store(0)
	start := time.Now()
	res, err := publish.Publish(ctx, cs, keys, opts)
	if err != nil {
		return Result{}, err
	}
	took := time.Since(start)
	if res.UploadedBytes+res.ReusedBytes != pair.V2Size {
		return Result{}, fmt.Errorf("publish reports %d uploaded + %d reused bytes for a %d-byte release", res.UploadedBytes, res.ReusedBytes, pair.V2Size)
	}
	written := cs.written.Load()
	return Result{Bytes: written, Other: res.ReusedBytes, Time: took,
		Note: fmt.Sprintf("payload uploaded %d, reused %d (%d files copied whole, %d built from v1); other: reused bytes", res.UploadedBytes, res.ReusedBytes, res.ReusedFiles, res.ComposedFiles)}, nil
}

// countingStore counts the bytes written through it; server-side copies
// pass through uncounted, since no payload moves.
type countingStore struct {
	catalog.Store
	written atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	c.written.Add(size)
	return c.Store.Put(ctx, key, r, size)
}

func (c *countingStore) PutIfAbsent(ctx context.Context, key string, r io.Reader, size int64) error {
	c.written.Add(size)
	return catalog.PutIfAbsent(ctx, c.Store, key, r, size)
}

// Compose passes through to the real store's Composer, counting the
// bytes that come from readers.
func (c *countingStore) Compose(ctx context.Context, dst string, parts []catalog.Part) error {
	for _, p := range parts {
		if p.R != nil {
			c.written.Add(p.Len)
		}
	}
	return c.Store.(catalog.Composer).Compose(ctx, dst, parts)
}

func (c *countingStore) MinPartSize() int64 { return c.Store.(catalog.Composer).MinPartSize() }

func (c *countingStore) Copy(ctx context.Context, src, dst string) error {
	return catalog.CopyObject(ctx, c.Store, src, dst)
}

// writeTar writes the regular files under root to out in a deterministic
// tar (sorted names, no times or owners), as a release tarball would be.
func writeTar(root, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: st.Size(), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// tarHashes hashes each file in a tar.
func tarHashes(path string) (map[string][32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][32]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return nil, err
		}
		out[h.Name] = [32]byte(sum.Sum(nil))
	}
}

// treeHashes hashes each regular file under root by its slash path.
func treeHashes(root string) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		sum := sha256.New()
		if _, err := io.Copy(sum, f); err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = [32]byte(sum.Sum(nil))
		return nil
	})
	return out, err
}

func sameTree(got, want map[string][32]byte) error {
	for k, h := range want {
		if g, ok := got[k]; !ok {
			return fmt.Errorf("%s is missing", k)
		} else if g != h {
			return fmt.Errorf("%s differs", k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("%s should not be there", k)
		}
	}
	return nil
}

// linkTree recreates the files under src in dst as hard links (the copy of
// v1 that rsync updates; rsync writes new files and renames them, so the
// links never change v1).
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return os.Link(p, target)
	})
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
