package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/custos-uem/custos/api"
	"github.com/custos-uem/custos/api/apitest"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/sqlstore/sqltest"
)

// client speaks to an Env.
type client struct {
	t     *testing.T
	e     *apitest.Env
	token string
}

// resp is an answer: status, headers, raw body and the body decoded.
type resp struct {
	Status int
	Header http.Header
	Raw    []byte
	Body   map[string]any
}

func (r *resp) code() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r *resp) str(k string) string { s, _ := r.Body[k].(string); return s }

func (r *resp) items() []map[string]any {
	var out []map[string]any
	for _, it := range r.Body["items"].([]any) {
		out = append(out, it.(map[string]any))
	}
	return out
}

// do sends a request; body is sent as is when it is a string, else as JSON.
func (c *client) do(method, path string, body any) *resp {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.e.URL+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.send(req)
}

func (c *client) send(req *http.Request) *resp {
	c.t.Helper()
	res, err := c.e.Server.Client().Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := &resp{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.Body)
	}
	return r
}

// must asserts the status.
func (c *client) must(status int, method, path string, body any) *resp {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.Status != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Raw)
	}
	return r
}

func each(t *testing.T, f func(t *testing.T, e *apitest.Env, c *client)) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b, func(t *testing.T) {
			e := apitest.New(t, b, false)
			f(t, e, &client{t: t, e: e, token: e.Token})
		})
	}
}

// rawRequest sends a request line as written, bypassing any client-side
// path cleaning.
func rawRequest(t *testing.T, addr, method, target, auth string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := method + " " + target + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n"
	if auth != "" {
		req += "Authorization: Bearer " + auth + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

func TestNoToken(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		anon := &client{t: t, e: e}
		for _, p := range api.Patterns() {
			method, path, _ := strings.Cut(p, " ")
			if path == api.Prefix+"/openapi.json" {
				continue
			}
			path = strings.NewReplacer("{id}", "0190a000-0000-7000-8000-000000000001", "{userID}", "x", "{childID}", "x", "{bindingID}", "x", "{targetKind}", "group", "{targetID}", "x").Replace(path)
			r := anon.do(method, path, map[string]any{})
			if r.Status != http.StatusUnauthorized || r.code() != "token_required" {
				t.Errorf("%s %s without a token: %d %s", method, path, r.Status, r.Raw)
			}
			if rid := r.Header.Get("X-Request-Id"); rid == "" || r.Body["error"].(map[string]any)["request_id"] != rid {
				t.Errorf("%s: request ID missing from the error: %s", p, r.Raw)
			}
		}
		// A wrong scheme or an empty bearer is no token either.
		req, _ := http.NewRequest("GET", e.URL+api.Prefix+"/users", nil)
		req.Header.Set("Authorization", "Basic YWRtaW46YWRtaW4=")
		if r := anon.send(req); r.Status != 401 {
			t.Errorf("basic auth: %d", r.Status)
		}
		// The public document needs none.
		anon.must(200, "GET", api.Prefix+"/openapi.json", nil)
	})
}

func TestRevokedToken(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		r := c.must(201, "POST", api.Prefix+"/tokens", map[string]any{"name": "ci"})
		tok, id := r.str("token"), r.str("id")
		other := &client{t: t, e: e, token: tok}
		other.must(200, "GET", api.Prefix+"/users", nil)
		c.must(204, "DELETE", api.Prefix+"/tokens/"+id, nil)
		r = other.do("GET", api.Prefix+"/users", nil)
		if r.Status != 401 || r.code() != "token_revoked" {
			t.Fatalf("revoked token: %d %s", r.Status, r.Raw)
		}
		// The refusal is audited against the token's administrator.
		a := c.must(200, "GET", api.Prefix+"/audit?action=auth.denied", nil).items()
		if len(a) != 1 || a[0]["actor"] != e.AdminID || a[0]["outcome"] != "denied" || a[0]["object_id"] != id {
			t.Errorf("denied entry: %v", a)
		}
		c.must(404, "DELETE", api.Prefix+"/tokens/"+id, nil)
	})
}

func TestExpiredToken(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		r := c.must(201, "POST", api.Prefix+"/tokens", map[string]any{"name": "short", "expires_in": "1h"})
		exp, _ := time.Parse(time.RFC3339, r.str("expires_at"))
		if !exp.Equal(e.Clock.Now().Add(time.Hour)) {
			t.Errorf("expires_at %v", r.str("expires_at"))
		}
		short := &client{t: t, e: e, token: r.str("token")}
		short.must(200, "GET", api.Prefix+"/users", nil)
		e.Clock.Add(time.Hour)
		if r := short.do("GET", api.Prefix+"/users", nil); r.Status != 401 || r.code() != "token_expired" {
			t.Fatalf("expired token: %d %s", r.Status, r.Raw)
		}
		for _, bad := range []string{"soon", "-1h", "0s", "100000h"} {
			r := c.do("POST", api.Prefix+"/tokens", map[string]any{"name": "x", "expires_in": bad})
			if r.Status != 400 {
				t.Errorf("expires_in %q: %d %s", bad, r.Status, r.Raw)
			}
		}
	})
}

