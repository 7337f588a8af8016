package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// metric reads one unlabelled gauge from a /metrics page.
func metric(t *testing.T, page []byte, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("%s not exported", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// `kengen serve` on a real 64 MiB filesystem, which raft-wal's own 64 MiB segments could not
// even start on. Another file fills it: writes fail with RESOURCE_EXHAUSTED naming the
// filesystem, checks and reads go on, the free-space gauges say what the alert reads; the
// file is deleted and writes succeed at once, without a restart; after a restart every
// acknowledged write is there.
func TestServeDiskFullHeals(t *testing.T) {
	mnt := kit.MountTmpfs(t, 64<<20)
	dir := filepath.Join(mnt, "kengen-data")
	n := startNode(t, dir)
	n.must(t, dir, "schema", "write", "testdata/crm.zed")
	var want []string
	for i := range 20 {
		n.must(t, dir, "relationship", "touch", fmt.Sprint("deal:", i), "owner", "user:sato")
		want = append(want, fmt.Sprintf("deal:%d#owner@user:sato", i))
	}

	last := n.must(t, dir, "relationship", "touch", "deal:last", "owner", "user:sato")
	want = append(want, "deal:last#owner@user:sato")
	token := last[strings.LastIndex(last, " ")+1 : len(last)-1] // "touched … at TOKEN\n"

	// Below the 16 MiB kept free for writes: writes are refused, every read answers.
	filler := kit.FillTo(t, mnt, 12<<20)
	code, _, errs := n.kengen(t, nil, "--data-dir", dir, "relationship", "touch", "deal:refused", "owner", "user:sato")
	if code != exitError || !strings.Contains(errs, "ResourceExhausted") || !strings.Contains(errs, "disk full") || !strings.Contains(errs, "filesystem mounted at "+mnt) {
		t.Fatalf("write on a full disk: exit %d, %q; want RESOURCE_EXHAUSTED naming the filesystem at %s", code, errs, mnt)
	}
	if code, _, errs := n.kengen(t, nil, "--data-dir", dir, "schema", "write", "testdata/crm.zed"); code != exitError || !strings.Contains(errs, "ResourceExhausted") {
		t.Fatalf("schema write on a full disk: exit %d, %q", code, errs)
	}
	if out := n.must(t, dir, "check", "deal:3", "view", "user:sato"); !strings.Contains(out, "true") { // fully consistent
		t.Errorf("check on a full disk: %q", out)
	}
	readAll := func() []string {
		t.Helper()
		return strings.Fields(n.must(t, dir, "relationship", "read", "deal"))
	}
	if got := readAll(); len(got) != len(want) {
		t.Errorf("read on a full disk: %d relationships, want %d", len(got), len(want))
	}
	page := fetch(t, "http://"+n.metricsAddr+"/metrics")
	if avail, minFree := metric(t, page, "kengen_store_filesystem_avail_bytes"), metric(t, page, "kengen_store_filesystem_min_free_bytes"); avail >= minFree || minFree != 16<<20 {
		t.Errorf("gauges on a full disk: avail %v, min free %v; want avail below the 16 MiB minimum", avail, minFree)
	}

	// Below the raft log's own floor (one segment and 1 MiB) reads still answer: a fully
	// consistent read confirms leadership with a heartbeat round, which writes nothing to the
	// log (only a term's first read barrier appends one, and this term's was above), and reads
	// at a token answer locally.
	filler2 := kit.FillTo(t, mnt, 2<<20)
	if out := n.must(t, dir, "check", "deal:3", "view", "user:sato"); !strings.Contains(out, "true") {
		t.Errorf("fully consistent check below the log's floor: %q", out)
	}
	if out := n.must(t, dir, "check", "deal:3", "view", "user:sato", "--at-least-as-fresh", token); !strings.Contains(out, "true") {
		t.Errorf("check at a token below the log's floor: %q", out)
	}
	if err := os.Remove(filler2); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	kit.Eventually(t, "a write succeeds once space is freed, without a restart", func() error {
		if code, _, errs := n.kengen(t, nil, "--data-dir", dir, "relationship", "touch", "deal:after", "owner", "user:sato"); code != exitOK {
			return fmt.Errorf("exit %d: %s", code, errs)
		}
		return nil
	})
	want = append(want, "deal:after#owner@user:sato")

	if code := n.stop(); code != exitOK {
		t.Fatalf("serve exited with %d:\n%s", code, n.out)
	}
	n = startNode(t, dir)
	slices.Sort(want) // the order relationship read prints
	if got := readAll(); !slices.Equal(got, want) {
		t.Errorf("after a restart:\n%v\nwant\n%v", got, want)
	}
}
