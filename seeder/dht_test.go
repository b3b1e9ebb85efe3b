package seeder

import (
	"strings"
	"testing"
)

func TestDHTConfig(t *testing.T) {
	for _, tc := range []struct{ dht, want string }{
		{"dht: [{tenant: acme, listen: \":6881\", secret_file: /etc/s}, {tenant: globex, listen: \"127.0.0.1:6882\", secret_file: /etc/g}]\n", ""},
		{"dht: [{tenant: acme, listen: \":6881\", secret_file: /s}, {tenant: acme, listen: \":6882\", secret_file: /s}]\n", "dht[1].tenant: \"acme\" is listed twice"},
		{"dht: [{tenant: \"\", listen: \":6881\"}]\n", "dht[0].tenant"},
		{"dht: [{tenant: acme}]\n", "dht[0].listen"},
		{"dht: [{tenant: acme, listen: \":6881\", port: 1}]\n", "port"},
		{"dht: [{tenant: acme, listen: \":6881\"}]\n", "dht[0].secret_file: is required"},
	} {
		_, err := ParseConfig("origin.yaml", []byte(goodOriginConfig+tc.dht), nil)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.dht, err, tc.want)
		}
	}
}