func TestUnknownTokenIsInvalid(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		for _, tok := range []string{"cst_" + strings.Repeat("A", 43), "nope", e.Token + "x", strings.ToUpper(e.Token)} {
			r := (&client{t: t, e: e, token: tok}).do("GET", api.Prefix+"/users", nil)
			if r.Status != 401 || r.code() != "token_invalid" {
				t.Errorf("token %q: %d %s", tok, r.Status, r.Raw)
			}
		}
	})
}

func TestOddPathSpellingsWithoutToken(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		addr := strings.TrimPrefix(e.URL, "http://")
		for _, target := range []string{
			"//api/v1/users",
			"/api/v1/../v1/users",
			"/api/v1/%2e%2e/v1/users",
			"/api/v1/%2E%2E/v1/users",
			"/api/..;/v1/users",
			"/api/v1/users;",
			"/api/v1/./users",
			"/api/v1/users/",
			"/api/v1//users",
			"/api%2fv1%2fusers",
			"/api/v1/users%00",
			"/API/V1/USERS",
			"/device/../api/v1/users",
			"/device/..%2f..%2fapi/v1/users",
			"//api/v1/openapi.json",
			"/api/v1/../v1/openapi.json",
			"/api/v1/openapi.json/",
			"http://" + addr + "//api/v1/users",
			"*",
		} {
			for _, m := range []string{"GET", "POST", "DELETE"} {
				status, body := rawRequest(t, addr, m, target, "")
				if status != http.StatusUnauthorized && !(status == 400 && target == "*") {
					t.Errorf("%s %s without a token: %d %s", m, target, status, body)
				}
				if bytes.Contains(body, []byte(`"items"`)) {
					t.Errorf("%s %s leaked a listing: %s", m, target, body)
				}
			}
		}
		// With a token an odd spelling reaches no handler by accident: it
		// is redirected to the clean path or not found, never served as is.
		for _, target := range []string{"//api/v1/users", "/api/v1/../v1/users", "/api/v1/%2e%2e/v1/users", "/api/..;/v1/users"} {
			status, body := rawRequest(t, addr, "DELETE", target, e.Token)
			if status == 200 || status == 204 {
				t.Errorf("DELETE %s with a token: %d %s", target, status, body)
			}
		}
	})
}

func TestMalformedJSON(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		for _, body := range []string{`{"email":`, `not json`, `{"email":"a@b.c"}{}`, `[1,2`, ``} {
			r := c.do("POST", api.Prefix+"/users", body)
			if r.Status != 400 || (r.code() != "malformed_json" && r.code() != "json_trailing_data") {
				t.Errorf("body %q: %d %s", body, r.Status, r.Raw)
			}
		}
		if r := c.do("POST", api.Prefix+"/users", `{"email":42}`); r.Status != 400 || r.code() != "wrong_field_type" {
			t.Errorf("wrong type: %d %s", r.Status, r.Raw)
		}
		req, _ := http.NewRequest("POST", e.URL+api.Prefix+"/users", strings.NewReader(`email=a@b.c`))
		req.Header.Set("Authorization", "Bearer "+e.Token)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r := c.send(req); r.Status != 400 || r.code() != "unsupported_media_type" {
			t.Errorf("form body: %d %s", r.Status, r.Raw)
		}
	})
}

func TestUnknownField(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		for path, body := range map[string]string{
			"/users":               `{"email":"a@example.com","role":"admin"}`,
			"/groups":              `{"name":"g","members":[]}`,
			"/activation-profiles": `{"name":"p","types":{"linux":"mdm_controls"},"id":"x"}`,
			"/tokens":              `{"name":"t","admin_id":"someone-else"}`,
		} {
			r := c.do("POST", api.Prefix+path, body)
			if r.Status != 400 || r.code() != "unknown_field" {
				t.Errorf("POST %s %s: %d %s", path, body, r.Status, r.Raw)
			}
		}
		if r := c.must(200, "GET", api.Prefix+"/users", nil); len(r.items()) != 0 {
			t.Errorf("a refused body created a user: %s", r.Raw)
		}
	})
}

