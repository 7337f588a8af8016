package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	kit "github.com/kengen/kengen/raftnode/raftnodetest"
)

// TestReadmeCluster runs the README's "A cluster" block as a user would, through bash in an
// empty directory: the `serve` lines as background processes (the second one reads the first
// node's key from d1, as written), then the `cluster status` line until it lists both nodes
// with a leader. Only the fixed ports are changed, to free ones (the default endpoint too), so
// that the test can run beside others; `./kengen` is this test binary.
func TestReadmeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two kengen processes; skipped in -short mode")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	doc, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	lines := readmeSection(string(doc), "## A cluster")
	if len(lines) != 3 {
		t.Fatalf("the README's cluster block has %d commands, want 3 (two serves and a status): %q", len(lines), lines)
	}
	dir := t.TempDir()
	wrapper := fmt.Sprintf("#!/bin/sh\nexec env %s=1 %q \"$@\"\n", execMainEnv, os.Args[0])
	if err := os.WriteFile(filepath.Join(dir, "kengen"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{}
	addr := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	free := func(a string) string {
		if p, ok := ports[a]; ok {
			return p
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[a] = l.Addr().String()
		return ports[a]
	}
	shell := func(line string) *exec.Cmd {
		cmd := exec.Command(bash, "-c", addr.ReplaceAllStringFunc(line, free))
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		return cmd
	}

	for i, line := range lines[:2] {
		if !strings.HasPrefix(line, "./kengen serve ") {
			t.Fatalf("command %d of the cluster block is %q, want a serve", i+1, line)
		}
		if i == 1 {
			// The second node reads the first one's key from d1 as it starts.
			kit.Eventually(t, "the first node writes its key", func() error {
				_, err := os.Stat(filepath.Join(dir, "d1", "preshared-key"))
				return err
			})
		}
		cmd := shell(line)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			<-exited
			if t.Failed() {
				t.Logf("%s:\n%s", line, out.String())
			}
		})
	}

	// The status line relies on the default endpoint, 127.0.0.1:50051, which is the first
	// node's address in the README; here that address is a free port instead.
	status := lines[2]
	var last string
	kit.Eventually(t, "cluster status lists both nodes with a leader", func() error {
		cmd := shell(status)
		cmd.Env = append(os.Environ(), "KENGEN_ENDPOINT="+free(defaultGRPCAddr))
		out, err := cmd.CombinedOutput()
		last = string(out)
		if err != nil {
			return fmt.Errorf("%s: %w: %s", status, err, out)
		}
		for _, want := range []string{"node n1 (Leader), leader n1", "\nn1  Leader", "\nn2  Follower"} {
			if !strings.Contains(last, want) {
				return fmt.Errorf("no %q in:\n%s", want, last)
			}
		}
		if strings.Contains(last, "unreachable") {
			return errors.New("a node is unreachable:\n" + last)
		}
		return nil
	})
	t.Logf("%s\n%s", status, last)
}

// readmeSection returns the commands of the first indented code block after heading: each
// line indented by four spaces, with backslash continuations joined.
func readmeSection(doc, heading string) []string {
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return nil
	}
	var cmds []string
	var cur strings.Builder
	started := false
	for _, line := range strings.Split(rest, "\n") {
		code, indented := strings.CutPrefix(line, "    ")
		if !indented {
			if started && line == "" && cur.Len() == 0 {
				break
			}
			continue
		}
		started = true
		code = strings.TrimSpace(code)
		if c, cont := strings.CutSuffix(code, "\\"); cont {
			cur.WriteString(c)
			continue
		}
		cur.WriteString(code)
		cmds = append(cmds, cur.String())
		cur.Reset()
	}
	return cmds
}
