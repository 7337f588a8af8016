package raftnode

// SetTestApplyErr makes n, while it leads, answer every write with fn's error (when not nil)
// instead of proposing it: the error-kind tests send each sentinel back through a follower.
// A nil fn ends it.
func SetTestApplyErr(n *Node, fn func() error) {
	if fn == nil {
		n.testApplyErr.Store(nil)
		return
	}
	n.testApplyErr.Store(&fn)
}
