package main

import (
	"fmt"
	"net/http"
)

// mountHealth serves the probes next to /metrics on the metrics listener: /healthz (liveness:
// the process answers) and /readyz (readiness: ready() returns nil). Both answer 200 with
// "ok", or 503 with the reason, as plain text.
func mountHealth(mux *http.ServeMux, ready func() error) {
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