func TestOversizedBody(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		for path, limit := range map[string]int{
			"/users":               api.MaxUserBody,
			"/groups":              api.MaxGroupBody,
			"/activation-profiles": api.MaxProfileBody,
			"/tokens":              api.MaxTokenBody,
		} {
			big := `{"name":"` + strings.Repeat("a", limit) + `"}`
			if r := c.do("POST", api.Prefix+path, big); r.Status != 413 || r.code() != "body_too_large" {
				t.Errorf("POST %s with %d bytes: %d %s", path, len(big), r.Status, r.Raw)
			}
			// Without a Content-Length (chunked), the limit holds while reading.
			req, _ := http.NewRequest("POST", e.URL+api.Prefix+path, io.MultiReader(strings.NewReader(big)))
			req.ContentLength = -1
			req.Header.Set("Authorization", "Bearer "+e.Token)
			if r := c.send(req); r.Status != 413 || r.code() != "body_too_large" {
				t.Errorf("chunked POST %s: %d %s", path, r.Status, r.Raw)
			}
		}
		if r := c.do("POST", api.Prefix+"/groups/x/members", `{"user_id":"`+strings.Repeat("a", api.MaxMemberBody)+`"}`); r.Status != 413 {
			t.Errorf("member body: %d", r.Status)
		}
		// The failed attempts are audited.
		a := c.must(200, "GET", api.Prefix+"/audit?action=user.create", nil).items()
		if len(a) != 2 || a[0]["outcome"] != "failed" || a[0]["detail"].(map[string]any)["error"] != "body_too_large" {
			t.Errorf("audit of refused bodies: %v", a)
		}
	})
}

func TestDeepNesting(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		deep := `{"email":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`
		if r := c.do("POST", api.Prefix+"/users", deep); r.Status != 400 || r.code() != "json_too_deep" {
			t.Errorf("deep body: %d %s", r.Status, r.Raw)
		}
		deep = `{"name":"p","types":` + strings.Repeat(`{"a":`, 40) + `1` + strings.Repeat("}", 40) + `}`
		if r := c.do("POST", api.Prefix+"/activation-profiles", deep); r.Status != 400 || r.code() != "json_too_deep" {
			t.Errorf("deep profile: %d %s", r.Status, r.Raw)
		}
	})
}

func TestScriptAndSQLStoredAsPlainData(t *testing.T) {
	const script = `<script>alert("x")</script>`
	const sql = `'); DROP TABLE users;--`
	const tmpl = `{{.Secret}} ${jndi:ldap://x}`
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		u := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": "mallory@example.com", "display_name": script + sql + tmpl})
		if bytes.Contains(u.Raw, []byte("<script>")) {
			t.Errorf("markup not escaped in JSON: %s", u.Raw)
		}
		if ct := u.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		g := c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": sql, "description": script})
		p := c.must(201, "POST", api.Prefix+"/activation-profiles", map[string]any{"name": script, "description": sql, "types": map[string]string{"linux": "mdm_controls"}})
		got := c.must(200, "GET", api.Prefix+"/users/"+u.str("id"), nil)
		if got.str("display_name") != script+sql+tmpl {
			t.Errorf("display name %q", got.str("display_name"))
		}
		if gg := c.must(200, "GET", api.Prefix+"/groups/"+g.str("id"), nil); gg.str("name") != sql || gg.str("description") != script {
			t.Errorf("group %s", gg.Raw)
		}
		if pp := c.must(200, "GET", api.Prefix+"/activation-profiles/"+p.str("id"), nil); pp.str("name") != script || pp.str("description") != sql {
			t.Errorf("profile %s", pp.Raw)
		}
		// A SQL-looking login finds nothing and breaks nothing.
		if r := c.must(200, "GET", api.Prefix+"/users?login="+url.QueryEscape(sql), nil); len(r.items()) != 0 {
			t.Errorf("login lookup: %s", r.Raw)
		}
		if r := c.must(200, "GET", api.Prefix+"/users", nil); len(r.items()) != 1 {
			t.Errorf("users table after the attempt: %s", r.Raw)
		}
		// A device-controlled name is data too.
		c.must(201, "POST", api.Prefix+"/users/"+u.str("id")+"/activation-passwords", map[string]any{"password": "correct horse"})
		id := e.EnrollDevice(t, "mallory@example.com", "correct horse", "hw-"+sql, script)
		d := c.must(200, "GET", api.Prefix+"/devices/"+id, nil)
		if d.str("name") != script || d.str("hardware_id") != "hw-"+sql {
			t.Errorf("device %s", d.Raw)
		}
	})
}

var generatedPassword = regexp.MustCompile(`^[A-HJ-NP-Z2-9]{4}(-[A-HJ-NP-Z2-9]{4}){3}$`)

