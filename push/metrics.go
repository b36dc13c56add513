package push

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is told about sends and retries. Labels are bounded: provider is
// one of three names, outcome one of Outcome's values, reason one of a few
// fixed words — never a token or a provider's free text.
type Metrics interface {
	ObserveSend(provider, outcome string, d time.Duration)
	ObserveRetry(provider, reason string)
}

// PrometheusMetrics implements Metrics with Prometheus collectors.
type PrometheusMetrics struct {
	sends   *prometheus.CounterVec
	latency *prometheus.HistogramVec
	retries *prometheus.CounterVec
}

// NewPrometheusMetrics registers the push metrics on reg.
func NewPrometheusMetrics(reg prometheus.Registerer) *PrometheusMetrics {
	m := &PrometheusMetrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_push_sends_total",
			Help: "Push hints sent, by provider and outcome.",
		}, []string{"provider", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "custos_push_send_duration_seconds",
			Help:    "Time to send one push hint, retries included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custos_push_retries_total",
			Help: "Push attempts retried, by provider and reason.",
		}, []string{"provider", "reason"}),
	}
	reg.MustRegister(m.sends, m.latency, m.retries)
	return m
}

// ObserveSend counts one send.
func (m *PrometheusMetrics) ObserveSend(provider, outcome string, d time.Duration) {
	m.sends.WithLabelValues(provider, outcome).Inc()
	m.latency.WithLabelValues(provider).Observe(d.Seconds())
}

// ObserveRetry counts one retry.
func (m *PrometheusMetrics) ObserveRetry(provider, reason string) {
	m.retries.WithLabelValues(provider, reason).Inc()
}
