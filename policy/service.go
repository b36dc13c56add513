package policy

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/id"
	"github.com/custos-uem/custos/secret"
)

// EmptyVersion is the version of the empty configuration. Devices that
// have nothing to apply acknowledged it before policies existed, so it
// stays "0" rather than a hash of nothing.
const EmptyVersion = "0"

// Status report limits, checked before anything is stored.
const (
	MaxStates     = 1000 // item states in one report
	MaxStateError = 1024 // bytes of a device's error message
	MaxVersion    = 64   // bytes of a reported version (a hex SHA-256)
)

// Errors with stable codes.
var (
	ErrPolicyNotFound     = errs.E(errs.NotFound, "policy_not_found", "no such policy")
	ErrNameTaken          = errs.E(errs.Conflict, "policy_name_taken", "a policy of this kind with this name exists")
	ErrTargetNotFound     = errs.E(errs.NotFound, "policy_target_not_found", "no such user or group")
	ErrAssignmentNotFound = errs.E(errs.NotFound, "policy_assignment_not_found", "the policy is not assigned to this user or group")
	ErrDeviceNotFound     = errs.E(errs.NotFound, "device_not_found", "no such enrolled device")
	// ErrNotNotified is joined to the error of a change that was saved but
	// whose devices could not be told (Service.Changed failed). The change
	// stands: undoing it would be wrong, since the administrator asked for
	// it, and it is not lost, since every device's next scheduled check-in
	// compares its version with the new one and fetches the difference.
	// Test for it with errors.Is.
	ErrNotNotified = errs.E(errs.Unavailable, "policy_devices_not_notified",
		"the change is saved; its devices could not be told now and will pick it up at their next check-in")
)

// Service manages policies, their assignments, and the effective
// configuration of devices.
type Service struct {
	Store Store
	// Changed is told, after the commit, the devices whose configuration a
	// change may have changed (push them, so they check in now). A superset
	// is fine: a device whose version did not change fetches nothing. Nil
	// tells no one.
	Changed func(ctx context.Context, deviceIDs []string) error
	Now     func() time.Time
	// Box, when set, seals secret settings before they are stored
	// (seal.go); nil stores them as they are.
	Box *secret.Box
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// NewPolicy is the input of Create.
type NewPolicy struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Kind        Kind            `json:"kind"`
	Rank        int             `json:"rank"`
	Platforms   []string        `json:"platforms"`
	Settings    json.RawMessage `json:"settings"`
}

// Patch changes the fields that are not nil. Settings replace the stored
// object as a whole; a secret sent back as RedactedSecret keeps its stored
// value.
type Patch struct {
	Name        *string         `json:"name"`
	Description *string         `json:"description"`
	Rank        *int            `json:"rank"`
	Platforms   *[]string       `json:"platforms"`
	Settings    json.RawMessage `json:"settings"`
}

func notFound(err error) error {
	if errors.Is(err, errs.ErrNotFound) {
		return errs.Wrap(errs.NotFound, ErrPolicyNotFound.Code, ErrPolicyNotFound.Message, err)
	}
	return err
}

// prepare validates p, checks its references and stores its settings in
// canonical form.
func (s *Service) prepare(ctx context.Context, p *Policy) error {
	p.Name = strings.TrimSpace(p.Name)
	if p.Platforms == nil {
		p.Platforms = []string{}
	}
	if len(p.Settings) == 0 {
		p.Settings = json.RawMessage(`{}`)
	}
	if err := Validate(p); err != nil {
		return err
	}
	c, err := canonical(p.Settings)
	if err != nil {
		return fmt.Errorf("policy: canonical settings: %w", err) // Validate decoded them
	}
	p.Settings = c
	f := fields{}
	for key, ref := range certificateRefs(p.Kind, p.Settings) {
		q, err := s.Store.Policy(ctx, ref)
		switch {
		case errors.Is(err, errs.ErrNotFound) || err == nil && q.Kind != Certificate:
			f.add(key, "no certificate profile has this ID")
		case err != nil:
			return fmt.Errorf("policy: check %s: %w", key, err)
		}
	}
	if len(f) > 0 {
		return invalid(f)
	}
	return nil
}

