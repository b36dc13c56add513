package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/custos-uem/custos/policy"
)

// configuration is the answer of GET /devices/{id}/configuration: the
// device's effective configuration, secrets redacted, each item with what
// the device reported about it.
type configuration struct {
	DeviceID string `json:"device_id"`
	// Version is the current effective version; DeviceVersion the one the
	// device last acknowledged.
	Version         string       `json:"version"`
	DeviceVersion   string       `json:"device_version"`
	UpToDate        bool         `json:"up_to_date"`
	ReportedVersion string       `json:"reported_version,omitempty"`
	Items           []configItem `json:"items"`
}

type configItem struct {
	policy.Item
	Status string     `json:"status"` // pending, applied or failed
	Error  string     `json:"error,omitempty"`
	At     *time.Time `json:"at,omitempty"`
}

// redactItem replaces the item's secret settings: the payload is the
// policy's settings, so the policy's own redaction applies.
func redactItem(it policy.Item) (policy.Item, error) {
	raw, err := json.Marshal(it.Payload)
	if err != nil {
		return it, fmt.Errorf("api: payload of %s: %w", it.ID, err)
	}
	r := policy.Redacted(&policy.Policy{ID: it.ID, Kind: it.Kind, Settings: raw})
	var payload map[string]any
	if err := json.Unmarshal(r.Settings, &payload); err != nil {
		return it, fmt.Errorf("api: payload of %s: %w", it.ID, err)
	}
	it.Payload = payload
	return it, nil
}

func (a *API) deviceConfiguration(c *call) error {
	d, err := a.device(c)
	if err != nil {
		return err
	}
	eff, err := a.d.Policies.Effective(c.ctx(), d)
	if err != nil {
		return err
	}
	st, err := a.d.Policies.Status(c.ctx(), d)
	if err != nil {
		return err
	}
	byID := make(map[string]policy.ItemStatus, len(st.Items))
	for _, s := range st.Items {
		byID[s.ID] = s
	}
	out := configuration{DeviceID: d.ID, Version: eff.Version, DeviceVersion: st.DeviceVersion, UpToDate: st.UpToDate,
		ReportedVersion: st.ReportedVersion, Items: make([]configItem, 0, len(eff.Items))}
	for _, it := range eff.Items {
		it, err := redactItem(it)
		if err != nil {
			return err
		}
		ci := configItem{Item: it, Status: policy.ItemPending}
		// Effective and Status read separately: an item changed in
		// between shows pending, which is what the device will see.
		if s, ok := byID[it.ID]; ok && s.Revision == it.Revision {
			ci.Status, ci.Error, ci.At = s.Status, s.Error, s.At
		}
		out.Items = append(out.Items, ci)
	}
	return c.reply(http.StatusOK, out)
}

func (a *API) deviceCompliance(c *call) error {
	d, err := a.device(c)
	if err != nil {
		return err
	}
	st, err := a.d.Compliance.State(c.ctx(), d.ID)
	if err != nil {
		return notFound(err, ErrDeviceNotFound)
	}
	return c.reply(http.StatusOK, st)
}
