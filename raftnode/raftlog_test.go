package raftnode

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestRaftLogLevels: raft's hclog lines reach slog at their own level with their fields, the
// election warning becomes an info line, and info chatter below the threshold is dropped.
func TestRaftLogLevels(t *testing.T) {
	var buf bytes.Buffer
	hl := newRaftLogger("n1", slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	hl.Error("failed to appendEntries to", "peer", "n2", "error", errors.New("dial tcp: connection refused"))
	hl.Warn("heartbeat timeout reached, starting election", "last-leader-id", "")
	hl.Warn("failed to contact quorum of nodes, stepping down")
	hl.Info("entering follower state")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		`level=ERROR msg="raft: failed to appendEntries to" module="raft n1" error="dial tcp: connection refused" peer=n2`,
		`level=INFO msg="raft: electing a leader" module="raft n1" last-leader-id=""`,
		`level=WARN msg="raft: failed to contact quorum of nodes, stepping down" module="raft n1"`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant ...%s", i, lines[i], w)
		}
	}
}
