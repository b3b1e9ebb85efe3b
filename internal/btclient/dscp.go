package btclient

import (
	"fmt"
	"strconv"
	"strings"
)

// dscpNames are the DiffServ code points an operator writes by name:
// class selectors (RFC 2474), assured forwarding (RFC 2597), expedited
// forwarding (RFC 3246), voice admit (RFC 5865) and lower effort (RFC
// 8622, the scavenger class bulk peer traffic belongs in).
var dscpNames = func() map[string]int {
	m := map[string]int{"EF": 46, "VA": 44, "LE": 1}
	for i := 0; i <= 7; i++ {
		m["CS"+strconv.Itoa(i)] = 8 * i
	}
	for x := 1; x <= 4; x++ {
		for y := 1; y <= 3; y++ {
			m[fmt.Sprintf("AF%d%d", x, y)] = 8*x + 2*y
		}
	}
	return m
}()

// ParseDSCP reads a DiffServ code point: a name (CS0-CS7, AF11-AF43, EF,
// VA, LE; any case) or a number 0-63. "" is -1: leave the sockets alone.
func ParseDSCP(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return -1, nil
	}
	if v, ok := dscpNames[strings.ToUpper(s)]; ok {
		return v, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("DSCP %q: want a name (CS0-CS7, AF11-AF43, EF, VA, LE) or a number 0-63", s)
	}
	return n, nil
}
