package main

import (
	"context"
	"fmt"
	"net"

	"github.com/kengen/kengen/api"
)

// httpListener is serve's HTTP listener (--http-addr): SpiceDB's HTTP API and AuthZEN over
// the gRPC server, with its token and TLS.
type httpListener struct {
	srv  *api.HTTPServer
	url  string
	done chan error
}

// startHTTP serves srv's HTTP APIs on addr; it returns nil when addr is empty.
func startHTTP(srv *api.Server, addr string) (*httpListener, error) {
	if addr == "" {
		return nil, nil
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("HTTP listener (--http-addr): %w", err)
	}
	h, err := api.NewHTTP(srv, api.HTTPOptions{})
	if err != nil {
		lis.Close()
		return nil, err
	}
	scheme := "http"
	if h.TLS() {
		scheme = "https"
	}
	web := &httpListener{srv: h, url: scheme + "://" + lis.Addr().String(), done: make(chan error, 1)}
	go func() { web.done <- h.Serve(lis) }()
	return web, nil
}

// stopAsync stops the listener in the background and reports how its serving ended. A nil
// listener is stopped already.
func (w *httpListener) stopAsync(ctx context.Context) <-chan error {
	stopped := make(chan error, 1)
	go func() { stopped <- w.stop(ctx) }()
	return stopped
}

func (w *httpListener) stop(ctx context.Context) error {
	if w == nil {
		return nil
	}
	w.srv.Stop(ctx)
	return <-w.done
}
