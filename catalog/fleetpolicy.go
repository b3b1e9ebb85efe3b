package catalog

import "context"

// Fleet policy documents are signed targets under policies/NAME.yaml
// (signeddoc.go); what they mean (policy.FleetDoc) is checked by whoever
// writes them (the CLI) and again by every agent, which refuses a bad one
// whole.

// PolicyPrefix is the directory of fleet policy documents.
const PolicyPrefix = "policies/"

// PolicyKey is the target path of the policy document name.
func PolicyKey(name string) string { return policyDocs.key(name) }

// Policies lists the policy documents in the catalog, by name.
func (r *Repo) Policies() []string { return policyDocs.names(r.targets.Signed.Targets) }

// SetPolicy records the policy document doc, whose bytes are already in
// the store under its hash-prefixed name (PutHashedTarget), replacing any
// earlier version. Setting the same bytes again changes nothing.
func (r *Repo) SetPolicy(name string, doc []byte) error { return r.setDoc(policyDocs, name, doc) }

// RemovePolicy removes the policy document name; agents drop it at their
// next refresh. Its stored copies become unsigned leftovers for gc.
func (r *Repo) RemovePolicy(name string) error { return r.removeDoc(policyDocs, name) }

// Policies lists the policy documents of the loaded catalog, by name.
func (c *Client) Policies() ([]string, error) { return c.docNames(policyDocs) }

// Policy fetches the signed policy document name (at most limit bytes).
func (c *Client) Policy(ctx context.Context, name string, limit int64) ([]byte, error) {
	return c.Target(ctx, PolicyKey(name), limit)
}

// PublishPolicy signs doc into the catalog as the policy document name
// (publishDoc).
func PublishPolicy(ctx context.Context, store Store, keys Keys, opts UpdateOptions, name string, doc []byte) error {
	return publishDoc(ctx, store, keys, opts, policyDocs, name, doc)
}

// PolicyDigest is the signed SHA-256 (hex) of the policy document name,
// so a reader can skip fetching a document it already has.
func (c *Client) PolicyDigest(name string) (string, error) { return c.docDigest(policyDocs, name) }