// Create validates and stores a new policy at revision 1. It is assigned
// to no one yet, so no device changes.
func (s *Service) Create(ctx context.Context, in NewPolicy) (*Policy, error) {
	p := &Policy{Name: in.Name, Description: in.Description, Kind: in.Kind, Rank: in.Rank,
		Platforms: slices.Clone(in.Platforms), Settings: in.Settings}
	if err := s.prepare(ctx, p); err != nil {
		return nil, err
	}
	var err error
	if p.Settings, err = s.sealSecrets(p.Kind, p.Settings, nil, nil); err != nil {
		return nil, err
	}
	now := s.now()
	p.ID, p.Revision, p.CreatedAt, p.UpdatedAt = id.New(), 1, now, now
	if err := s.Store.CreatePolicy(ctx, p); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, errs.Wrap(errs.Conflict, ErrNameTaken.Code, ErrNameTaken.Message, err)
		}
		return nil, fmt.Errorf("policy: create: %w", err)
	}
	return p, nil
}

// Get returns the policy with id, secrets included (pass it through
// Redacted before showing it), or ErrPolicyNotFound.
func (s *Service) Get(ctx context.Context, id string) (*Policy, error) {
	p, err := s.Store.Policy(ctx, id)
	if err != nil {
		return nil, notFound(fmt.Errorf("policy: get: %w", err))
	}
	return p, nil
}

// List returns policies in ID order, secrets included.
func (s *Service) List(ctx context.Context, q ListQuery) ([]*Policy, error) {
	if q.Kind != "" && !q.Kind.Valid() {
		return nil, invalid(fields{"kind": "one of " + kindList()})
	}
	if q.Limit <= 0 {
		q.Limit = DefaultPage
	}
	q.Limit = min(q.Limit, MaxPage)
	ps, err := s.Store.ListPolicies(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("policy: list: %w", err)
	}
	return ps, nil
}

// Update applies patch and returns the stored policy. A change of the
// settings or platforms bumps the revision; a change of those or of the
// rank (which decides between policies of a single kind) tells the
// devices the policy reaches, after the commit. If telling them fails,
// the updated policy is returned with an error matching ErrNotNotified.
func (s *Service) Update(ctx context.Context, id string, patch Patch) (*Policy, error) {
	old, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	p := *old
	p.Platforms = slices.Clone(old.Platforms)
	if patch.Name != nil {
		p.Name = *patch.Name
	}
	if patch.Description != nil {
		p.Description = *patch.Description
	}
	if patch.Rank != nil {
		p.Rank = *patch.Rank
	}
	if patch.Platforms != nil {
		p.Platforms = slices.Clone(*patch.Platforms)
	}
	oldPlain, err := s.openSecrets(old.Kind, old.Settings)
	if err != nil {
		return nil, err
	}
	p.Settings = oldPlain
	if patch.Settings != nil {
		p.Settings = restoreSecrets(p.Kind, patch.Settings, oldPlain)
	}
	if err := s.prepare(ctx, &p); err != nil {
		return nil, err
	}
	if p.Settings, err = s.sealSecrets(p.Kind, p.Settings, oldPlain, old.Settings); err != nil {
		return nil, err
	}
	p.UpdatedAt = s.now()
	if err := s.Store.UpdatePolicy(ctx, &p); err != nil {
		if errors.Is(err, errs.ErrConflict) {
			return nil, errs.Wrap(errs.Conflict, ErrNameTaken.Code, ErrNameTaken.Message, err)
		}
		return nil, notFound(fmt.Errorf("policy: update: %w", err))
	}
	if p.Revision != old.Revision || p.Rank != old.Rank {
		devices, err := s.Store.AffectedDevices(ctx, p.ID)
		if err != nil {
			return &p, fmt.Errorf("policy: update: find devices to notify: %w: %w", ErrNotNotified, err)
		}
		return &p, s.notify(ctx, devices)
	}
	return &p, nil
}

// Delete removes the policy with its assignments and tells the devices it
// reached. They are found before the delete, when the assignments still
// say who they are.
func (s *Service) Delete(ctx context.Context, id string) error {
	devices, err := s.Store.AffectedDevices(ctx, id)
	if err != nil {
		return fmt.Errorf("policy: delete: find devices: %w", err)
	}
	if err := s.Store.DeletePolicy(ctx, id); err != nil {
		return notFound(fmt.Errorf("policy: delete: %w", err))
	}
	return s.notify(ctx, devices)
}

func checkTarget(kind string) error {
	if kind != TargetUser && kind != TargetGroup {
		return invalid(fields{"target_kind": "user or group"})
	}
	return nil
}

