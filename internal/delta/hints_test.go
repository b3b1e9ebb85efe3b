package delta

import "testing"

func TestValidate(t *testing.T) {
	ok := Range{Off: 0, Len: 10, BasePath: "a/b", BaseOff: 5}
	cases := []struct {
		name string
		h    Hints
		want bool
	}{
		{"good", Hints{Base: "1.0", Ranges: []Range{ok, {Off: 10, Len: 5, BasePath: "c"}}}, true},
		{"no base", Hints{Ranges: []Range{ok}}, false},
		{"overlap", Hints{Base: "1", Ranges: []Range{ok, {Off: 9, Len: 5, BasePath: "c"}}}, false},
		{"out of order", Hints{Base: "1", Ranges: []Range{{Off: 20, Len: 1, BasePath: "c"}, ok}}, false},
		{"past end", Hints{Base: "1", Ranges: []Range{{Off: 95, Len: 10, BasePath: "c"}}}, false},
		{"empty", Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 0, BasePath: "c"}}}, false},
		{"escape", Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 1, BasePath: "../x"}}}, false},
		{"absolute", Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 1, BasePath: "/etc/passwd"}}}, false},
		{"unclean", Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 1, BasePath: "a/./b"}}}, false},
		{"negative base", Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 1, BasePath: "a", BaseOff: -1}}}, false},
		{"base overflow", Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 10, BasePath: "a", BaseOff: 1<<63 - 5}}}, false},
		{"overflow", Hints{Base: "1", Ranges: []Range{{Off: 1, Len: 1<<63 - 1, BasePath: "a"}}}, false},
	}
	for _, c := range cases {
		if err := c.h.Validate(100); (err == nil) != c.want {
			t.Errorf("%s: Validate = %v, want ok=%v", c.name, err, c.want)
		}
	}
}

func TestCovered(t *testing.T) {
	h := Hints{Base: "1", Ranges: []Range{{Off: 0, Len: 10, BasePath: "a"}, {Off: 20, Len: 10, BasePath: "b"}, {Off: 40, Len: 5, BasePath: "c"}}}
	for _, c := range []struct{ off, n, want int64 }{
		{0, 10, 10}, {5, 20, 10}, {10, 10, 0}, {0, 100, 25}, {25, 20, 10}, {44, 1, 1}, {45, 10, 0},
	} {
		if got := h.Covered(c.off, c.n); got != c.want {
			t.Errorf("Covered(%d, %d) = %d, want %d", c.off, c.n, got, c.want)
		}
	}
}
