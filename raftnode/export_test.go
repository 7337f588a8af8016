package raftnode

// SetTestApplyErr makes n, while it leads, answer every write with fn's error (when not nil)
// instead of proposing it: the error-kind tests send each sentinel back through a follower.
func SetTestApplyErr(n *Node, fn func() error) { n.testApplyErr.Store(&fn) }