// Assign gives the policy to a user or group (targetKind TargetUser or
// TargetGroup) and tells the target's devices. Assigning twice is not an
// error.
func (s *Service) Assign(ctx context.Context, policyID, targetKind, targetID string) error {
	if err := checkTarget(targetKind); err != nil {
		return err
	}
	if _, err := s.Get(ctx, policyID); err != nil {
		return err
	}
	a := Assignment{PolicyID: policyID, TargetKind: targetKind, TargetID: targetID, CreatedAt: s.now()}
	if err := s.Store.Assign(ctx, a); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			// The policy existed a moment ago, so it is most likely the
			// target; a policy deleted in between is reported the same way.
			return errs.Wrap(errs.NotFound, ErrTargetNotFound.Code, ErrTargetNotFound.Message, err)
		}
		return fmt.Errorf("policy: assign: %w", err)
	}
	return s.refresh(ctx, targetKind, targetID)
}

// Unassign removes an assignment and tells the target's devices.
func (s *Service) Unassign(ctx context.Context, policyID, targetKind, targetID string) error {
	if err := checkTarget(targetKind); err != nil {
		return err
	}
	if err := s.Store.Unassign(ctx, policyID, targetKind, targetID); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(errs.NotFound, ErrAssignmentNotFound.Code, ErrAssignmentNotFound.Message, err)
		}
		return fmt.Errorf("policy: unassign: %w", err)
	}
	return s.refresh(ctx, targetKind, targetID)
}

// Assignments returns the assignments of a policy: users, then groups.
func (s *Service) Assignments(ctx context.Context, policyID string) ([]Assignment, error) {
	if _, err := s.Get(ctx, policyID); err != nil {
		return nil, err
	}
	as, err := s.Store.Assignments(ctx, policyID)
	if err != nil {
		return nil, fmt.Errorf("policy: assignments: %w", err)
	}
	return as, nil
}

// Refresh tells the devices of the users that their configuration may
// have changed; callers use it after changing group memberships.
func (s *Service) Refresh(ctx context.Context, userIDs ...string) error {
	return s.refresh(ctx, TargetUser, userIDs...)
}

// RefreshGroups tells the devices of every member of the groups (and of
// their subgroups) that their configuration may have changed; callers use
// it after nesting or un-nesting a group. Before deleting a group, find
// its devices with DevicesOf and pass them to Notify after the delete.
func (s *Service) RefreshGroups(ctx context.Context, groupIDs ...string) error {
	return s.refresh(ctx, TargetGroup, groupIDs...)
}

func (s *Service) refresh(ctx context.Context, kind string, ids ...string) error {
	devices, err := s.DevicesOf(ctx, kind, ids...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotNotified, err)
	}
	return s.notify(ctx, devices)
}

