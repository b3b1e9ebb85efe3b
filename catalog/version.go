package catalog

import "errors"

var errNoTimestamp = errors.New("catalog loaded without timestamp metadata")

// TimestampVersion is the version of the trusted timestamp metadata the
// client loaded last: it grows with every catalog change (publish,
// promote, yank, resign), so the origin announces it to watching agents.
func (c *Client) TimestampVersion() (int64, error) {
	up, err := c.current()
	if err != nil {
		return 0, err
	}
	ts := up.GetTrustedMetadataSet().Timestamp
	if ts == nil {
		return 0, errNoTimestamp
	}
	return ts.Signed.Version, nil
}
