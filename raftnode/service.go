package raftnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/kengen/kengen/store"
)

// The cluster service is kengen's own, served next to the Authzed API on every node's gRPC
// port. Every method takes and returns a google.protobuf.BytesValue, so no generated code is
// needed: Apply carries an encoded Command in and a JSON applyReply out, ApplyBatch several
// commands in and their replies out (forward.go); the others carry JSON (adminRequest in,
// adminReply out). Errors of the operation travel inside the reply
// (errorReply), so that a forwarded write returns the leader's store error unchanged.
const serviceName = "kengen.cluster.v1.Cluster"

const (
	methodApply     = "Apply"
	methodReadIndex = "ReadIndex"
	methodStatus    = "Status"
	methodJoin      = "Join"
	methodRemove    = "Remove"
	methodTransfer  = "TransferLeader"
)

type adminRequest struct {
	ID       string `json:"id,omitempty"`
	RaftAddr string `json:"raft_addr,omitempty"`
	GRPCAddr string `json:"grpc_addr,omitempty"`
}

type adminReply struct {
	Revision uint64      `json:"revision,omitempty"`
	Status   *Status     `json:"status,omitempty"`
	Error    *errorReply `json:"error,omitempty"`
}

type applyReply struct {
	Revision uint64      `json:"revision"`
	Deleted  int         `json:"deleted,omitempty"`
	Partial  bool        `json:"partial,omitempty"`
	Error    *errorReply `json:"error,omitempty"`
}

// errorReply carries an error across nodes: its kind's name (errors.go) and its message.
type errorReply struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func toErrorReply(err error) *errorReply {
	if err == nil {
		return nil
	}
	kind := KindOf(err)
	if kind == "" {
		kind = "internal"
	}
	return &errorReply{Kind: kind, Message: err.Error()}
}

func (e *errorReply) err() error {
	if e == nil {
		return nil
	}
	return &remoteError{sentinel: sentinelOf(e.Kind), msg: e.Message}
}

// remoteError is an error another node returned: its message, and its sentinel for errors.Is.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

// ServiceDesc describes the cluster service for grpc.Server.RegisterService; its
// implementation is *Node.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		method(methodApply, func(ctx context.Context, n *Node, in []byte) any {
			res, err := n.applyLocal(ctx, in) // forwarded: only the leader proposes
			return &applyReply{Revision: uint64(res.Revision), Deleted: res.Deleted, Partial: res.Partial, Error: toErrorReply(err)}
		}),
		method(methodApplyBatch, func(ctx context.Context, n *Node, in []byte) any {
			return n.applyBatchLocal(ctx, in) // forward.go: a follower's concurrent writes
		}),
		method(methodReadIndex, func(ctx context.Context, n *Node, _ []byte) any {
			rev, err := n.readIndexLocal(ctx)
			return &adminReply{Revision: uint64(rev), Error: toErrorReply(err)}
		}),
		method(methodStatus, func(_ context.Context, n *Node, _ []byte) any {
			st, err := n.Status()
			return &adminReply{Status: &st, Error: toErrorReply(err)}
		}),
		adminMethod(methodJoin, func(ctx context.Context, n *Node, r adminRequest) error {
			return n.AddVoter(ctx, r.ID, r.RaftAddr, r.GRPCAddr)
		}),
		adminMethod(methodRemove, func(ctx context.Context, n *Node, r adminRequest) error {
			return n.RemoveServer(ctx, r.ID)
		}),
		adminMethod(methodTransfer, func(ctx context.Context, n *Node, r adminRequest) error {
			return n.TransferLeadership(ctx, r.ID)
		}),
	},
	Metadata: "kengen/raftnode/service.go",
}

func adminMethod(name string, fn func(context.Context, *Node, adminRequest) error) grpc.MethodDesc {
	return method(name, func(ctx context.Context, n *Node, in []byte) any {
		var r adminRequest
		if err := json.Unmarshal(in, &r); err != nil {
			return &adminReply{Error: &errorReply{Kind: "invalid", Message: fmt.Sprintf("raftnode: bad request: %v", err)}}
		}
		return &adminReply{Error: toErrorReply(fn(ctx, n, r))}
	})
}

func method(name string, fn func(context.Context, *Node, []byte) any) grpc.MethodDesc {
	full := "/" + serviceName + "/" + name
	call := func(ctx context.Context, srv any, in *wrapperspb.BytesValue) (*wrapperspb.BytesValue, error) {
		out, err := json.Marshal(fn(ctx, srv.(*Node), in.GetValue()))
		if err != nil {
			return nil, err
		}
		return wrapperspb.Bytes(out), nil
	}
	return grpc.MethodDesc{
		MethodName: name,
		Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.BytesValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			if icpt == nil {
				return call(ctx, srv, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: full}, func(ctx context.Context, req any) (any, error) {
				return call(ctx, srv, req.(*wrapperspb.BytesValue))
			})
		},
	}
}