// DevicesOf returns the enrolled and active devices of the users
// (TargetUser) or of the members of the groups and their subgroups
// (TargetGroup), each once, in ID order.
func (s *Service) DevicesOf(ctx context.Context, targetKind string, ids ...string) ([]string, error) {
	if err := checkTarget(targetKind); err != nil {
		return nil, err
	}
	var all []string
	for _, id := range ids {
		ds, err := s.Store.DevicesOfTargets(ctx, targetKind, id)
		if err != nil {
			return nil, fmt.Errorf("policy: devices of %s %s: %w", targetKind, id, err)
		}
		all = append(all, ds...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

// Notify tells Changed about the devices; an error matches ErrNotNotified.
func (s *Service) Notify(ctx context.Context, deviceIDs []string) error {
	return s.notify(ctx, deviceIDs)
}

func (s *Service) notify(ctx context.Context, devices []string) error {
	if s.Changed == nil || len(devices) == 0 {
		return nil
	}
	if err := s.Changed(ctx, devices); err != nil {
		return fmt.Errorf("policy: notify %d devices: %w: %w", len(devices), ErrNotNotified, err)
	}
	return nil
}

// Redacted returns a copy of p for showing: every secret setting with a
// value reads RedactedSecret.
func Redacted(p *Policy) *Policy {
	q := *p
	q.Platforms = slices.Clone(p.Platforms)
	q.Settings = redact(p.Kind, p.Settings)
	return &q
}

// candidate is a policy reaching a device, with how it reaches it.
type candidate struct {
	p      *Policy
	direct bool
	via    string
}

// better reports whether a takes precedence over b (both of one single
// kind): direct beats group, then the lowest rank, then the name, then
// the ID so that the choice never depends on the order of rows.
func better(a, b *candidate) bool {
	if a.direct != b.direct {
		return a.direct
	}
	if c := cmp.Or(cmp.Compare(a.p.Rank, b.p.Rank), strings.Compare(a.p.Name, b.p.Name), strings.Compare(a.p.ID, b.p.ID)); c != 0 {
		return c < 0
	}
	return false
}

func appliesTo(p *Policy, platform string) bool {
	return len(p.Platforms) == 0 || slices.Contains(p.Platforms, platform)
}

// Effective computes the configuration of d (see Precedence in the package
// doc): policies of other platforms are left out first, then each single
// kind keeps its winner. Items come in the order a device applies them
// (Kinds), then by rank, name and ID; payloads hold the secrets the
// device needs.
func (s *Service) Effective(ctx context.Context, d *device.Device) (*Effective, error) {
	m, _ := ctx.Value(memoKey{}).(*memo)
	if m != nil {
		m.mu.Lock()
		defer m.mu.Unlock()
		if e, ok := m.eff[d.ID]; ok {
			return e, nil
		}
	}
	eff, err := s.effective(ctx, d)
	if err == nil && m != nil {
		m.eff[d.ID] = eff
	}
	return eff, err
}

// memo holds the effective configurations computed within one request.
type memo struct {
	mu  sync.Mutex
	eff map[string]*Effective
}

type memoKey struct{}

// WithMemo returns a context in which Effective computes each device's
// configuration once: a device's request reads it several times (the
// configuration it is sent, its compliance profile, the check of its
// acknowledgment), and a change committed in between must not make those
// reads disagree within the request. Use it for one request, never for
// longer: the memo is never invalidated.
func WithMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &memo{eff: map[string]*Effective{}})
}

func (s *Service) effective(ctx context.Context, d *device.Device) (*Effective, error) {
	assigned, err := s.Store.PoliciesForUser(ctx, d.UserID)
	if err != nil {
		return nil, fmt.Errorf("policy: policies of user %s: %w", d.UserID, err)
	}
	byID := map[string]*candidate{}
	var order []*candidate
	for _, a := range assigned {
		if !appliesTo(a.Policy, d.Platform) {
			continue
		}
		c := byID[a.Policy.ID]
		if c == nil {
			c = &candidate{p: a.Policy}
			byID[a.Policy.ID] = c
			order = append(order, c)
		}
		switch {
		case a.GroupID == "":
			c.direct, c.via = true, TargetUser
		case c.via == "" || !c.direct && "group:"+a.GroupID < c.via:
			c.via = "group:" + a.GroupID
		}
	}
	var chosen []*candidate
	single := map[Kind]*candidate{}
	for _, c := range order {
		if !c.p.Kind.Single() {
			chosen = append(chosen, c)
		} else if b := single[c.p.Kind]; b == nil || better(c, b) {
			single[c.p.Kind] = c
		}
	}
	for _, c := range single {
		chosen = append(chosen, c)
	}
	slices.SortFunc(chosen, func(a, b *candidate) int {
		return cmp.Or(cmp.Compare(slices.Index(kinds, a.p.Kind), slices.Index(kinds, b.p.Kind)),
			cmp.Compare(a.p.Rank, b.p.Rank), strings.Compare(a.p.Name, b.p.Name), strings.Compare(a.p.ID, b.p.ID))
	})
	eff := &Effective{Items: make([]Item, 0, len(chosen))}
	for _, c := range chosen {
		settings, err := s.openSecrets(c.p.Kind, c.p.Settings)
		if err != nil {
			return nil, fmt.Errorf("policy: settings of %s: %w", c.p.ID, err)
		}
		var payload map[string]any
		if err := json.Unmarshal(settings, &payload); err != nil {
			return nil, fmt.Errorf("policy: settings of %s: %w", c.p.ID, err)
		}
		eff.Items = append(eff.Items, Item{ID: c.p.ID, Kind: c.p.Kind, Name: c.p.Name, Revision: c.p.Revision, Payload: payload, Via: c.via})
	}
	eff.Version, err = Version(eff.Items)
	if err != nil {
		return nil, err
	}
	return eff, nil
}

// Version returns the version of a configuration: EmptyVersion for no
// items, else the hex SHA-256 of the JSON array of {id, revision, payload}
// sorted by ID. encoding/json writes map keys sorted and numbers the same
// way in every process, so the version is stable across processes and
// restarts; names, ranks and the order of application are left out, as
// changing them changes nothing on the device.
func Version(items []Item) (string, error) {
	if len(items) == 0 {
		return EmptyVersion, nil
	}
	type entry struct {
		ID       string         `json:"id"`
		Revision int            `json:"revision"`
		Payload  map[string]any `json:"payload"`
	}
	entries := make([]entry, len(items))
	for i, it := range items {
		entries[i] = entry{it.ID, it.Revision, it.Payload}
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.ID, b.ID) })
	b, err := json.Marshal(entries)
	if err != nil {
		return "", fmt.Errorf("policy: version: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// ItemStatus is where one item of the current configuration stands on a
// device.
type ItemStatus struct {
	ID       string     `json:"id"`
	Kind     Kind       `json:"kind"`
	Name     string     `json:"name"`
	Revision int        `json:"revision"`
	Status   string     `json:"status"` // ItemPending, ItemApplied or ItemFailed
	Error    string     `json:"error,omitempty"`
	At       *time.Time `json:"at,omitempty"`
}

// DeviceStatus compares a device's configuration with the current one.
type DeviceStatus struct {
	DeviceID string `json:"device_id"`
	// Version is the current effective version; DeviceVersion the one the
	// device last acknowledged; UpToDate whether they are equal.
	Version       string `json:"version"`
	DeviceVersion string `json:"device_version"`
	UpToDate      bool   `json:"up_to_date"`
	// ReportedVersion is the version of the device's last status report.
	ReportedVersion string       `json:"reported_version,omitempty"`
	Items           []ItemStatus `json:"items"`
}

// Status returns, for each item of d's current configuration, what the
// device reported for that item at its current revision: an item it has
// not reported on at this revision is pending.
func (s *Service) Status(ctx context.Context, d *device.Device) (*DeviceStatus, error) {
	eff, err := s.Effective(ctx, d)
	if err != nil {
		return nil, err
	}
	reported, states, err := s.Store.ItemStates(ctx, d.ID)
	if err != nil {
		return nil, fmt.Errorf("policy: item states of %s: %w", d.ID, err)
	}
	byID := make(map[string]ItemState, len(states))
	for _, st := range states {
		byID[st.ID] = st
	}
	out := &DeviceStatus{DeviceID: d.ID, Version: eff.Version, DeviceVersion: d.ConfigVersion,
		UpToDate: d.ConfigVersion == eff.Version, ReportedVersion: reported, Items: make([]ItemStatus, 0, len(eff.Items))}
	for _, it := range eff.Items {
		is := ItemStatus{ID: it.ID, Kind: it.Kind, Name: it.Name, Revision: it.Revision, Status: ItemPending}
		if st, ok := byID[it.ID]; ok && st.Revision == it.Revision {
			at := st.At
			is.Status, is.Error, is.At = st.Status, st.Error, &at
		}
		out.Items = append(out.Items, is)
	}
	return out, nil
}

func validVersion(v string) bool {
	if v == "" || len(v) > MaxVersion {
		return false
	}
	for _, c := range v {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// RecordStatus stores what device d reports about applying configuration
// version: one state per item. States of items that are not in d's
// current configuration are dropped (the device reports on an older
// configuration, or names a policy that is not its own); the stored time
// of each state is the server's, not the device's.
func (s *Service) RecordStatus(ctx context.Context, d *device.Device, version string, states []ItemState) error {
	if len(states) > MaxStates {
		return errs.E(errs.TooLarge, "too_many_states", fmt.Sprintf("a status report has at most %d item states", MaxStates))
	}
	f := fields{}
	if !validVersion(version) {
		f.add("version", "a configuration version (lower-case hex, at most 64 characters)")
	}
	for i, st := range states {
		key := fmt.Sprintf("states.%d.", i)
		if st.ID == "" || len(st.ID) > 64 {
			f.add(key+"id", "an item ID")
		}
		if st.Revision < 1 {
			f.add(key+"revision", "at least 1")
		}
		if st.Status != ItemPending && st.Status != ItemApplied && st.Status != ItemFailed {
			f.add(key+"status", "pending, applied or failed")
		}
		if len(st.Error) > MaxStateError || !utf8.ValidString(st.Error) || strings.ContainsRune(st.Error, 0) {
			f.add(key+"error", "at most 1024 bytes of text")
		}
	}
	if len(f) > 0 {
		e := errs.E(errs.Invalid, "invalid_status", "the status report has invalid fields")
		e.Fields = f
		return e
	}
	eff, err := s.Effective(ctx, d)
	if err != nil {
		return err
	}
	current := make(map[string]bool, len(eff.Items))
	for _, it := range eff.Items {
		current[it.ID] = true
	}
	now := s.now()
	kept := make([]ItemState, 0, len(states))
	for _, st := range states {
		if current[st.ID] {
			st.At = now
			kept = append(kept, st)
		}
	}
	if err := s.Store.SaveItemStates(ctx, d.ID, version, kept, now); err != nil {
		if errors.Is(err, errs.ErrNotFound) {
			return errs.Wrap(errs.NotFound, ErrDeviceNotFound.Code, ErrDeviceNotFound.Message, err)
		}
		return fmt.Errorf("policy: record status: %w", err)
	}
	return nil
}
