// Package faultproxy is a TCP proxy for fault tests: it forwards every connection it accepts
// to one target address, and can cut the link (closing the connections it carries and
// refusing new ones) and restore it. Put one on each direction of each link between nodes
// (node A dials B through the proxy A→B, B dials A through B→A), and a test can partition a
// node away in both directions, or in one, and heal it.
//
// It is written for kengen's tests rather than taken from a library: the tests need only
// cut and restore, which is a few dozen lines, while the maintained proxy libraries
// (toxiproxy) bring an HTTP control plane and its dependencies into the module.
package faultproxy

import (
	"io"
	"net"
	"sync"
)

// Proxy forwards connections from its listener to a target.
type Proxy struct {
	lis    net.Listener
	target string
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		cut    bool
		closed bool
		conns  map[net.Conn]struct{}
	}
}

// Listen starts a proxy on a free 127.0.0.1 port that forwards to target.
func Listen(target string) (*Proxy, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{lis: lis, target: target}
	p.mu.conns = make(map[net.Conn]struct{})
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, the one nodes should advertise.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Cut breaks the link: open connections are closed and new ones are closed on accept, so
// the peers on both sides see a dead network until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.cut = true
	for c := range p.mu.conns {
		_ = c.Close()
	}
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mu.cut = false
}

// Close stops the proxy and closes every connection it carries.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.mu.closed = true
	for c := range p.mu.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.lis.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

// track registers conns as carried by the proxy; it reports false (and closes them) when the
// link is cut or the proxy closed.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.cut || p.mu.closed {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.mu.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.mu.conns, c)
		_ = c.Close()
	}
}

func (p *Proxy) forward(in net.Conn) {
	defer p.wg.Done()
	if !p.track(in) {
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		p.untrack(in)
		return
	}
	if !p.track(out) {
		p.untrack(in)
		return
	}
	done := make(chan struct{}, 2)
	// When either direction ends (EOF, an error, or a Cut closing the connections), both
	// connections close so the other direction ends too.
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		p.untrack(in, out)
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}
