package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// unmatchedRoute labels requests no route served (404s, probes of random paths): request
// paths are not trusted to bound the label set.
const unmatchedRoute = "unmatched"

// httpMetrics are the HTTP listener's per-route metrics (docs/metrics.md):
// kengen_http_requests_total{route, code} and kengen_http_request_duration_seconds{route}.
// The gRPC metrics count the same requests by gRPC method and code as well, since every HTTP
// request becomes a gRPC call on the loopback connection.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "kengen", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests by route (the path pattern served) and HTTP status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "kengen", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from an HTTP request's headers to the end of its response, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering HTTP metrics: %w", err)
		}
	}
	return m, nil
}

// routeKey carries a request's *routeLabel, which the route that serves it fills in.
type routeKey struct{}

type routeLabel struct{ route string }

func setRoute(ctx context.Context, route string) {
	if l, ok := ctx.Value(routeKey{}).(*routeLabel); ok {
		l.route = route
	}
}

// observe wraps next so that each request is counted under its route once it has answered.
func (m *httpMetrics) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		label := &routeLabel{route: unmatchedRoute}
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), routeKey{}, label)))
		m.requests.WithLabelValues(label.route, strconv.Itoa(rw.code)).Inc()
		m.duration.WithLabelValues(label.route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter records the status code written. It passes Flush on, which the gateway's
// streams need.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