func TestGeneratedPasswordShownOnce(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		u := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": "pat@example.com"})
		path := api.Prefix + "/users/" + u.str("id") + "/activation-passwords"
		r := c.must(201, "POST", path, nil) // no body: generate, default expiry
		pw := r.str("password")
		if !generatedPassword.MatchString(pw) || r.Body["generated"] != true {
			t.Fatalf("generated password %q: %s", pw, r.Raw)
		}
		exp, _ := time.Parse(time.RFC3339, r.str("expires_at"))
		if !exp.Equal(e.Clock.Now().Add(30 * 24 * time.Hour)) {
			t.Errorf("default expiry %v", exp)
		}
		// Never readable again: not in the listing, not in the audit trail.
		list := c.must(200, "GET", path, nil)
		au := c.must(200, "GET", api.Prefix+"/audit", nil)
		for _, raw := range [][]byte{list.Raw, au.Raw} {
			if bytes.Contains(raw, []byte(pw)) || bytes.Contains(raw, []byte(`"hash"`)) || bytes.Contains(raw, []byte(`"password"`)) {
				t.Errorf("password or hash readable: %s", raw)
			}
		}
		items := list.items()
		if len(items) != 1 || items[0]["id"] != r.str("id") {
			t.Fatalf("listing %s", list.Raw)
		}
		// It is the real password: a device activates with it.
		e.EnrollDevice(t, "pat@example.com", pw, "hw-1", "laptop")

		// An administrator's own choice, with an expiry, is also shown once.
		r = c.must(201, "POST", path, map[string]any{"password": "my own secret", "expires_in": "2h"})
		if r.str("password") != "my own secret" || r.Body["generated"] != false {
			t.Errorf("chosen password %s", r.Raw)
		}
		for _, bad := range []map[string]any{{"password": "short"}, {"expires_in": "forever"}, {"expires_in": "9000h"}} {
			if r := c.do("POST", path, bad); r.Status != 400 {
				t.Errorf("%v: %d %s", bad, r.Status, r.Raw)
			}
		}
		// Revoke the unused one; the used one stays used.
		if r := c.must(200, "DELETE", path, nil); r.Body["revoked"] != float64(1) {
			t.Errorf("revoke: %s", r.Raw)
		}
		c.must(404, "POST", api.Prefix+"/users/0190a000-0000-7000-8000-000000000009/activation-passwords", nil)
	})
}

func TestAuditEntriesHaveActorIPAndRequestID(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		r := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": "audit@example.com"})
		rid := r.Header.Get("X-Request-Id")
		dup := c.must(409, "POST", api.Prefix+"/users", map[string]any{"email": "AUDIT@example.com", "username": "other"})
		if dup.code() != "user_email_taken" {
			t.Errorf("duplicate: %s", dup.Raw)
		}
		c.must(200, "GET", api.Prefix+"/users", nil) // reads are not audited
		es := c.must(200, "GET", api.Prefix+"/audit?action=user.create", nil).items()
		if len(es) != 2 {
			t.Fatalf("entries: %v", es)
		}
		failed, ok := es[0], es[1] // newest first
		if ok["actor"] != e.AdminID || ok["actor_ip"] != "127.0.0.1" || ok["request_id"] != rid || ok["outcome"] != "ok" ||
			ok["object_type"] != "user" || ok["object_id"] != r.str("id") {
			t.Errorf("entry %v", ok)
		}
		if d := ok["detail"].(map[string]any); d["admin"] != "admin" || d["token_id"] == "" || d["email"] != "audit@example.com" {
			t.Errorf("detail %v", d)
		}
		if failed["outcome"] != "failed" || failed["request_id"] != dup.Header.Get("X-Request-Id") || failed["detail"].(map[string]any)["error"] != "user_email_taken" {
			t.Errorf("failed entry %v", failed)
		}
		if all := c.must(200, "GET", api.Prefix+"/audit", nil).items(); len(all) != 2 {
			t.Errorf("reads were audited: %v", all)
		}
		// Every mutating route leaves one entry.
		g := c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "g"})
		gid, uid := g.str("id"), r.str("id")
		c.must(204, "POST", api.Prefix+"/groups/"+gid+"/members", map[string]any{"user_id": uid})
		c.must(204, "DELETE", api.Prefix+"/groups/"+gid+"/members/"+uid, nil)
		c.must(200, "PATCH", api.Prefix+"/groups/"+gid, map[string]any{"description": "d"})
		c.must(204, "DELETE", api.Prefix+"/groups/"+gid, nil)
		c.must(200, "PATCH", api.Prefix+"/users/"+uid, map[string]any{"display_name": "A"})
		c.must(201, "POST", api.Prefix+"/users/"+uid+"/activation-passwords", nil)
		c.must(200, "DELETE", api.Prefix+"/users/"+uid+"/activation-passwords", nil)
		c.must(204, "DELETE", api.Prefix+"/users/"+uid, nil)
		p := c.must(201, "POST", api.Prefix+"/activation-profiles", map[string]any{"name": "p", "types": map[string]string{"ios": "mdm_controls"}})
		c.must(200, "PATCH", api.Prefix+"/activation-profiles/"+p.str("id"), map[string]any{"rank": 5})
		c.must(204, "DELETE", api.Prefix+"/activation-profiles/"+p.str("id"), nil)
		tk := c.must(201, "POST", api.Prefix+"/tokens", map[string]any{"name": "t"})
		c.must(204, "DELETE", api.Prefix+"/tokens/"+tk.str("id"), nil)
		c.must(404, "DELETE", api.Prefix+"/devices/0190a000-0000-7000-8000-000000000001", nil)
		var actions []string
		for _, it := range c.must(200, "GET", api.Prefix+"/audit?limit=500", nil).items() {
			actions = append(actions, it["action"].(string))
		}
		slices.Sort(actions)
		actions = slices.Compact(actions)
		want := []string{"device.remove", "group.create", "group.delete", "group.member.add", "group.member.remove", "group.update",
			"profile.create", "profile.delete", "profile.update", "token.create", "token.revoke",
			"user.create", "user.delete", "user.password.revoke", "user.password.set", "user.update"}
		if !slices.Equal(actions, want) {
			t.Errorf("audited actions\n got %v\nwant %v", actions, want)
		}
		// Paging backwards through the trail.
		p1 := c.must(200, "GET", api.Prefix+"/audit?limit=3", nil)
		if len(p1.items()) != 3 || p1.str("next") == "" {
			t.Fatalf("page 1: %s", p1.Raw)
		}
		p2 := c.must(200, "GET", api.Prefix+"/audit?limit=3&before="+p1.str("next"), nil)
		if p2.items()[0]["id"].(float64) >= p1.items()[2]["id"].(float64) {
			t.Errorf("page 2 does not continue page 1")
		}
		if r := c.do("GET", api.Prefix+"/audit?before=x", nil); r.Status != 400 {
			t.Errorf("bad before: %d", r.Status)
		}
	})
}

