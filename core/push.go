package core

import (
	"github.com/custos-uem/custos/push"
)

// pushSender builds the push router: the providers whose credentials this
// Core holds send directly; the others go through the relay (which holds
// credentials on behalf of its Cores) when the Core has one. Nil when
// neither exists: devices are then reached by their scheduled check-ins
// and the agent's long poll.
func (m *Main) pushSender() (push.Sender, error) {
	senders, err := m.Config.Push.Senders()
	if err != nil {
		return nil, err
	}
	for _, p := range []string{push.APNs, push.FCM, push.WNS} {
		if senders[p] != nil {
			m.pushProviders = append(m.pushProviders, p)
		}
	}
	if m.Relay != nil {
		for _, p := range []string{push.APNs, push.FCM, push.WNS} {
			if senders[p] == nil {
				senders[p] = m.Relay
			}
		}
	}
	if len(senders) == 0 {
		return nil, nil
	}
	return push.NewRouter(senders, push.NewPrometheusMetrics(m.Registry)), nil
}
