package directory

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/user"
)

// DefaultInterval is how often the Core's scheduler runs a sync when
// Syncer.Interval is zero.
const DefaultInterval = time.Hour

// MaxReportErrors bounds Report.Errors: a directory with thousands of
// broken entries must not make a report of megabytes.
const MaxReportErrors = 100

// Syncer copies the company directory's users and groups into Custos.
//
// Users are matched by their unique ID (User.ExternalID), so a rename or
// move in the directory updates the same Custos user. A user the
// directory no longer has is marked (User.DirectoryMissingSince), not
// deleted: deleting a user removes and revokes their devices, too much to
// do on the strength of one search (a wrong base DN, a filter edited by
// mistake); an administrator decides. Directory groups become Custos
// groups linked by ExternalID (a local group of the same name is linked,
// keeping its assignments); in a linked group the directory decides which
// directory users and which linked subgroups belong, at any depth, while
// local users and local subgroups an administrator added stay.
//
// Sync is idempotent: a run over an unchanged directory changes nothing.
// Several Core processes on one database should let one of them run it at
// a time (the Core's scheduler claims the job); a second run at once
// would only repeat the same writes.
type Syncer struct {
	Dir   *Client
	Users *user.Service
	// Interval is the period the Core's scheduler runs Run at; zero means
	// DefaultInterval. See Period.
	Interval time.Duration
	Now      func() time.Time
	Log      *slog.Logger

	mu   sync.Mutex // one Sync at a time in this process
	last *Report
}

// Report says what one Sync did. Counts are of changes made: a second run
// over an unchanged directory reports zeros (and the Seen counts).
type Report struct {
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	UsersSeen  int       `json:"users_seen"`
	GroupsSeen int       `json:"groups_seen"`
	// Created and Updated count users; Missing counts users newly marked
	// missing and Returned those unmarked because they reappeared.
	Created  int `json:"created"`
	Updated  int `json:"updated"`
	Missing  int `json:"missing"`
	Returned int `json:"returned"`
	// GroupsCreated and GroupsUpdated count groups (a local group linked
	// to a directory group counts as updated); GroupsMissing counts linked
	// groups the directory no longer has (kept, emptied of directory
	// members).
	GroupsCreated int `json:"groups_created"`
	GroupsUpdated int `json:"groups_updated"`
	GroupsMissing int `json:"groups_missing"`
	// Membership changes: users and subgroups added to or removed from
	// linked groups.
	MembersAdded     int `json:"members_added"`
	MembersRemoved   int `json:"members_removed"`
	SubgroupsAdded   int `json:"subgroups_added"`
	SubgroupsRemoved int `json:"subgroups_removed"`
	// Failed counts entries (and nestings) that could not be applied;
	// Errors describes the first MaxReportErrors of them.
	Failed int          `json:"failed"`
	Errors []EntryError `json:"errors,omitempty"`
}