func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		r := (&client{t: t, e: e}).must(200, "GET", api.Prefix+"/openapi.json", nil)
		if r.Body["openapi"] != "3.1.0" {
			t.Fatalf("openapi version %v", r.Body["openapi"])
		}
		var documented []string
		for path, item := range r.Body["paths"].(map[string]any) {
			for method, op := range item.(map[string]any) {
				documented = append(documented, strings.ToUpper(method)+" "+path)
				o := op.(map[string]any)
				if o["operationId"] == "" || o["responses"] == nil {
					t.Errorf("%s %s: incomplete operation", method, path)
				}
				for _, ref := range refs(o) {
					name := strings.TrimPrefix(ref, "#/components/schemas/")
					if _, ok := r.Body["components"].(map[string]any)["schemas"].(map[string]any)[name]; !ok {
						t.Errorf("%s %s: dangling $ref %s", method, path, ref)
					}
				}
			}
		}
		registered := api.Patterns()
		slices.Sort(documented)
		slices.Sort(registered)
		if !slices.Equal(documented, registered) {
			t.Fatalf("document and routes differ\ndocumented %v\nregistered %v", documented, registered)
		}
		// Every documented operation is served: an authenticated request
		// reaches a handler (never the router's route_not_found or 405).
		for _, p := range registered {
			method, path, _ := strings.Cut(p, " ")
			path = strings.NewReplacer("{id}", "0190a000-0000-7000-8000-00000000000f", "{userID}", "0190a000-0000-7000-8000-00000000000e",
				"{childID}", "0190a000-0000-7000-8000-00000000000d", "{bindingID}", "0190a000-0000-7000-8000-00000000000b", "{targetKind}", "group", "{targetID}", "0190a000-0000-7000-8000-00000000000c").Replace(path)
			r := c.do(method, path, map[string]any{})
			if r.code() == "route_not_found" || r.Status == http.StatusMethodNotAllowed || r.Status >= 500 {
				t.Errorf("%s: %d %s", p, r.Status, r.Raw)
			}
		}
		// And nothing undocumented is: a neighbour of a real route is not found.
		if r := c.do("PUT", api.Prefix+"/users", nil); r.Status != 405 && r.code() != "route_not_found" {
			t.Errorf("PUT /users: %d", r.Status)
		}
		if r := c.do("GET", api.Prefix+"/rolez", nil); r.code() != "route_not_found" {
			t.Errorf("GET /rolez: %d %s", r.Status, r.Raw)
		}
	})
}

func refs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, y := range x {
			if s, ok := y.(string); ok && k == "$ref" {
				out = append(out, s)
			}
			out = append(out, refs(y)...)
		}
	case []any:
		for _, y := range x {
			out = append(out, refs(y)...)
		}
	}
	return out
}

