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

// Fleet policy documents are signed targets under policies/NAME.yaml. The
// catalog stores and signs their bytes; what they mean (policy.FleetDoc)
// is checked by whoever writes them (the CLI) and again by every agent,
// which refuses a bad one whole.

// PolicyPrefix is the directory of fleet policy documents.
const PolicyPrefix = "policies/"

// PolicyKey is the target path of the policy document name.
func PolicyKey(name string) string { return PolicyPrefix + name + ".yaml" }

// policyName is the document name of a target path, ok == false for
// targets that are not policy documents.
func policyName(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, PolicyPrefix)
	if !ok {
		return "", false
	}
	name, ok := strings.CutSuffix(rest, ".yaml")
	if !ok || release.ValidateName("policy name", name) != nil {
		return "", false
	}
	return name, true
}

func policyNames(targets map[string]*metadata.TargetFiles) []string {
	var out []string
	for key := range targets {
		if n, ok := policyName(key); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Policies lists the policy documents in the catalog, by name.
func (r *Repo) Policies() []string { return policyNames(r.targets.Signed.Targets) }

// SetPolicy records the policy document doc, whose bytes are already in
// the store under its hash-prefixed name (PutHashedTarget), replacing any
// earlier version. Setting the same bytes again changes nothing.
func (r *Repo) SetPolicy(name string, doc []byte) error {
	if err := release.ValidateName("policy name", name); err != nil {
		return err
	}
	key := PolicyKey(name)
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

// RemovePolicy removes the policy document name; agents drop it at their
// next refresh. Its stored copies become unsigned leftovers for gc.
func (r *Repo) RemovePolicy(name string) error {
	key := PolicyKey(name)
	if _, ok := r.targets.Signed.Targets[key]; !ok {
		return fmt.Errorf("policy %q is not in the catalog: %w", name, ErrNotFound)
	}
	delete(r.targets.Signed.Targets, key)
	r.dirty = true
	return nil
}

// Policies lists the policy documents of the loaded catalog, by name.
func (c *Client) Policies() ([]string, error) {
	up, err := c.current()
	if err != nil {
		return nil, err
	}
	return policyNames(up.GetTopLevelTargets()), nil
}

// Policy fetches the signed policy document name (at most limit bytes).
func (c *Client) Policy(ctx context.Context, name string, limit int64) ([]byte, error) {
	return c.Target(ctx, PolicyKey(name), limit)
}

// PublishPolicy signs doc into the catalog as the policy document name:
// the content-addressed copy first, then the signed commit (Update), then
// the plain copy for people and older readers.
func PublishPolicy(ctx context.Context, store Store, keys Keys, opts UpdateOptions, name string, doc []byte) error {
	if err := release.ValidateName("policy name", name); err != nil {
		return err
	}
	key := PolicyKey(name)
	if err := PutHashedTarget(ctx, store, key, doc); err != nil {
		return err
	}
	if _, err := Update(ctx, store, keys, opts, func(r *Repo) error { return r.SetPolicy(name, doc) }); err != nil {
		return err
	}
	return putBytes(ctx, store, key, doc)
}

// PolicyDigest is the signed SHA-256 (hex) of the policy document name,
// so a reader can skip fetching a document it already has.
func (c *Client) PolicyDigest(name string) (string, error) {
	tf, _, err := c.targetKeys(PolicyKey(name), -1)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(tf.Hashes["sha256"]), nil
}
