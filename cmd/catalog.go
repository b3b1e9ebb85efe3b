package cmd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/catalog/publish"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/bytesize"
	"github.com/swarmship/swarmship/internal/release"
)

func newCatalogCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "catalog",
		Short: "Create, read, promote, yank and verify a signed catalog",
	}
	c.AddCommand(newCatalogFreezeCmd(), newCatalogScheduleCmd()) // freeze.go
	c.AddCommand(newCatalogInitCmd(), newCatalogLsCmd(), newCatalogShowCmd(), newCatalogPromoteCmd(),
		newCatalogYankCmd(), newCatalogVerifyCmd(), newCatalogResignCmd(), newCatalogGCCmd())
	c.AddCommand(newCatalogPolicyCmd())
	c.AddCommand(newCatalogPlaylistCmd()) // playlist.go
	c.AddCommand(newCatalogCodesCmd())    // watermark.go
	return c
}

func newCatalogInitCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "init --catalog URL --keys DIR",
		Short: "Create a new catalog and its signing keys",
		Long: `init creates a TUF repository (root, targets, snapshot, timestamp; ed25519) in
the catalog, and one private key per role in DIR (mode 0600). It refuses to
overwrite keys or an existing catalog. Agents pin the root.json it prints.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if f.keys == "" {
				return errors.New("no keys directory given: use --keys DIR")
			}
			if f.url == "" {
				return errors.New("no catalog given: use --catalog DIR or s3://bucket/prefix")
			}
			store, err := catalog.OpenOrCreateStore(ctx, f.url, f.s3Config())
			if err != nil {
				return err
			}
			if _, err := store.Stat(ctx, catalog.RootKey); err == nil {
				return fmt.Errorf("%s already holds a catalog", store)
			}
			keys, err := catalog.GenerateKeys(f.keys)
			if err != nil {
				return err
			}
			rootJSON, err := catalog.Init(ctx, store, keys, catalog.DefaultExpiry, time.Now())
			if err != nil {
				return err
			}
			rootPath := filepath.Join(f.keys, "root.json")
			if err := os.WriteFile(rootPath, rootJSON, 0o644); err != nil {
				return err
			}
			if err := f.audit(audit.Event{Action: "keys.init", Details: map[string]string{"catalog": store.String(), "fingerprint": catalog.Fingerprint(rootJSON)}}); err != nil {
				return err
			}
			res := map[string]string{
				"catalog": store.String(), "root": rootPath, "root_key": catalog.RootKey,
				"fingerprint": catalog.Fingerprint(rootJSON), "keys": f.keys,
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "catalog     %s\nkeys        %s (keep them secret; root.key belongs offline)\nroot.json   %s (also %s in the catalog)\nfingerprint sha256:%s\n\nPin root.json on every agent (catalog.root in agent.yaml).\n",
				res["catalog"], res["keys"], res["root"], res["root_key"], res["fingerprint"])
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newCatalogLsCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "ls",
		Short: "List releases, their channels and whether they are yanked",
		Args:  cobra.NoArgs,
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			rels, err := cl.Releases()
			if err != nil {
				return err
			}
			if jsonOutput() {
				type row struct {
					Name     string   `json:"name"`
					Version  string   `json:"version"`
					Channels []string `json:"channels"`
					Yanked   bool     `json:"yanked"`
				}
				out := []row{}
				for _, r := range rels {
					out = append(out, row{r.Name, r.Version, r.Channels, r.Yanked})
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tCHANNELS\tSTATE")
			for _, r := range rels {
				state := "published"
				if r.Yanked {
					state = "yanked"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Version, strings.Join(r.Channels, ","), state)
			}
			return tw.Flush()
		}),
	}
	f.register(c.Flags(), true)
	return c
}

func newCatalogShowCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "show NAME[@VERSION]",
		Short: "Show a release's manifest (the newest version if none is given)",
		Args:  cobra.ExactArgs(1),
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			ref, _ := release.Parse(args[0])
			name, version := ref.Name, ref.Version
			rel, err := cl.Resolve(name, "", version)
			if err != nil {
				return err
			}
			m, err := cl.Manifest(cmd.Context(), rel.Name, rel.Version)
			if err != nil {
				return err
			}
			ds := summarizeDelta(m)
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), struct {
					*catalog.Manifest
					Channels     []string        `json:"channels"`
					Yanked       bool            `json:"yanked"`
					DeltaSummary *deltaSummary   `json:"delta_summary,omitempty"`
					Timing       *catalog.Timing `json:"timing,omitempty"`
				}{m, rel.Channels, rel.Yanked, ds, timingOrNil(rel.Timing)})
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "release   %s@%s\ninfohash  %s\nsize      %s in %d files, %s pieces\ncreated   %s\n",
				m.Name, m.Version, m.InfoHash, bytesize.Format(m.TotalSize), len(m.Files), bytesize.Format(m.PieceLength), m.Created.Format(time.RFC3339))
			if !m.Expires.IsZero() {
				fmt.Fprintf(w, "expires   %s\n", m.Expires.Format(time.RFC3339))
			}
			fmt.Fprintf(w, "channels  %s\nyanked    %v\n", strings.Join(rel.Channels, ","), rel.Yanked)
			printTiming(w, rel.Timing) // freeze.go
			for k, v := range m.Labels {
				fmt.Fprintf(w, "label     %s=%s\n", k, v)
			}
			if ds != nil {
				fmt.Fprintf(w, "delta     against %s: %s in hints, %s new (%s of the release), %d ranges\n",
					ds.Base, bytesize.Format(ds.HintedBytes), bytesize.Format(ds.NewBytes), percent(ds.NewBytes, m.TotalSize), ds.Ranges)
			}
			if md := m.Media; md != nil {
				_, torrentSize := m.Layout()
				fmt.Fprintf(w, "media     %s: %d playlists, %d segments on piece boundaries, pad files %s (%s of the release)\n",
					md.Format, len(md.Playlists), len(md.Segments), bytesize.Format(torrentSize-m.TotalSize), percent(torrentSize-m.TotalSize, m.TotalSize))
				for _, p := range md.Playlists {
					fmt.Fprintf(w, "playlist  %s\n", p)
				}
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			if ds == nil {
				fmt.Fprintln(tw, "\nFILE\tSIZE\tSHA256")
			} else {
				fmt.Fprintln(tw, "\nFILE\tSIZE\tNEW\tSHA256")
			}
			for i, fl := range m.Files {
				if ds == nil {
					fmt.Fprintf(tw, "%s\t%d\t%s\n", fl.Path, fl.Size, fl.SHA256)
				} else {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", fl.Path, fl.Size, ds.FileNewBytes[i], fl.SHA256)
				}
			}
			return tw.Flush()
		}),
	}
	f.register(c.Flags(), true)
	return c
}

// deltaSummary is what a release's delta hints save an agent that holds
// the base: bytes it builds locally and bytes it must fetch.
type deltaSummary struct {
	Base         string  `json:"base"`
	HintedBytes  int64   `json:"hinted_bytes"`
	NewBytes     int64   `json:"new_bytes"`
	Ranges       int     `json:"ranges"`
	FileNewBytes []int64 `json:"file_new_bytes"` // per file, in manifest order
}

func summarizeDelta(m *catalog.Manifest) *deltaSummary {
	if m.Delta == nil {
		return nil
	}
	ds := &deltaSummary{Base: m.Delta.Base, Ranges: len(m.Delta.Ranges), FileNewBytes: make([]int64, len(m.Files))}
	var off int64
	for i, f := range m.Files {
		ds.FileNewBytes[i] = f.Size - m.Delta.Covered(off, f.Size)
		ds.NewBytes += ds.FileNewBytes[i]
		off += f.Size
	}
	ds.HintedBytes = m.TotalSize - ds.NewBytes
	return ds
}

// mutate applies fn to the newest catalog and signs, reloading and
// applying fn again when another writer commits first.
func mutate(cmd *cobra.Command, f *catalogFlags, fn func(*catalog.Repo) error, roles ...string) error {
	ctx := cmd.Context()
	store, err := f.openStore(ctx)
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		roles = []string{"targets", "snapshot", "timestamp"}
	}
	keys, err := f.loadKeys(roles...)
	if err != nil {
		return err
	}
	_, err = catalog.Update(ctx, store, keys, catalog.UpdateOptions{}, fn)
	return err
}

// mutateAudited is mutate with the default roles, then e recorded in the
// audit log once the change is signed.
func mutateAudited(cmd *cobra.Command, f *catalogFlags, e audit.Event, fn func(*catalog.Repo) error) error {
	if err := mutate(cmd, f, fn); err != nil {
		return err
	}
	return f.audit(e)
}

func newCatalogPromoteCmd() *cobra.Command {
	var f catalogFlags
	var channel string
	var urgent bool
	c := &cobra.Command{
		Use:   "promote NAME VERSION --channel C",
		Short: "Point a channel at a version (also how you roll back)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if channel == "" {
				return errors.New("--channel is required")
			}
			e := audit.Event{Action: "promote", Release: args[0], Version: args[1], Channel: channel}
			if urgent {
				e.Details = map[string]string{"urgent": "true"}
			}
			if err := mutateAudited(cmd, &f, e, func(r *catalog.Repo) error {
				if err := r.Promote(args[0], args[1], channel); err != nil || !urgent {
					return err
				}
				// Same commit: no agent sees the channel move without it.
				return r.MarkUrgent(args[0], args[1])
			}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s channel %s -> %s\n", args[0], channel, args[1])
			return nil
		},
	}
	f.register(c.Flags(), true)
	c.Flags().StringVar(&channel, "channel", "", "channel to move")
	c.Flags().BoolVar(&urgent, "urgent", false, "mark the version urgent: it activates even during catalog freezes")
	return c
}

func newCatalogYankCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "yank NAME VERSION",
		Short: "Withdraw a release: agents never activate it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e := audit.Event{Action: "yank", Release: args[0], Version: args[1]}
			if err := mutateAudited(cmd, &f, e, func(r *catalog.Repo) error { return r.Yank(args[0], args[1]) }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s@%s yanked\n", args[0], args[1])
			return nil
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newCatalogResignCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "resign",
		Short: "Renew snapshot and timestamp signatures (run from cron within the timestamp lifetime); restore missing target copies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// Resign is also the upgrade step for catalogs published before
			// targets were stored under hash-prefixed names (consistent
			// snapshots): the repair writes only content-addressed copies, so
			// running it again on a retried commit is harmless.
			var written []string
			var repairErr error
			err := mutate(cmd, &f, func(r *catalog.Repo) error {
				w, err := r.RepairTargetCopies(cmd.Context())
				written, repairErr = append(written, w...), err
				r.RenewSignatures()
				return nil
			}, "snapshot", "timestamp")
			for _, k := range written {
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote missing target copy %s\n", k)
			}
			if err != nil {
				return err
			}
			return repairErr
		},
	}
	f.register(c.Flags(), true)
	return c
}

func newCatalogVerifyCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "verify",
		Short: "Check every signature and expiry, both stored copies of each manifest and torrent, and every payload object's size and SHA-256",
		Args:  cobra.NoArgs,
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			problems, n, err := publish.VerifyCatalog(cmd.Context(), cl)
			if err != nil {
				return err
			}
			// Unsigned leftovers are reported, not failed on: one may be a
			// publish in flight. `catalog gc` removes the old ones.
			leftovers, err := publish.FindLeftovers(cmd.Context(), cl.Store())
			leftoverNote := ""
			if errors.Is(err, catalog.ErrReadOnly) {
				leftoverNote, err = "not checked: the store cannot be listed", nil
			}
			if err != nil {
				return err
			}
			if leftovers == nil {
				leftovers = []publish.Leftover{}
			}
			if jsonOutput() {
				out := map[string]any{"releases": n, "problems": problems, "leftovers": leftovers}
				if leftoverNote != "" {
					out["leftovers_note"] = leftoverNote
				}
				if err := printJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			} else {
				for _, p := range problems {
					fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s %s: %s\n", p.Release, p.Key, p.Err)
				}
				now := time.Now()
				for _, l := range leftovers {
					fmt.Fprintf(cmd.OutOrStdout(), "LEFTOVER %s %s (%s, written %s ago; unsigned: a publish in flight, or one that failed; `catalog gc` removes old ones)\n",
						l.Kind, l.Key, bytesize.Format(l.Size), now.Sub(l.ModTime).Truncate(time.Second))
				}
				if leftoverNote != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "leftovers %s\n", leftoverNote)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d releases checked, %d problems, %d unsigned leftovers\n", n, len(problems), len(leftovers))
			}
			if len(problems) > 0 {
				return exitError{code: 1, msg: fmt.Sprintf("catalog verify found %d problems", len(problems))}
			}
			return nil
		}),
	}
	f.register(c.Flags(), true)
	return c
}

func newCatalogGCCmd() *cobra.Command {
	var (
		f         catalogFlags
		olderThan time.Duration
		dryRun    bool
	)
	c := &cobra.Command{
		Use:   "gc --older-than D",
		Short: "Remove unsigned leftovers (staging uploads, orphaned payloads, torrents, manifests) older than D",
		Long: `gc deletes what no signed target references: the staging uploads of publishes