func TestUnknownObjectsAre404(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		const id = "0190a000-0000-7000-8000-000000000001"
		g := c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "g"})
		for _, tc := range []struct{ method, path, code string }{
			{"GET", "/users/" + id, "user_not_found"},
			{"PATCH", "/users/" + id, "user_not_found"},
			{"DELETE", "/users/" + id, "user_not_found"},
			{"GET", "/users/" + id + "/effective-profile", "user_not_found"},
			{"GET", "/users/" + id + "/activation-passwords", "user_not_found"},
			{"DELETE", "/users/" + id + "/activation-passwords", "user_not_found"},
			{"GET", "/groups/" + id, "group_not_found"},
			{"PATCH", "/groups/" + id, "group_not_found"},
			{"DELETE", "/groups/" + id, "group_not_found"},
			{"GET", "/groups/" + id + "/members", "group_not_found"},
			{"DELETE", "/groups/" + g.str("id") + "/members/" + id, "member_not_found"},
			{"GET", "/activation-profiles/" + id, "profile_not_found"},
			{"PATCH", "/activation-profiles/" + id, "profile_not_found"},
			{"DELETE", "/activation-profiles/" + id, "profile_not_found"},
			{"GET", "/devices/" + id, "device_not_found"},
			{"DELETE", "/devices/" + id, "device_not_found"},
			{"DELETE", "/tokens/" + id, "token_not_found"},
			{"GET", "/users/%00", "user_not_found"},
			{"GET", "/users/" + strings.Repeat("a", 65), "user_not_found"},
			{"GET", "/devices/%C3%A9", "device_not_found"},
		} {
			var body any
			if tc.method == "PATCH" {
				body = map[string]any{}
			}
			r := c.do(tc.method, api.Prefix+tc.path, body)
			if r.Status != 404 || r.code() != tc.code {
				t.Errorf("%s %s: %d %s, want 404 %s", tc.method, tc.path, r.Status, r.Raw, tc.code)
			}
		}
		if r := c.do("POST", api.Prefix+"/groups/"+g.str("id")+"/members", map[string]any{"user_id": id}); r.Status != 404 || r.code() != "user_not_found" {
			t.Errorf("add unknown member: %d %s", r.Status, r.Raw)
		}
	})
}

