package user_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/sqlstore"
	"github.com/custos-uem/custos/sqlstore/sqltest"
	"github.com/custos-uem/custos/user"
)

func code(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

type removerSpy struct {
	calls []string
	err   error
}

func (r *removerSpy) RemoveUserDevices(_ context.Context, id string) error {
	r.calls = append(r.calls, id)
	return r.err
}

func forEach(t *testing.T, f func(t *testing.T, s *user.Service, spy *removerSpy, db *sqlstore.DB)) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) {
			db := sqltest.Open(t, b)
			spy := &removerSpy{}
			f(t, &user.Service{Store: db, Devices: spy}, spy, db)
		})
	}
}

func TestNormalizeEmailAndUsername(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.COM": "alice@example.com", " bob@example.com ": "bob@example.com", "x.y+tag@sub.example.org": "x.y+tag@sub.example.org",
		"": "", "no-at-sign": "", "Alice <alice@example.com>": "", "a@": "", "@b": "", "a b@example.com": "",
		"<script>@example.com": "", "alice@example.com\n": "alice@example.com", "a\x00@example.com": "", strings.Repeat("a", 250) + "@b.co": "",
	} {
		got, ok := user.NormalizeEmail(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeEmail(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	for in, want := range map[string]string{
		"Alice": "alice", "a.b_c-d": "a.b_c-d", "x9": "x9", "": "", ".alice": "", "al ice": "", "al@ice": "", "<script>": "",
		"'); DROP TABLE users;--": "", strings.Repeat("a", 65): "", "ünï": "",
	} {
		got, ok := user.NormalizeUsername(in)
		if got != want || ok != (want != "") {
			t.Errorf("NormalizeUsername(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
}

func TestUserCRUDAndCodes(t *testing.T) {
	forEach(t, func(t *testing.T, s *user.Service, spy *removerSpy, db *sqlstore.DB) {
		ctx := context.Background()
		u, err := s.Create(ctx, user.NewUser{Email: "Alice@Example.com", DisplayName: "<script>alert(1)</script>"})
		if err != nil {
			t.Fatal(err)
		}
		if u.Email != "alice@example.com" || u.Username != "alice" || u.Source != user.SourceLocal || u.DisplayName != "<script>alert(1)</script>" {
			t.Fatalf("created %+v", u)
		}
		if _, err := s.Create(ctx, user.NewUser{Email: "ALICE@example.com", Username: "other"}); code(err) != "user_email_taken" {
			t.Errorf("duplicate email: %v", err)
		}
		if _, err := s.Create(ctx, user.NewUser{Email: "alice2@example.com", Username: "ALICE"}); code(err) != "user_username_taken" {
			t.Errorf("duplicate username: %v", err)
		}
		_, err = s.Create(ctx, user.NewUser{Email: "bad", Username: "x y", DisplayName: "a\x00b"})
		var e *errs.Error
		if !errors.As(err, &e) || e.Code != "invalid_user" || e.Fields["email"] == "" || e.Fields["username"] == "" || e.Fields["display_name"] == "" {
			t.Errorf("invalid user: %v %+v", err, e)
		}
		if got, err := s.ByLogin(ctx, "ALICE"); err != nil || got.ID != u.ID {
			t.Errorf("ByLogin: %v %v", got, err)
		}
		if _, err := s.Get(ctx, "nope"); code(err) != "user_not_found" || !errs.Is(err, errs.NotFound) {
			t.Errorf("Get unknown: %v", err)
		}
		bob, _ := s.Create(ctx, user.NewUser{Email: "bob@example.com"})
		name := "Bob B."
		if got, err := s.Update(ctx, bob.ID, user.UserPatch{DisplayName: &name}); err != nil || got.DisplayName != name || got.Email != "bob@example.com" {
			t.Errorf("Update: %+v %v", got, err)
		}
		taken := "ALICE@example.com"
		if _, err := s.Update(ctx, bob.ID, user.UserPatch{Email: &taken}); code(err) != "user_email_taken" {
			t.Errorf("Update to a taken email: %v", err)
		}
		if _, err := s.Update(ctx, "nope", user.UserPatch{DisplayName: &name}); code(err) != "user_not_found" {
			t.Errorf("Update unknown: %v", err)
		}
		list, err := s.List(ctx, user.Page{})
		if err != nil || len(list) != 2 || list[0].ID != u.ID {
			t.Errorf("List: %v %v", list, err)
		}
		if page, _ := s.List(ctx, user.Page{After: u.ID, Limit: 1}); len(page) != 1 || page[0].ID != bob.ID {
			t.Errorf("page after alice: %v", page)
		}

		// Delete removes the devices first; a failure to do so keeps the user.
		spy.err = errors.New("boom")
		if err := s.Delete(ctx, u.ID); err == nil {
			t.Fatal("Delete succeeded though removing devices failed")
		}
		if _, err := s.Get(ctx, u.ID); err != nil {
			t.Fatalf("user gone after a failed delete: %v", err)
		}
		spy.err = nil
		if err := s.Delete(ctx, u.ID); err != nil {
			t.Fatal(err)
		}
		if len(spy.calls) != 2 || spy.calls[1] != u.ID {
			t.Errorf("device remover calls %v", spy.calls)
		}
		if err := s.Delete(ctx, u.ID); code(err) != "user_not_found" {
			t.Errorf("second delete: %v", err)
		}
	})
}

func TestGroupsAndMembership(t *testing.T) {
	forEach(t, func(t *testing.T, s *user.Service, _ *removerSpy, db *sqlstore.DB) {
		ctx := context.Background()
		u, _ := s.Create(ctx, user.NewUser{Email: "carol@example.com"})
		g, err := s.CreateGroup(ctx, user.NewGroup{Name: " Sales ", Description: "'); DROP TABLE users;--"})
		if err != nil || g.Name != "Sales" || g.Description != "'); DROP TABLE users;--" {
			t.Fatalf("CreateGroup: %+v %v", g, err)
		}
		if _, err := s.CreateGroup(ctx, user.NewGroup{Name: "Sales"}); code(err) != "group_name_taken" {
			t.Errorf("duplicate group: %v", err)
		}
		if _, err := s.CreateGroup(ctx, user.NewGroup{Name: ""}); code(err) != "invalid_group" {
			t.Errorf("empty name: %v", err)
		}
		if err := s.AddMember(ctx, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, g.ID, u.ID); err != nil {
			t.Errorf("adding twice: %v", err)
		}
		if err := s.AddMember(ctx, g.ID, "nope"); code(err) != "user_not_found" {
			t.Errorf("unknown user: %v", err)
		}
		if err := s.AddMember(ctx, "nope", u.ID); code(err) != "group_not_found" {
			t.Errorf("unknown group: %v", err)
		}
		ms, err := s.Members(ctx, g.ID)
		if err != nil || len(ms) != 1 || ms[0].ID != u.ID {
			t.Errorf("Members: %v %v", ms, err)
		}
		if gs, err := s.GroupsOf(ctx, u.ID); err != nil || len(gs) != 1 {
			t.Errorf("GroupsOf: %v %v", gs, err)
		}
		if err := s.RemoveMember(ctx, g.ID, u.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveMember(ctx, g.ID, u.ID); code(err) != "member_not_found" {
			t.Errorf("removing a non-member: %v", err)
		}
		desc := "new"
		if g2, err := s.UpdateGroup(ctx, g.ID, user.GroupPatch{Description: &desc}); err != nil || g2.Description != "new" || g2.Name != "Sales" {
			t.Errorf("UpdateGroup: %+v %v", g2, err)
		}
		if err := s.DeleteGroup(ctx, g.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Group(ctx, g.ID); code(err) != "group_not_found" {
			t.Errorf("deleted group: %v", err)
		}
		if err := s.DeleteGroup(ctx, g.ID); code(err) != "group_not_found" {
			t.Errorf("second delete: %v", err)
		}
	})
}
