package eventlog

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the consumer metrics of every subscription given them. One
// Metrics is shared by all the subscriptions of a process.
type Metrics struct {
	processed *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	lag       *prometheus.GaugeVec
}

// Results counted by axon_eventlog_processed_total.
const (
	resultOK        = "ok"
	resultError     = "error" // retried
	resultPermanent = "permanent"
)

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered). Registering twice on one registry reuses the first
// collectors, so components built twice in a test share them.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "axon",
			Subsystem: "eventlog",
			Name:      "processed_total",
			Help:      "Messages handled, by topic, group and result (ok, error: retried, permanent: dropped).",
		}, []string{"topic", "group", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "axon",
			Subsystem: "eventlog",
			Name:      "handler_seconds",
			Help:      "Time spent in message handlers, by topic and group.",
			Buckets:   prometheus.ExponentialBuckets(0.0005, 4, 9), // 0.5ms .. 33s
		}, []string{"topic", "group"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "axon",
			Subsystem: "eventlog",
			Name:      "consumer_lag",
			Help:      "Messages not yet acked by the group: not yet delivered plus delivered and pending ack. Partition is empty unless the group is partitioned.",
		}, []string{"topic", "group", "partition"}),
	}
	if reg != nil {
		m.processed = register(reg, m.processed)
		m.latency = register(reg, m.latency)
		m.lag = register(reg, m.lag)
	}
	return m
}

// register registers c, or returns the collector already registered in its
// place.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// Another collector with the same name but a different shape: keep
		// ours unregistered rather than panic at start-up.
	}
	return c
}
