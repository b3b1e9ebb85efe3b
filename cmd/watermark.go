package cmd

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/swarmship/swarmship/catalog"
	"github.com/swarmship/swarmship/internal/audit"
	"github.com/swarmship/swarmship/internal/release"
	"github.com/swarmship/swarmship/internal/sitecode"
)

func init() { extraCommands = append(extraCommands, newTraceCmd) }

func newCatalogCodesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "codes",
		Short: "Sign site code tables for A/B watermarked media (which variant of each segment each site gets)",
	}
	c.AddCommand(newCodesAddCmd(), newCodesShowCmd())
	return c
}

// readSites reads site names from --site values and a file of one name a
// line ('#' starts a comment).
func readSites(sites []string, file string) ([]string, error) {
	out := append([]string(nil), sites...)
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		sc := bufio.NewScanner(io.LimitReader(f, 16<<20))
		for sc.Scan() {
			line, _, _ := strings.Cut(sc.Text(), "#")
			if line = strings.TrimSpace(line); line != "" {
				out = append(out, line)
			}
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	for _, s := range out {
		if err := release.ValidateName("site", s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func newCodesAddCmd() *cobra.Command {
	var (
		f                catalogFlags
		sites            []string
		sitesFile, seed  string
		length, distance int
	)
	c := &cobra.Command{
		Use:   "add NAME --site S... | --sites-file FILE",
		Short: "Give codewords to sites that have none in table NAME (created on first use); existing codewords never change",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := release.ValidateName("code table name", name); err != nil {
				return err
			}
			list, err := readSites(sites, sitesFile)
			if err != nil {
				return err
			}
			if len(list) == 0 {
				return errors.New("no sites given: use --site or --sites-file")
			}
			if distance == 0 {
				distance = sitecode.DefaultMinDistance(length)
			}
			ctx := cmd.Context()
			store, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			keys, err := f.loadKeys("targets", "snapshot", "timestamp")
			if err != nil {
				return err
			}
			if seed == "" {
				seed = name
			}
			var before int
			t, err := catalog.ChangeCodeTable(ctx, store, keys, catalog.UpdateOptions{}, name, func(cur *sitecode.Table) (*sitecode.Table, error) {
				if cur == nil {
					cur = &sitecode.Table{Length: length, MinDistance: distance, Sites: map[string]string{}}
				} else if cmd.Flags().Changed("length") && length != cur.Length || cmd.Flags().Changed("min-distance") && distance != cur.MinDistance {
					return nil, fmt.Errorf("table %s has length %d and min distance %d; they cannot change (leaked copies must keep tracing)", name, cur.Length, cur.MinDistance)
				}
				before = len(cur.Sites)
				return sitecode.Extend(cur, list, seed)
			})
			if err != nil {
				return err
			}
			if err := f.audit(audit.Event{Action: "codes.add", Details: map[string]string{"table": name, "sites": fmt.Sprint(len(t.Sites))}}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "code table %s signed: %d sites (%d new), %d bits, min distance %d\n", name, len(t.Sites), len(t.Sites)-before, t.Length, t.MinDistance)
			return nil
		},
	}
	f.register(c.Flags(), true)
	c.Flags().StringSliceVar(&sites, "site", nil, "site(s) to give codewords")
	c.Flags().StringVar(&sitesFile, "sites-file", "", "file of site names, one a line")
	c.Flags().IntVar(&length, "length", 40, "codeword bits (new tables): segment position i carries bit i mod length")
	c.Flags().IntVar(&distance, "min-distance", 0, "least number of bits any two codewords differ in (new tables; default 30% of --length)")
	c.Flags().StringVar(&seed, "seed", "", "seed of the codeword search (default: the table name)")
	return c
}

func newCodesShowCmd() *cobra.Command {
	var f catalogFlags
	c := &cobra.Command{
		Use:   "show NAME",
		Short: "Print the signed site code table NAME",
		Args:  cobra.ExactArgs(1),
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			t, _, err := cl.CodeTable(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if jsonOutput() {
				return printJSON(cmd.OutOrStdout(), t)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "code table %s: %d sites, %d bits, min distance %d\n", args[0], len(t.Sites), t.Length, t.MinDistance)
			for _, s := range sortedKeys(t.Sites) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\n", s, t.Sites[s])
			}
			return nil
		}),
	}
	f.register(c.Flags(), false)
	return c
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TraceResult is what `swarmship trace` reports.
type TraceResult struct {
	Release  string `json:"release"`
	Codes    string `json:"codes"`
	Sequence string `json:"sequence"` // A, B or - per segment position
	sitecode.Verdict
}

func newTraceCmd() *cobra.Command {
	var (
		f   catalogFlags
		ref string
	)
	c := &cobra.Command{
		Use:   "trace DIR --release NAME@VERSION",
		Short: "Read a leaked copy's A/B variant sequence and name the site it came from",
		Long: `trace hashes each segment of the copy in DIR (at the paths the release's
playlists use) and compares it with the signed SHA-256 of the release's two
variants: a match gives A or B, anything else (missing, re-encoded, cut)
gives "-". The sequence is decoded against the release's signed site code
table: trace names the site whose codeword is nearest, only when it lies
within the distance the code corrects over the positions read and no other
site is as near; otherwise it refuses and says why (exit status 2).

trace reads bytes, not pictures: a copy re-encoded or recaptured from a
screen matches neither variant; reading those needs the watermark
embedder's own detector, whose A/B decisions can be written as a sequence
and given with --sequence.`,
		Args: cobra.MaximumNArgs(1),
		RunE: f.runWithClient(func(cmd *cobra.Command, args []string, cl *catalog.Client) error {
			ctx := cmd.Context()
			r, ok := release.Parse(ref)
			if !ok {
				return errors.New("--release: give NAME@VERSION")
			}
			m, err := cl.Manifest(ctx, r.Name, r.Version)
			if err != nil {
				return err
			}
			if m.Watermark == nil {
				return fmt.Errorf("%s has no watermark variants", r)
			}
			t, _, err := cl.CodeTable(ctx, m.Watermark.Codes)
			if err != nil {
				return err
			}
			seqFlag, _ := cmd.Flags().GetString("sequence")
			var seq []sitecode.Symbol
			switch {
			case seqFlag != "":
				if seq, err = parseSequence(seqFlag); err != nil {
					return err
				}
			case len(args) == 1:
				if seq, err = readVariants(args[0], m); err != nil {
					return err
				}
			default:
				return errors.New("give the leaked copy's directory, or --sequence")
			}
			dec, err := sitecode.NewDecoder(t)
			if err != nil {
				return err
			}
			res := TraceResult{Release: r.String(), Codes: m.Watermark.Codes, Sequence: formatSequence(seq), Verdict: dec.Decode(seq)}
			if jsonOutput() {
				if err := printJSON(cmd.OutOrStdout(), res); err != nil {
					return err
				}
			} else {
				w := cmd.OutOrStdout()
				fmt.Fprintf(w, "sequence  %s (%d of %d positions read)\n", res.Sequence, res.Read, len(seq))
				fmt.Fprintf(w, "nearest   %s at distance %d; next %s at %d; the code corrects up to %d\n", res.Nearest, res.Distance, res.Runner, res.RunnerDistance, res.Radius)
				if res.Site != "" {
					fmt.Fprintf(w, "site      %s\n", res.Site)
				} else {
					fmt.Fprintf(w, "site      not named: %s\n", res.Why)
				}
			}
			if res.Site == "" {
				return errTraceRefused
			}
			return nil
		}),
	}
	f.register(c.Flags(), false)
	c.Flags().StringVar(&ref, "release", "", "the watermarked release the copy is of (NAME@VERSION)")
	c.Flags().String("sequence", "", "the variant sequence as read by an embedder's detector (A, B or - per position) instead of DIR")
	_ = c.MarkFlagRequired("release")
	return c
}

// errTraceRefused makes trace exit non-zero when it names no site.
var errTraceRefused = exitError{code: 2}

// readVariants hashes each segment position's file in dir and says which
// signed variant it is.
func readVariants(dir string, m *catalog.Manifest) ([]sitecode.Symbol, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	sums := map[string]string{}
	for _, f := range m.Files {
		sums[f.Path] = f.SHA256
	}
	seq := make([]sitecode.Symbol, len(m.Watermark.Segments))
	for i, s := range m.Watermark.Segments {
		seq[i] = sitecode.Missing
		got, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(s.Path)))
		if err != nil {
			continue // missing or unreadable: an erasure
		}
		switch got {
		case sums[s.A]:
			seq[i] = sitecode.A
		case sums[s.B]:
			seq[i] = sitecode.B
		}
	}
	return seq, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func parseSequence(s string) ([]sitecode.Symbol, error) {
	var out []sitecode.Symbol
	for _, c := range strings.ToUpper(s) {
		switch c {
		case 'A', '0':
			out = append(out, sitecode.A)
		case 'B', '1':
			out = append(out, sitecode.B)
		case '-', '?':
			out = append(out, sitecode.Missing)
		case ' ', ',':
		default:
			return nil, fmt.Errorf("--sequence: %q is not A, B or -", c)
		}
	}
	return out, nil
}

func formatSequence(seq []sitecode.Symbol) string {
	var b strings.Builder
	for _, s := range seq {
		b.WriteByte("-AB"[s+1])
	}
	return b.String()
}
