package raftnode

import (
	"sync"

	"github.com/hashicorp/raft"
)

// drainingTransport is raft's network transport with one change: Node.Close can wait for the
// heartbeats in flight before it closes the log.
//
// raft answers heartbeats on the transport's connection goroutines, not on its own (the fast
// path of SetHeartbeatHandler), after checking that it is not shut down. A heartbeat that
// passed that check just before Shutdown goes on to save a new term in the stable store after
// Shutdown has returned, and raft panics when the save fails on a log Close has just closed
// ("failed to save current term: closed", seen once in a full test run). drain waits for
// such heartbeats and turns later ones away, so the log is closed only once nothing of raft's
// can write to it.
type drainingTransport struct {
	*raft.NetworkTransport
	mu struct {
		sync.RWMutex
		drained bool
	}
}

// SetHeartbeatHandler implements raft.Transport: cb runs unless the transport is drained.
func (t *drainingTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	if cb == nil {
		t.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.mu.RLock()
		defer t.mu.RUnlock()
		if t.mu.drained {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		cb(rpc)
	})
}

// drain waits for the heartbeats being answered and refuses every later one.
func (t *drainingTransport) drain() {
	t.mu.Lock()
	t.mu.drained = true
	t.mu.Unlock()
}
