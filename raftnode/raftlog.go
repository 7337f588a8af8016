package raftnode

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Raft logs through hclog. newRaftLogger has it write JSON lines to raftLog, which hands each
// line to the node's slog.Logger at the line's own level, with its fields as attributes.
// Raft's info chatter (entering follower state, pipelining, ...) stays below the threshold;
// what an operator wants to see at info, a node electing a leader and who leads, comes from
// the lines rewritten below and from the leader observer (logLeadership).

// raftLogLevel is the lowest level of raft's own lines that reach the logger.
const raftLogLevel = hclog.Warn

func newRaftLogger(nodeID string, l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "raft " + nodeID,
		Level:      raftLogLevel,
		JSONFormat: true,
		Output:     raftLog{l},
	})
}

// rewrites turns raft's lines that are routine into info lines that say what is happening.
// raft warns "heartbeat timeout reached, starting election" at every start of a node, single
// or not; it is how an election begins.
var rewrites = map[string]string{
	"heartbeat timeout reached, starting election": "raft: electing a leader",
}

// raftLog is the io.Writer hclog writes to: one JSON object per Write.
type raftLog struct{ l *slog.Logger }

func (w raftLog) Write(p []byte) (int, error) {
	line, ok := decodeLine(p)
	if !ok {
		w.l.Warn("raft: " + strings.TrimSpace(string(p))) // not JSON: pass it on as it is
		return len(p), nil
	}
	msg, _ := line["@message"].(string)
	level := slogLevel(fmt.Sprint(line["@level"]))
	if m, ok := rewrites[msg]; ok {
		msg, level = m, slog.LevelInfo
	} else {
		msg = "raft: " + msg
	}
	attrs := []slog.Attr{}
	if m, ok := line["@module"].(string); ok {
		attrs = append(attrs, slog.String("module", m))
	}
	keys := make([]string, 0, len(line))
	for k := range line {
		if !strings.HasPrefix(k, "@") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		attrs = append(attrs, slog.Any(k, line[k]))
	}
	w.l.LogAttrs(context.Background(), level, msg, attrs...)
	return len(p), nil
}

// decodeLine decodes one of hclog's JSON lines; ok is false for anything else.
func decodeLine(p []byte) (line map[string]any, ok bool) {
	return line, json.Unmarshal(p, &line) == nil
}

// slogLevel maps hclog's level names to slog's.
func slogLevel(name string) slog.Level {
	switch name {
	case "trace", "debug":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "warn":
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

// logLeadership logs at info what a leader observation means for this node.
func (n *Node) logLeadership(lo raft.LeaderObservation) {
	term := n.raft.CurrentTerm()
	switch {
	case string(lo.LeaderID) == n.cfg.NodeID:
		n.log.Info(fmt.Sprintf("raft: this node leads term %d", term), "node", n.cfg.NodeID)
	case lo.LeaderID != "":
		n.log.Info(fmt.Sprintf("raft: following leader %s in term %d", lo.LeaderID, term), "node", n.cfg.NodeID)
	default:
		n.log.Info("raft: no leader", "node", n.cfg.NodeID, "term", term)
	}
}
