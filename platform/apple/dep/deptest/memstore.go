package deptest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/platform/apple/dep"
)

// MemStore is a dep.Store in memory for tests of the service (sqlstore's
// is checked by RunStore). Users are whatever Users holds (nil: any).
type MemStore struct {
	mu       sync.Mutex
	settings map[string]string
	devices  map[string]*dep.Device
	Users    map[string]bool
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{settings: map[string]string{}, devices: map[string]*dep.Device{}}
}

func (m *MemStore) DEPSetting(_ context.Context, key string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.settings[key]
	if !ok {
		return "", errs.ErrNotFound
	}
	return v, nil
}

func (m *MemStore) PutDEPSetting(_ context.Context, key, value string, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if value == "" {
		delete(m.settings, key)
	} else {
		m.settings[key] = value
	}
	return nil
}

func (m *MemStore) ClaimDEPSetting(_ context.Context, key, value string, _ time.Time) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.settings[key]; ok {
		return v, nil
	}
	m.settings[key] = value
	return value, nil
}

func (m *MemStore) UpsertDEPDevices(_ context.Context, devs []dep.Device) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range devs {
		if old := m.devices[d.Serial]; old != nil {
			d.ProfileUUID, d.AssignStatus, d.AssignedAt, d.UserID = old.ProfileUUID, old.AssignStatus, old.AssignedAt, old.UserID
			d.EnrolledDeviceID, d.EnrolledAt = old.EnrolledDeviceID, old.EnrolledAt
		}
		m.devices[d.Serial] = &d
	}
	return nil
}

func (m *MemStore) DEPDevice(_ context.Context, serial string) (*dep.Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[serial]
	if !ok {
		return nil, errs.ErrNotFound
	}
	c := *d
	return &c, nil
}

func (m *MemStore) ListDEPDevices(_ context.Context, after string, limit int) ([]*dep.Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if limit <= 0 {
		limit = 100
	}
	var out []*dep.Device
	for _, d := range m.devices {
		if d.Serial > after {
			c := *d
			out = append(out, &c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Serial < out[j].Serial })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (m *MemStore) AssignDEPUser(_ context.Context, serial, userID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[serial]
	if !ok || (userID != "" && m.Users != nil && !m.Users[userID]) {
		return errs.ErrNotFound
	}
	d.UserID = userID
	return nil
}

func (m *MemStore) RecordDEPAssignment(_ context.Context, uuid string, status map[string]string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for serial, st := range status {
		if d, ok := m.devices[serial]; ok {
			d.ProfileUUID, d.AssignStatus, d.AssignedAt = uuid, st, &at
		}
	}
	return nil
}

func (m *MemStore) RecordDEPEnrollment(_ context.Context, serial, deviceID string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[serial]
	if !ok {
		return errs.ErrNotFound
	}
	d.EnrolledDeviceID, d.EnrolledAt = deviceID, &at
	return nil
}
