package pgsync

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	transactions prometheus.Counter
	changes      prometheus.Counter
	refused      *prometheus.CounterVec
	retries      prometheus.Counter
	lagBytes     prometheus.Gauge
	lagSeconds   prometheus.Gauge
	position     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		transactions: prometheus.NewCounter(prometheus.CounterOpts{Name: "kengen_sync_transactions_applied_total",
			Help: "Database transactions whose relationship changes the endpoint acknowledged."}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{Name: "kengen_sync_changes_applied_total",
			Help: "Relationship updates (TOUCH and DELETE) the endpoint acknowledged, the initial copy included."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "kengen_sync_refused_total",
			Help: "Changes the endpoint refused and sync skipped (--skip-refused), by table."}, []string{"table"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "kengen_sync_write_retries_total",
			Help: "Writes retried because the endpoint was unavailable."}),
		lagBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kengen_sync_lag_bytes",
			Help: "WAL bytes between the server's last reported position and what kengen holds."}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kengen_sync_lag_seconds",
			Help: "Seconds between the commit of the last applied transaction and its acknowledgement by the endpoint."}),
		position: prometheus.NewGauge(prometheus.GaugeOpts{Name: "kengen_sync_position_lsn",
			Help: "The WAL position (as a number) up to which every change is in kengen."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.transactions, m.changes, m.refused, m.retries, m.lagBytes, m.lagSeconds, m.position} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