that lost a race, failed or were killed, and payloads, torrents and manifests
of releases that were never signed. It never deletes an object a signed
release needs, nor one written less than --older-than ago: a staging upload
goes only when its newest object is that old, so choose D longer than your
slowest single-file upload.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("older-than") {
				return errors.New("--older-than is required (e.g. 24h): younger objects may belong to a publish in flight")
			}
			store, err := f.openStore(cmd.Context())
			if err != nil {
				return err
			}
			gone, err := publish.CollectGarbage(cmd.Context(), store, olderThan, time.Now(), dryRun)
			if err != nil {
				return err
			}
			var bytes int64
			for _, l := range gone {
				bytes += l.Size
			}
			if !dryRun && len(gone) > 0 {
				if err := f.audit(audit.Event{Action: "gc", Details: map[string]string{"objects": fmt.Sprint(len(gone)), "bytes": fmt.Sprint(bytes)}}); err != nil {
					return err
				}
			}
			if gone == nil {
				gone = []publish.Leftover{}
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), map[string]any{"removed": gone, "dry_run": dryRun})
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, l := range gone {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s\n", verb, l.Kind, l.Key)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %d objects, %s\n", verb, len(gone), bytesize.Format(bytes))
			return nil
		},
	}
	f.register(c.Flags(), true)
	c.Flags().DurationVar(&olderThan, "older-than", 0, "only remove leftovers last written longer ago than this (required)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed")
	return c
}
