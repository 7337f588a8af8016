package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and unmounts it at cleanup. It
// skips the test when it cannot mount (not root, no mount permission in a container).
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a %d MiB tmpfs for a real full filesystem (needs root): %v: %s", size>>20, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillTo allocates a file in dir that leaves about leave bytes free on its filesystem, and
// returns its path: another program filling the disk.
func fillTo(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	if free <= leave {
		t.Fatalf("%s has %d bytes free, already below %d", dir, free, leave)
	}
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, free-leave); err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
	return path
}

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
	mnt := mountTmpfs(t, 64<<20)
	dir := filepath.Join(mnt, "kengen-data")
	n := startNode(t, dir)
	n.must(t, dir, "schema", "write", "testdata/crm.zed")
	var want []string
	for i := range 20 {
		n.must(t, dir, "relationship", "touch", fmt.Sprint("deal:", i), "owner", "user:sato")
		want = append(want, fmt.Sprintf("deal:%d#owner@user:sato", i))
	}

	filler := fillTo(t, mnt, 4<<20)
	code, _, errs := n.kengen(t, nil, "--data-dir", dir, "relationship", "touch", "deal:refused", "owner", "user:sato")
	if code != exitError || !strings.Contains(errs, "ResourceExhausted") || !strings.Contains(errs, "disk full") || !strings.Contains(errs, "filesystem mounted at "+mnt) {
		t.Fatalf("write on a full disk: exit %d, %q; want RESOURCE_EXHAUSTED naming the filesystem at %s", code, errs, mnt)
	}
	if code, _, errs := n.kengen(t, nil, "--data-dir", dir, "schema", "write", "testdata/crm.zed"); code != exitError || !strings.Contains(errs, "ResourceExhausted") {
		t.Fatalf("schema write on a full disk: exit %d, %q", code, errs)
	}
	if out := n.must(t, dir, "check", "deal:3", "view", "user:sato"); !strings.Contains(out, "true") {
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

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	n.must(t, dir, "relationship", "touch", "deal:after", "owner", "user:sato") // no restart
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