func TestUsersGroupsProfilesAndAssignment(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		var ids []string
		for i := range 5 {
			r := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": fmt.Sprintf("User%d@Example.com", i), "display_name": fmt.Sprint("User ", i)})
			if r.str("email") != fmt.Sprintf("user%d@example.com", i) || r.str("username") != fmt.Sprintf("user%d", i) {
				t.Errorf("normalised %s", r.Raw)
			}
			ids = append(ids, r.str("id"))
		}
		// Pages of two.
		var seen []string
		next := ""
		for range 10 {
			r := c.must(200, "GET", api.Prefix+"/users?limit=2&after="+next, nil)
			for _, it := range r.items() {
				seen = append(seen, it["id"].(string))
			}
			if next = r.str("next"); next == "" {
				break
			}
		}
		if !slices.Equal(seen, ids) {
			t.Errorf("paged %v, want %v", seen, ids)
		}
		for _, q := range []string{"limit=0", "limit=501", "limit=x", "after=%00"} {
			if r := c.do("GET", api.Prefix+"/users?"+q, nil); r.Status != 400 {
				t.Errorf("?%s: %d", q, r.Status)
			}
		}
		if r := c.must(200, "GET", api.Prefix+"/users?login=USER3", nil); len(r.items()) != 1 || r.items()[0]["id"] != ids[3] {
			t.Errorf("login lookup: %s", r.Raw)
		}
		if r := c.do("POST", api.Prefix+"/users", map[string]any{"email": "not an email"}); r.Status != 400 || r.code() != "invalid_user" || r.Body["error"].(map[string]any)["fields"].(map[string]any)["email"] == nil {
			t.Errorf("bad email: %s", r.Raw)
		}

		// Effective profile: default, then group, then direct.
		ep := c.must(200, "GET", api.Prefix+"/users/"+ids[0]+"/effective-profile", nil)
		if ep.str("source") != "default" {
			t.Errorf("effective %s", ep.Raw)
		}
		types := c.must(200, "GET", api.Prefix+"/activation-types", nil)
		if len(types.items()) == 0 || len(types.Body["platforms"].([]any)) == 0 {
			t.Errorf("types %s", types.Raw)
		}
		pg := c.must(201, "POST", api.Prefix+"/activation-profiles", map[string]any{"name": "Group profile", "types": map[string]string{"android": "work_space_only"}, "rank": 5, "max_devices": 2})
		pu := c.must(201, "POST", api.Prefix+"/activation-profiles", map[string]any{"name": "User profile", "types": map[string]string{"ios": "user_privacy"}})
		if pu.Body["rank"] != float64(api.DefaultProfileRank) || pu.Body["max_devices"] != float64(api.DefaultProfileMaxDevices) {
			t.Errorf("profile defaults %s", pu.Raw)
		}
		if r := c.do("POST", api.Prefix+"/activation-profiles", map[string]any{"name": "bad", "types": map[string]string{"ios": "work_space_only"}}); r.Status != 400 || r.code() != "invalid_activation_profile" {
			t.Errorf("type not for platform: %s", r.Raw)
		}
		if r := c.do("POST", api.Prefix+"/activation-profiles", map[string]any{"name": "Group profile", "types": map[string]string{"ios": "mdm_controls"}}); r.Status != 409 || r.code() != "profile_name_taken" {
			t.Errorf("duplicate profile: %s", r.Raw)
		}
		g := c.must(201, "POST", api.Prefix+"/groups", map[string]any{"name": "Field", "activation_profile_id": pg.str("id")})
		c.must(204, "POST", api.Prefix+"/groups/"+g.str("id")+"/members", map[string]any{"user_id": ids[0]})
		c.must(204, "POST", api.Prefix+"/groups/"+g.str("id")+"/members", map[string]any{"user_id": ids[0]})
		if m := c.must(200, "GET", api.Prefix+"/groups/"+g.str("id")+"/members", nil).items(); len(m) != 1 || m[0]["id"] != ids[0] {
			t.Errorf("members %v", m)
		}
		if ep := c.must(200, "GET", api.Prefix+"/users/"+ids[0]+"/effective-profile", nil); ep.str("source") != "group" || ep.Body["profile"].(map[string]any)["id"] != pg.str("id") {
			t.Errorf("effective via group %s", ep.Raw)
		}
		c.must(200, "PATCH", api.Prefix+"/users/"+ids[0], map[string]any{"activation_profile_id": pu.str("id")})
		if ep := c.must(200, "GET", api.Prefix+"/users/"+ids[0]+"/effective-profile", nil); ep.str("source") != "user" {
			t.Errorf("effective direct %s", ep.Raw)
		}
		if r := c.do("PATCH", api.Prefix+"/users/"+ids[0], map[string]any{"activation_profile_id": "0190a000-0000-7000-8000-000000000001"}); r.Status != 400 || r.code() != "activation_profile_not_found" {
			t.Errorf("assign unknown profile: %s", r.Raw)
		}
		u := c.must(200, "PATCH", api.Prefix+"/users/"+ids[0], map[string]any{"activation_profile_id": ""})
		if u.str("activation_profile_id") != "" || u.str("email") != "user0@example.com" {
			t.Errorf("unassign %s", u.Raw)
		}
		// Updating a profile; deleting it clears the group's assignment.
		pp := c.must(200, "PATCH", api.Prefix+"/activation-profiles/"+pg.str("id"), map[string]any{"description": "field staff", "types": map[string]string{"linux": "mdm_controls"}})
		if pp.str("description") != "field staff" || pp.Body["rank"] != float64(5) || len(pp.Body["types"].(map[string]any)) != 1 {
			t.Errorf("patched profile %s", pp.Raw)
		}
		if r := c.must(200, "GET", api.Prefix+"/activation-profiles", nil); len(r.items()) != 3 {
			t.Errorf("profiles %s", r.Raw)
		}
		c.must(204, "DELETE", api.Prefix+"/activation-profiles/"+pg.str("id"), nil)
		if gg := c.must(200, "GET", api.Prefix+"/groups/"+g.str("id"), nil); gg.str("activation_profile_id") != "" {
			t.Errorf("group keeps a deleted profile: %s", gg.Raw)
		}
		if r := c.do("DELETE", api.Prefix+"/activation-profiles/"+e.Activation.DefaultProfileID, nil); r.Status != 409 || r.code() != "default_profile" {
			t.Errorf("delete default: %s", r.Raw)
		}
		if r := c.do("PATCH", api.Prefix+"/groups/"+g.str("id"), map[string]any{"name": ""}); r.Status != 400 {
			t.Errorf("empty group name: %s", r.Raw)
		}
		if r := c.must(200, "GET", api.Prefix+"/groups", nil); len(r.items()) != 1 {
			t.Errorf("groups %s", r.Raw)
		}
	})
}

