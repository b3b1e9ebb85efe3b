package audit

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestAppendRotateRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, 600, 3)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for i := range 60 {
		action := []string{"publish", "promote", "activate"}[i%3]
		if err := l.Append(Event{Time: base.Add(time.Duration(i) * time.Minute), Action: action, Release: "app", Version: "1." + string(rune('0'+i%10))}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() > 600 || st.Mode().Perm() != 0o640 {
		t.Fatalf("current file: %v size %d mode %v", err, st.Size(), st.Mode().Perm())
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Fatal("rotation kept more files than asked")
	}
	all, err := Read(path, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) == 0 || len(all) >= 60 {
		t.Fatalf("read %d events; rotation should keep some, not all", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Before(all[i-1].Time) {
			t.Fatal("events out of order")
		}
	}
	if last := all[len(all)-1]; !last.Time.Equal(base.Add(59 * time.Minute)) {
		t.Fatalf("newest event %v missing", last.Time)
	}
	pub, _ := Read(path, Filter{Action: "publish", Since: base.Add(10 * time.Minute)})
	for _, e := range pub {
		if e.Action != "publish" || e.Time.Before(base.Add(10*time.Minute)) {
			t.Fatalf("filter let through %+v", e)
		}
	}
	if len(pub) == 0 {
		t.Fatal("filter found nothing")
	}
}

func TestReadRefusesCorruptLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(path, []byte(`{"action":"publish","time":"2026-11-25T00:00:00Z"}`+"\n{not json\n"), 0o640)
	if _, err := Read(path, Filter{}); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("corrupt line: %v", err)
	}
}

func TestConcurrentAppendsStayWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, _ := Open(path, 0, 0)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Append(Event{Action: "activate", Release: strings.Repeat("x", i)})
		}()
	}
	wg.Wait()
	events, err := Read(path, Filter{})
	if err != nil || len(events) != 50 {
		t.Fatalf("%d events, %v", len(events), err)
	}
}

func TestAppendNeedsAction(t *testing.T) {
	l, _ := Open(filepath.Join(t.TempDir(), "a"), 0, 0)
	if err := l.Append(Event{}); err == nil {
		t.Fatal("accepted an event without an action")
	}
}