// EntryError is one entry the sync skipped and why.
type EntryError struct {
	DN      string `json:"dn"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (r *Report) fail(dn string, err error) {
	r.Failed++
	if len(r.Errors) >= MaxReportErrors {
		return
	}
	code, msg, fields := errs.Public(err)
	for k, v := range fields {
		msg += "; " + k + ": " + v
	}
	r.Errors = append(r.Errors, EntryError{DN: dn, Code: code, Message: msg})
}

// Changed reports whether the run changed anything.
func (r *Report) Changed() bool {
	return r.Created+r.Updated+r.Missing+r.Returned+r.GroupsCreated+r.GroupsUpdated+r.GroupsMissing+
		r.MembersAdded+r.MembersRemoved+r.SubgroupsAdded+r.SubgroupsRemoved > 0
}

// ErrEmptyDirectory refuses a sync whose search found no users (or no
// groups) while Custos has accounts (groups) linked to the directory: that
// is far more often a wrong base DN or filter than an empty company, and
// marking everyone missing would be noise at best.
var ErrEmptyDirectory = errs.E(errs.Unavailable, "directory_empty",
	"the company directory returned no entries while Custos has accounts from it; check the base DN and filters")

func (s *Syncer) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Syncer) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Period returns the interval between scheduled runs.
func (s *Syncer) Period() time.Duration {
	if s.Interval > 0 {
		return s.Interval
	}
	return DefaultInterval
}

// Run runs one Sync for the Core's scheduler, logs its report and returns
// its error; it returns when the sync is done.
func (s *Syncer) Run(ctx context.Context) error {
	r, err := s.Sync(ctx)
	l := s.log()
	if err != nil {
		l.ErrorContext(ctx, "directory sync failed", "err", err, "users_seen", r.UsersSeen, "failed", r.Failed)
		return err
	}
	l.InfoContext(ctx, "directory sync done", "users_seen", r.UsersSeen, "groups_seen", r.GroupsSeen,
		"created", r.Created, "updated", r.Updated, "missing", r.Missing, "returned", r.Returned,
		"groups_created", r.GroupsCreated, "groups_updated", r.GroupsUpdated, "groups_missing", r.GroupsMissing,
		"members_added", r.MembersAdded, "members_removed", r.MembersRemoved, "failed", r.Failed,
		"took", r.FinishedAt.Sub(r.StartedAt))
	for _, e := range r.Errors {
		l.WarnContext(ctx, "directory sync skipped an entry", "dn", e.DN, "code", e.Code, "message", e.Message)
	}
	return nil
}

// Last returns the report of the last completed Sync, if any.
func (s *Syncer) Last() (Report, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == nil {
		return Report{}, false
	}
	return *s.last, true
}

// Sync reads the directory's users and groups and brings Custos in line.
// It fails as a whole only when the directory or the database cannot be
// used; an entry that cannot be applied is skipped and reported.
func (s *Syncer) Sync(ctx context.Context) (Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{StartedAt: s.now()}
	err := s.sync(ctx, &r)
	r.FinishedAt = s.now()
	if err == nil {
		last := r
		s.last = &last
	}
	return r, err
}

func (s *Syncer) sync(ctx context.Context, r *Report) error {
	// Read both trees before writing anything, so that a directory that
	// fails halfway leaves Custos as it was.
	entries, err := s.Dir.Users(ctx)
	if err != nil {
		return err
	}
	groups, err := s.Dir.Groups(ctx)
	if err != nil {
		return err
	}
	r.UsersSeen, r.GroupsSeen = len(entries), len(groups)
	local, err := s.directoryUsers(ctx)
	if err != nil {
		return err
	}
	if len(entries) == 0 && len(local) > 0 {
		return ErrEmptyDirectory
	}

	// Users. byDN maps each entry's canonical DN to its Custos user, for
	// the group members below; seen holds every ID the directory has, so
	// that an entry skipped for bad data is not also marked missing.
	byDN := map[string]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.ID == "" {
			r.fail(e.DN, errs.Wrap(errs.Invalid, user.ErrExternalIDInvalid.Code,
				fmt.Sprintf("the entry has no %s attribute", s.Dir.cfg.IDAttr), nil))
			continue
		}
		if seen[e.ID] {
			r.fail(e.DN, errs.E(errs.Conflict, user.ErrExternalIDTaken.Code, "another entry has the same unique ID"))
			continue
		}
		seen[e.ID] = true
		u, outcome, err := s.Users.SyncDirectoryUser(ctx, user.DirectoryAccount{
			ExternalID: e.ID, Username: e.Login, Email: e.Email, DisplayName: e.DisplayName})
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err // the database, not the entry
			}
			r.fail(e.DN, err)
			continue
		}
		byDN[canonicalDN(e.DN)] = u.ID
		switch outcome {
		case user.Created:
			r.Created++
		case user.Updated:
			r.Updated++
			if prev := local[e.ID]; prev != nil && prev.DirectoryMissingSince != nil {
				r.Returned++
			}
		}
	}
	now := s.now()
	for ext, u := range local {
		if seen[ext] || u.DirectoryMissingSince != nil {
			continue
		}
		changed, err := s.Users.MarkDirectoryMissing(ctx, u.ID, now)
		if err != nil {
			return err
		}
		if changed {
			r.Missing++
		}
	}
	return s.syncGroups(ctx, r, groups, byDN)
}

// directoryUsers returns the Custos users from the directory by external
// ID.
func (s *Syncer) directoryUsers(ctx context.Context) (map[string]*user.User, error) {
	out := map[string]*user.User{}
	for p := (user.Page{Limit: user.MaxPage}); ; {
		us, err := s.Users.List(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, u := range us {
			if u.Source == user.SourceDirectory && u.ExternalID != "" {
				out[u.ExternalID] = u
			}
		}
		if len(us) < p.Limit {
			return out, nil
		}
		p.After = us[len(us)-1].ID
	}
}

// linkedGroups returns the Custos groups linked to the directory.
func (s *Syncer) linkedGroups(ctx context.Context) ([]*user.Group, error) {
	var out []*user.Group
	for p := (user.Page{Limit: user.MaxPage}); ; {
		gs, err := s.Users.Groups(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			if g.ExternalID != "" {
				out = append(out, g)
			}
		}
		if len(gs) < p.Limit {
			return out, nil
		}
		p.After = gs[len(gs)-1].ID
	}
}

type groupPlan struct {
	dn        string
	members   []string // member DNs as the directory lists them
	group     *user.Group
	users     map[string]bool // wanted directory members: Custos user IDs
	subgroups map[string]bool // wanted linked subgroups: Custos group IDs
}

func (s *Syncer) syncGroups(ctx context.Context, r *Report, entries []*GroupEntry, usersByDN map[string]string) error {
	linked, err := s.linkedGroups(ctx)
	if err != nil {
		return err
	}
	if len(entries) == 0 && len(linked) > 0 {
		return ErrEmptyDirectory
	}
	// First every group, so that members naming a group can be resolved
	// whatever the order of the entries.
	var plans []*groupPlan
	groupsByDN := map[string]string{}
	seen := map[string]bool{}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.ID == "" || seen[e.ID] {
			r.fail(e.DN, errs.Wrap(errs.Invalid, user.ErrExternalIDInvalid.Code,
				fmt.Sprintf("the group has no %s attribute, or shares it with another", s.Dir.cfg.IDAttr), nil))
			continue
		}
		seen[e.ID] = true
		g, outcome, err := s.Users.SyncDirectoryGroup(ctx, user.DirectoryGroup{ExternalID: e.ID, Name: e.Name, Description: e.Description})
		if err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			r.fail(e.DN, err)
			continue
		}
		switch outcome {
		case user.Created:
			r.GroupsCreated++
		case user.Updated:
			r.GroupsUpdated++
		}
		groupsByDN[canonicalDN(e.DN)] = g.ID
		plans = append(plans, &groupPlan{dn: e.DN, members: e.Members, group: g, users: map[string]bool{}, subgroups: map[string]bool{}})
	}
	for _, p := range plans {
		for _, m := range p.members {
			dn := canonicalDN(m)
			if uid, ok := usersByDN[dn]; ok {
				p.users[uid] = true
			} else if gid, ok := groupsByDN[dn]; ok {
				p.subgroups[gid] = true
			}
			// Other DNs (entries outside the user filter, such as
			// service accounts, or members since deleted: OpenLDAP keeps
			// dangling member values without the refint overlay) name
			// nobody Custos manages.
		}
	}
	// Linked groups the directory no longer has keep their assignments
	// but lose their directory members: membership follows the directory.
	for _, g := range linked {
		if !seen[g.ExternalID] {
			r.GroupsMissing++
			plans = append(plans, &groupPlan{dn: "(missing) " + g.Name, group: g, users: map[string]bool{}, subgroups: map[string]bool{}})
		}
	}
	for _, p := range plans {
		if err := s.reconcile(ctx, r, p); err != nil {
			return err
		}
	}
	return nil
}

// reconcile makes the group's directory members and linked subgroups
// those of p. Local users and local subgroups are not the directory's to
// remove.
func (s *Syncer) reconcile(ctx context.Context, r *Report, p *groupPlan) error {
	members, err := s.Users.Members(ctx, p.group.ID)
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, u := range members {
		have[u.ID] = true
		if u.Source == user.SourceDirectory && !p.users[u.ID] {
			if err := s.Users.RemoveMember(ctx, p.group.ID, u.ID); err != nil && !errs.Is(err, errs.NotFound) {
				return err
			}
			r.MembersRemoved++
		}
	}
	for _, uid := range slices.Sorted(maps.Keys(p.users)) {
		if have[uid] {
			continue
		}
		if err := s.Users.AddMember(ctx, p.group.ID, uid); err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			r.fail(p.dn, err)
			continue
		}
		r.MembersAdded++
	}
	subs, err := s.Users.Subgroups(ctx, p.group.ID)
	if err != nil {
		return err
	}
	haveSub := map[string]bool{}
	for _, g := range subs {
		haveSub[g.ID] = true
		if g.ExternalID != "" && !p.subgroups[g.ID] {
			if err := s.Users.RemoveSubgroup(ctx, p.group.ID, g.ID); err != nil && !errs.Is(err, errs.NotFound) {
				return err
			}
			r.SubgroupsRemoved++
		}
	}
	// In ID order, so that of a cycle the same nesting is refused on
	// every run.
	for _, gid := range slices.Sorted(maps.Keys(p.subgroups)) {
		if haveSub[gid] {
			continue
		}
		// A nesting that would close a cycle (directories allow them;
		// Custos does not, user.ErrCycle) is reported and skipped: the
		// rest of the tree is still applied.
		if err := s.Users.AddSubgroup(ctx, p.group.ID, gid); err != nil {
			if errs.KindOf(err) == errs.Internal {
				return err
			}
			r.fail(p.dn, fmt.Errorf("nesting group %s: %w", gid, err))
			continue
		}
		r.SubgroupsAdded++
	}
	return nil
}