// peers holds client connections to other nodes' cluster service.
type peers struct {
	token string
	opts  []grpc.DialOption

	mu struct {
		sync.Mutex
		conns map[string]*grpc.ClientConn
	}
}

// peerBackoff paces reconnection to a peer: a leader that restarts is reached again within
// a second or two, not after grpc's default backoff of up to two minutes.
var peerBackoff = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 2 * time.Second,
})

func newPeers(token string, opts []grpc.DialOption) *peers {
	if opts == nil {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	opts = append(slices.Clip(opts), peerBackoff)
	p := &peers{token: token, opts: opts}
	p.mu.conns = map[string]*grpc.ClientConn{}
	return p
}

func (p *peers) conn(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.mu.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, p.opts...)
	if err != nil {
		return nil, err
	}
	p.mu.conns[addr] = c
	return c, nil
}

// connectReadyWait bounds how long connected waits for a connection being made.
const connectReadyWait = 500 * time.Millisecond

// connected returns nil once the connection to addr is ready, so that a write is sent only
// to a peer that is up: an error means nothing was sent. A connection that keeps failing
// (the peer is down) is an error at once; the caller waits and looks for the leader again.
func (p *peers) connected(ctx context.Context, addr string) error {
	c, err := p.conn(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, connectReadyWait)
	defer cancel()
	for {
		s := c.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.TransientFailure, connectivity.Shutdown:
			c.Connect()
			return fmt.Errorf("cannot connect (%s)", s)
		case connectivity.Idle:
			c.Connect()
		}
		if !c.WaitForStateChange(ctx, s) {
			return fmt.Errorf("still connecting (%s)", s)
		}
	}
}

func (p *peers) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, c := range p.mu.conns {
		errs = append(errs, c.Close())
	}
	p.mu.conns = nil
	return errors.Join(errs...)
}

// call invokes a cluster method on addr and decodes the JSON reply into out.
func (p *peers) call(ctx context.Context, addr, name string, in []byte, out any) error {
	c, err := p.conn(addr)
	if err != nil {
		return fmt.Errorf("%w: reaching %s: %w", ErrUnavailable, addr, err)
	}
	if p.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.token)
	}
	reply := new(wrapperspb.BytesValue)
	if err := c.Invoke(ctx, "/"+serviceName+"/"+name, wrapperspb.Bytes(in), reply); err != nil {
		return fmt.Errorf("%w: %s on %s: %w", ErrUnavailable, name, addr, err)
	}
	if err := json.Unmarshal(reply.GetValue(), out); err != nil {
		return fmt.Errorf("raftnode: bad %s reply from %s: %w", name, addr, err)
	}
	return nil
}

func (p *peers) readIndex(ctx context.Context, addr string) (store.Revision, error) {
	var r adminReply
	if err := p.call(ctx, addr, methodReadIndex, nil, &r); err != nil {
		return 0, err
	}
	return store.Revision(r.Revision), r.Error.err()
}

func (p *peers) admin(ctx context.Context, addr, name string, req adminRequest) error {
	in, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var r adminReply
	if err := p.call(ctx, addr, name, in, &r); err != nil {
		return err
	}
	return r.Error.err()
}

// RemoteStatus asks the node at grpcAddr for its Status (the CLI's `cluster status`).
func RemoteStatus(ctx context.Context, grpcAddr, token string, opts []grpc.DialOption) (Status, error) {
	p := newPeers(token, opts)
	defer func() { _ = p.close() }()
	var r adminReply
	if err := p.call(ctx, grpcAddr, methodStatus, nil, &r); err != nil {
		return Status{}, err
	}
	if r.Status == nil {
		return Status{}, r.Error.err()
	}
	return *r.Status, r.Error.err()
}

// RemoteAdmin asks the node at grpcAddr to remove member id ("remove") or to hand leadership
// to id, any voter when id is "" ("transfer-leader").
func RemoteAdmin(ctx context.Context, grpcAddr, token string, opts []grpc.DialOption, op, id string) error {
	name := map[string]string{"remove": methodRemove, "transfer-leader": methodTransfer}[op]
	if name == "" {
		return fmt.Errorf("raftnode: unknown admin operation %q", op)
	}
	p := newPeers(token, opts)
	defer func() { _ = p.close() }()
	return p.admin(ctx, grpcAddr, name, adminRequest{ID: id})
}