func TestDevicesListGetRemove(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		u := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": "dev@example.com"})
		uid := u.str("id")
		other := c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": "other@example.com"})
		var devs []string
		for i := range 3 {
			pw := c.must(201, "POST", api.Prefix+"/users/"+uid+"/activation-passwords", nil).str("password")
			devs = append(devs, e.EnrollDevice(t, "dev@example.com", pw, fmt.Sprint("hw-", i), fmt.Sprint("laptop ", i)))
		}
		pw := c.must(201, "POST", api.Prefix+"/users/"+other.str("id")+"/activation-passwords", nil).str("password")
		otherDev := e.EnrollDevice(t, "other@example.com", pw, "hw-other", "phone")
		e.Report(t, devs[0], device.Info{Hostname: "<b>host</b>", OSName: "Debian"}, []device.App{{Name: "bash", Version: "5.2"}})

		all := c.must(200, "GET", api.Prefix+"/devices", nil).items()
		if len(all) != 4 || all[0]["user_email"] != "dev@example.com" || all[3]["user_email"] != "other@example.com" || all[0]["state"] != "enrolled" {
			t.Fatalf("devices %v", all)
		}
		mine := c.must(200, "GET", api.Prefix+"/devices?user="+uid+"&limit=2", nil)
		if len(mine.items()) != 2 || mine.str("next") != devs[1] {
			t.Errorf("page 1 of user's devices %s", mine.Raw)
		}
		if rest := c.must(200, "GET", api.Prefix+"/devices?user="+uid+"&limit=2&after="+mine.str("next"), nil); len(rest.items()) != 1 || rest.str("next") != "" {
			t.Errorf("page 2 %s", rest.Raw)
		}
		d := c.must(200, "GET", api.Prefix+"/devices/"+devs[0], nil)
		inv, _ := d.Body["inventory"].(map[string]any)
		if d.str("user_email") != "dev@example.com" || inv == nil || inv["info"].(map[string]any)["hostname"] != "<b>host</b>" || len(inv["software"].([]any)) != 1 {
			t.Errorf("device detail %s", d.Raw)
		}
		if d := c.must(200, "GET", api.Prefix+"/devices/"+devs[1], nil); d.Body["inventory"] != nil {
			t.Errorf("inventory before the first report: %s", d.Raw)
		}

		c.must(204, "DELETE", api.Prefix+"/devices/"+devs[0], nil)
		if r := c.do("DELETE", api.Prefix+"/devices/"+devs[0], nil); r.Status != 404 || r.code() != "device_not_found" {
			t.Errorf("second remove %s", r.Raw)
		}
		if got, _ := e.DB.Device(context.Background(), devs[0]); got.State != device.StateRemoved {
			t.Errorf("state after remove %v", got.State)
		}
		if r := c.must(200, "GET", api.Prefix+"/devices?state=removed", nil); len(r.items()) != 1 || r.items()[0]["id"] != devs[0] {
			t.Errorf("removed devices %s", r.Raw)
		}
		if r := c.do("GET", api.Prefix+"/devices?state=lost", nil); r.Status != 400 {
			t.Errorf("bad state %d", r.Status)
		}
		es := c.must(200, "GET", api.Prefix+"/audit?action=device.remove&object="+devs[0], nil).items()
		if len(es) != 2 || es[1]["outcome"] != "ok" || es[0]["outcome"] != "failed" {
			t.Errorf("device.remove entries %v", es)
		}

		// Deleting the user removes (revokes) their devices first.
		c.must(204, "DELETE", api.Prefix+"/users/"+uid, nil)
		if r := c.must(200, "GET", api.Prefix+"/devices", nil); len(r.items()) != 1 || r.items()[0]["id"] != otherDev {
			t.Errorf("devices after deleting the user %s", r.Raw)
		}
		crl, err := e.DB.RevokedCerts(context.Background(), e.Clock.Now())
		if err != nil || len(crl) != 3 {
			t.Errorf("revoked certificates %d %v, want 3", len(crl), err)
		}
	})
}

func TestTokensNeverShowHashes(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		r := c.must(201, "POST", api.Prefix+"/tokens", map[string]any{"name": "<script>ci</script>"})
		plain := r.str("token")
		if !strings.HasPrefix(plain, "cst_") || r.str("admin_id") != e.AdminID || r.str("name") != "<script>ci</script>" {
			t.Fatalf("created %s", r.Raw)
		}
		list := c.must(200, "GET", api.Prefix+"/tokens", nil)
		if len(list.items()) != 2 {
			t.Fatalf("tokens %s", list.Raw)
		}
		for _, bad := range []string{plain, e.Token, `"hash"`, `"token"`} {
			if bytes.Contains(list.Raw, []byte(bad)) {
				t.Errorf("token listing shows %s: %s", bad, list.Raw)
			}
		}
		if bytes.Contains(c.must(200, "GET", api.Prefix+"/audit", nil).Raw, []byte(plain)) {
			t.Error("the audit trail shows a token")
		}
		if r := c.do("POST", api.Prefix+"/tokens", map[string]any{"name": ""}); r.Status != 400 || r.code() != "invalid_token_name" {
			t.Errorf("empty name %s", r.Raw)
		}
		// Last use is recorded.
		(&client{t: t, e: e, token: plain}).must(200, "GET", api.Prefix+"/users", nil)
		for _, it := range c.must(200, "GET", api.Prefix+"/tokens", nil).items() {
			if it["id"] == r.str("id") && it["last_used_at"] == nil {
				t.Errorf("last_used_at not set: %v", it)
			}
		}
	})
}

// A database that refuses audit writes does not fail the action.
func TestAuditFailureDoesNotFailTheAction(t *testing.T) {
	each(t, func(t *testing.T, e *apitest.Env, c *client) {
		e.FailAudit.Store(true)
		c.must(201, "POST", api.Prefix+"/users", map[string]any{"email": "x@example.com"})
		e.FailAudit.Store(false)
		if r := c.must(200, "GET", api.Prefix+"/users", nil); len(r.items()) != 1 {
			t.Errorf("users %s", r.Raw)
		}
	})
}
