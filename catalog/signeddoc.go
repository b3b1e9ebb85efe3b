package catalog

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/swarmship/swarmship/internal/release"
)

// docKind is a family of signed documents kept as targets under
// prefix/NAME.ext: fleet policies, signage schedules. The catalog stores
// and signs their bytes; what they mean is checked by whoever writes them
// (the CLI) and again by every reader, which refuses a bad one whole.
type docKind struct {
	prefix, ext string
	label       string // names the name in errors: "policy name"
	what        string // names a document in errors: "policy"
}

var (
	policyDocs   = docKind{prefix: PolicyPrefix, ext: ".yaml", label: "policy name", what: "policy"}
	playlistDocs = docKind{prefix: PlaylistPrefix, ext: ".json", label: "schedule name", what: "signage schedule"}
)

// key is the target path of the document name.
func (k docKind) key(name string) string { return k.prefix + name + k.ext }

// name is the document name of a target path, ok == false for targets
// that are not documents of this kind.
func (k docKind) name(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, k.ext)
	if !ok || release.ValidateName(k.label, name) != nil {
		return "", false
	}
	return name, true
}

// names lists the documents of this kind among targets, sorted.
func (k docKind) names(targets map[string]*metadata.TargetFiles) []string {
	var out []string
	for key := range targets {
		if n, ok := k.name(key); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// setDoc records the document doc, whose bytes are already in the store
// under its hash-prefixed name (PutHashedTarget), replacing any earlier
// version. Setting the same bytes again changes nothing.
func (r *Repo) setDoc(k docKind, name string, doc []byte) error {
	if err := release.ValidateName(k.label, name); err != nil {
		return err
	}
	key := k.key(name)
	tf, err := metadata.TargetFile().FromBytes(key, doc, "sha256")
	if err != nil {
		return err
	}
	if old, ok := r.targets.Signed.Targets[key]; ok && old.Length == tf.Length && old.Hashes.Equal(tf.Hashes) {
		return nil
	}
	r.targets.Signed.Targets[key] = tf
	r.dirty = true
	return nil
}

// removeDoc removes the document name; its stored copies become unsigned
// leftovers for gc.
func (r *Repo) removeDoc(k docKind, name string) error {
	key := k.key(name)
	if _, ok := r.targets.Signed.Targets[key]; !ok {
		return fmt.Errorf("%s %q is not in the catalog: %w", k.what, name, ErrNotFound)
	}
	delete(r.targets.Signed.Targets, key)
	r.dirty = true
	return nil
}

// docNames lists the documents of this kind in the loaded catalog.
func (c *Client) docNames(k docKind) ([]string, error) {
	up, err := c.current()
	if err != nil {
		return nil, err
	}
	return k.names(up.GetTopLevelTargets()), nil
}

// docDigest is the signed SHA-256 (hex) of the document name, so a reader
// can skip fetching one it already has.
func (c *Client) docDigest(k docKind, name string) (string, error) {
	tf, _, err := c.targetKeys(k.key(name), -1)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(tf.Hashes["sha256"]), nil
}

// publishDoc signs doc into the catalog as the document name: the
// content-addressed copy first, then the signed commit (Update, a
// compare-and-swap: of two writers at once one retries on the other's
// catalog), then the plain copy for people and older readers.
func publishDoc(ctx context.Context, store Store, keys Keys, opts UpdateOptions, k docKind, name string, doc []byte) error {
	if err := release.ValidateName(k.label, name); err != nil {
		return err
	}
	key := k.key(name)
	if err := PutHashedTarget(ctx, store, key, doc); err != nil {
		return err
	}
	if _, err := Update(ctx, store, keys, opts, func(r *Repo) error { return r.setDoc(k, name, doc) }); err != nil {
		return err
	}
	return putBytes(ctx, store, key, doc)
}
