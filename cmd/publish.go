package cmd

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/piecehash"
	"github.com/swarmship/swarmship/internal/release"
)

func newPublishCmd() *cobra.Command {
	var (
		f        catalogFlags
		opts     publish.PublishOptions
		pieceLen string
		labels   []string
		expires  time.Duration
		timing   timingFlags
	)
	c := &cobra.Command{
		Use:   "publish PATH... --catalog URL --keys DIR --name N --version V",
		Short: "Hash files into a release, upload it and sign the catalog",
		Long: `publish reads every file once, in parallel, computing BitTorrent v1 piece hashes
(SHA-1) and each file's SHA-256; uploads payload, torrent and manifest under a
staging key of its own, signs the catalog (a compare-and-swap, retried when
another publisher commits first), and then copies them to data/<name>/<version>/,
torrents/<name>/<version>.torrent and releases/<name>/<version>.json. A file
whose SHA-256 matches a file of an earlier signed version of the same name is
not uploaded but copied inside the catalog (S3 CopyObject, a hard link in a
directory); the output says how many bytes were uploaded and reused. Running it
again after a failure completes the release; publishing an existing version
with different bytes fails with "already published with different bytes".

With a base (--base, by default the version the first --channel points at),
the signed manifest also carries delta hints: where each byte range of the
new release lies in the base, found by a rolling-checksum match inside the
same hashing pass. Agents that hold the base build those bytes locally. The
base is read once (from the catalog, or --base-dir) and checked against its
signed SHA-256s.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if len(args) == 0 {
				return fmt.Errorf("nothing to publish: give one or more files or directories")
			}
			opts.Paths = args
			pl, err := piecehash.ParsePieceLength(pieceLen)
			if err != nil {
				return fmt.Errorf("--piece-length: %w", err)
			}
			opts.PieceLength = pl
			if opts.Labels, err = publish.ParseLabels(labels); err != nil {
				return err
			}
			if expires < 0 {
				return fmt.Errorf("--expires must not be negative")
			}
			opts.Expires = expires
			// Validate names before touching the network or the keys.
			if err := release.ValidateName("--name", opts.Name); err != nil {
				return err
			}
			if err := release.ValidateName("--version", opts.Version); err != nil {
				return err
			}
			if opts.Timing, err = timing.timing(); err != nil {
				return err
			}
			keys, err := f.loadKeys("targets", "snapshot", "timestamp")
			if err != nil {
				return err
			}
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			var bar *progressBar
			if isTerminal(cmd.ErrOrStderr()) && !jsonOutput() {
				bar = &progressBar{w: cmd.ErrOrStderr()}
				opts.Progress = bar.update
			}
			res, err := publish.Publish(ctx, store, keys, opts)
			bar.done()
			if err != nil {
				return err
			}
			if res.Media != nil && res.Media.Warning != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s (raise the bitrate or segment length, or accept it)\n", res.Media.Warning)
			}
			if !res.AlreadyPublished || len(res.Channels) > 0 {
				details := map[string]string{"bytes": fmt.Sprint(res.TotalSize), "files": fmt.Sprint(res.Files), "already_published": fmt.Sprint(res.AlreadyPublished),
					"uploaded_bytes": fmt.Sprint(res.UploadedBytes), "reused_bytes": fmt.Sprint(res.ReusedBytes)}
				if d := res.Delta; d != nil && d.Base != "" {
					details["delta_base"], details["delta_new_bytes"] = d.Base, fmt.Sprint(d.NewBytes)
				}
				if err := f.audit(audit.Event{Action: "publish", Release: res.Name, Version: res.Version, InfoHash: res.InfoHash,
					Channel: strings.Join(res.Channels, ","), Tenant: opts.Tenant, Details: details}); err != nil {
					return err
				}
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), res)
			}
			w := cmd.OutOrStdout()
			state := "published"
			if res.AlreadyPublished {
				state = "already published (unchanged)"
			}
			fmt.Fprintf(w, "%s@%s %s\ninfohash  %s\nsize      %s in %d files, %d pieces of %s\ntorrent   %s\n",
				res.Name, res.Version, state, res.InfoHash, bytesize.Format(res.TotalSize), res.Files, res.Pieces, bytesize.Format(res.PieceLength), res.TorrentKey)
			fmt.Fprintf(w, "uploaded  %s; reused %s by server-side copy (%d files whole from earlier versions, %d built from the delta base)\n",
				bytesize.Format(res.UploadedBytes), bytesize.Format(res.ReusedBytes), res.ReusedFiles, res.ComposedFiles)
			if res.WebSeed != "" {
				fmt.Fprintf(w, "web seed  %s\n", res.WebSeed)
			}
			if len(res.Channels) > 0 {
				fmt.Fprintf(w, "channels  %s\n", strings.Join(res.Channels, ","))
			}
			if res.Media != nil {
				fmt.Fprintf(w, "%s\n", res.Media)
			} else {
				printPublishDelta(w, res.Delta, res.TotalSize)
			}
			return nil
		},
	}
	fs := c.Flags()
	f.register(fs, true)
	fs.StringVar(&opts.Name, "name", "", "release name")
	fs.StringVar(&opts.Version, "version", "", "release version")
	fs.StringSliceVar(&opts.Channels, "channel", nil, "channel(s) to point at this version")
	fs.StringVar(&pieceLen, "piece-length", "auto", "piece length: auto or a power of two such as 4MiB")
	fs.DurationVar(&expires, "expires", 0, "release lifetime, e.g. 720h (default: never expires)")
	fs.StringArrayVar(&labels, "label", nil, "label key=value (repeatable)")
	fs.StringSliceVar(&opts.Regions, "region", nil, "regions the release may be delivered to (default: any)")
	fs.StringVar(&opts.Tenant, "tenant", "", "tenant that owns the release")
	fs.StringVar(&opts.WebSeedURL, "web-seed", "", "base URL where the catalog is served over HTTP (default: the S3 object URL; none for a directory)")
	fs.StringSliceVar(&opts.Announce, "tracker", nil, "tracker announce URL(s) written into the torrent")
	fs.IntVar(&opts.Workers, "workers", 0, "hashing goroutines (default: one per CPU)")
	fs.BoolVar(&opts.NoReuse, "no-reuse", false, "upload every file, even those an earlier version of the release already holds (default: copy them server-side)")
	fs.BoolVar(&opts.VerifyReused, "verify-reused", false, "read back each server-side copy and check its SHA-256 (a download per reused file)")
	fs.StringVar(&opts.Base, "base", "", "version to compute signed delta hints against, or none (default: the version the first --channel points at)")
	timing.register(fs)
	fs.BoolVar(&opts.Media, "media", false, "publish an HLS or DASH stream: check its playlists and start every segment on a piece boundary (BEP 47 pad files)")
	fs.StringVar(&opts.VariantB, "variant-b", "", "directory holding watermark variant B of the segments in PATH (variant A); needs --codes")
	fs.StringVar(&opts.Codes, "codes", "", "signed site code table (catalog codes add) that picks each site's variants")
	fs.StringVar(&opts.BaseDir, "base-dir", "", "local directory holding the base release's files, read instead of the catalog's copy")
	return c
}

// printPublishDelta says what the delta hints cover, or why there are none.
func printPublishDelta(w io.Writer, d *publish.DeltaResult, total int64) {
	switch {
	case d == nil:
		fmt.Fprintf(w, "delta     none (--base none)\n")
	case d.Base == "":
		fmt.Fprintf(w, "delta     %s\n", d.Note)
	default:
		fmt.Fprintf(w, "delta     against %s: %s found in the base, %s new (%s), %d ranges; read %s of the base (%s)\n",
			d.Base, bytesize.Format(d.HintedBytes), bytesize.Format(d.NewBytes), percent(d.NewBytes, total), d.Ranges,
			bytesize.Format(d.BaseBytesRead), bytesize.Format(d.BaseSize))
	}
}

func percent(part, whole int64) string {
	if whole <= 0 {
		return "0%"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// progressBar draws one line on a terminal; it is never used in cron.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	last  time.Time
	stage string
	drawn bool
}

func (p *progressBar) update(stage string, done, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if stage == p.stage && now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.stage, p.last = stage, now
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r%-7s [%s%s] %5.1f%% %s / %s ", stage, strings.Repeat("#", n), strings.Repeat(".", width-n),
		frac*100, bytesize.Format(done), bytesize.Format(total))
	p.drawn = true
}

func (p *progressBar) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
