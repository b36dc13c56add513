package httpx

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/custos-uem/custos/errs"
)

// testRouter has one public route, one device route and one admin route;
// device auth accepts header X-Device: ok, admin auth Authorization: ok.
func testRouter(t *testing.T) *httptest.Server {
	t.Helper()
	return testRouterWith(t, func(rt *Router) http.Handler { return rt })
}

// testRouterWith serves what serve makes of the test router.
func testRouterWith(t *testing.T, serve func(*Router) http.Handler) *httptest.Server {
	t.Helper()
	gate := func(header string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get(header) != "ok" {
					WriteError(w, r, errs.E(errs.Unauthenticated, "unauthenticated", "no"))
					return
				}
				next.ServeHTTP(w, r)
			})
		}
	}
	rt := NewRouter(gate("X-Device"), gate("Authorization"))
	ok := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
	}
	rt.Public("GET /healthz", ok("health"))
	rt.Device("POST /device/v1/checkin", ok("checkin"))
	rt.Public("GET /api/v1/openapi.json", ok("openapi"))
	rt.Admin("GET /api/v1/users", ok("users"))
	srv := httptest.NewServer(Observe(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, serve(rt)))
	t.Cleanup(srv.Close)
	return srv
}

// rawGet sends a request line exactly as written (Go's client would clean
// the path first) and returns the status code.
func rawGet(t *testing.T, addr, target, header string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n", target, header)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRouterDeniesOddSpellingsWithoutToken(t *testing.T) {
	srv := testRouter(t)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, target := range []string{
		"/api/v1/users",
		"//api/v1/users",
		"/api/v1/../v1/users",
		"/api/v1/%2e%2e/v1/users",
		"/api/%2E%2E/api/v1/users",
		"/api/..;/v1/users",
		"/api/v1/users;x",
		"/healthz/../api/v1/users",
		"/./api/v1/users",
		"/device/v1/../../api/v1/users",
		"/device/v1/checkin/..%2f..%2fapi/v1/users",
		"/nonexistent",
	} {
		t.Run("fail/"+target, func(t *testing.T) {
			if got := rawGet(t, addr, target, ""); got != http.StatusUnauthorized {
				t.Errorf("GET %s without token = %d, want 401", target, got)
			}
		})
	}
	t.Run("ok/public-route", func(t *testing.T) {
		if got := rawGet(t, addr, "/healthz", ""); got != 200 {
			t.Errorf("status %d", got)
		}
	})
	t.Run("ok/admin-with-token", func(t *testing.T) {
		if got := rawGet(t, addr, "/api/v1/users", "Authorization: ok\r\n"); got != 200 {
			t.Errorf("status %d", got)
		}
	})
	t.Run("fail/device-route-without-certificate", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/device/v1/checkin", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("status %d", resp.StatusCode)
		}
	})
	t.Run("fail/public-pattern-spelled-oddly-is-not-public", func(t *testing.T) {
		if got := rawGet(t, addr, "//healthz", ""); got != 401 {
			t.Errorf("status %d", got)
		}
	})
}

type sample struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func decodeStatus(t *testing.T, body string, ct string, limit int64) (int, ErrorBody) {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v sample
		if err := DecodeJSON(w, r, limit, &v); err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, 200, v)
	})
	r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var eb ErrorBody
	_ = json.Unmarshal(w.Body.Bytes(), &eb)
	return w.Code, eb
}

func TestDecodeJSON(t *testing.T) {
	deep := strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1)
	tests := []struct {
		name, body, ct string
		status         int
		code           string
	}{
		{"fail/malformed", `{"name":`, "application/json", 400, "malformed_json"},
		{"fail/unknown-field", `{"name":"a","admin":true}`, "application/json", 400, "unknown_field"},
		{"fail/wrong-type", `{"n":"three"}`, "application/json", 400, "wrong_field_type"},
		{"fail/oversized", `{"name":"` + strings.Repeat("a", 200) + `"}`, "application/json", 413, "body_too_large"},
		{"fail/too-deep", `{"name":"a","x":` + deep + `}`, "application/json", 400, "json_too_deep"},
		{"fail/trailing-value", `{"name":"a"} {"name":"b"}`, "application/json", 400, "json_trailing_data"},
		{"fail/not-json-content-type", `{"name":"a"}`, "text/plain", 400, "unsupported_media_type"},
		{"ok/plain", `{"name":"<script>alert(1)</script>","n":3}`, "application/json", 200, ""},
		{"ok/charset-param", `{"name":"a"}`, "application/json; charset=utf-8", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, eb := decodeStatus(t, tc.body, tc.ct, 128)
			if status != tc.status || eb.Error.Code != tc.code {
				t.Fatalf("got %d %q, want %d %q", status, eb.Error.Code, tc.status, tc.code)
			}
			if tc.code == "unknown_field" && eb.Error.Fields["admin"] != "unknown field" {
				t.Fatalf("fields = %v, want the bare field name", eb.Error.Fields)
			}
		})
	}
}

func TestErrorAnswerCarriesRequestIDAndHidesInternalCause(t *testing.T) {
	h := Observe(slog.New(slog.NewTextHandler(io.Discard, nil)), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, fmt.Errorf("db: password=hunter2 connection refused"))
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	var eb ErrorBody
	if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil {
		t.Fatal(err)
	}
	if w.Code != 500 || eb.Error.Code != "internal" || strings.Contains(w.Body.String(), "hunter2") {
		t.Fatalf("answer leaked or misclassified: %d %s", w.Code, w.Body.String())
	}
	if eb.Error.RequestID == "" || eb.Error.RequestID != w.Header().Get("X-Request-Id") {
		t.Fatalf("request id %q vs header %q", eb.Error.RequestID, w.Header().Get("X-Request-Id"))
	}
}

func TestIPLimiter(t *testing.T) {
	l := NewIPLimiter(1, 2)
	if !l.Allow("10.0.0.1:1") || !l.Allow("10.0.0.1:2") {
		t.Fatal("burst refused")
	}
	if l.Allow("10.0.0.1:3") {
		t.Fatal("third request in the same instant allowed")
	}
	if !l.Allow("10.0.0.2:1") {
		t.Fatal("another address shares the bucket")
	}
}

func FuzzCheckDepthAgreesWithDecoder(f *testing.F) {
	f.Add([]byte(`{"a":[1,2,{"b":"[[["}]}`))
	f.Add([]byte(`"\"["`))
	f.Add([]byte(strings.Repeat("[", 40)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		if CheckDepth(b, MaxJSONDepth) == nil && json.Unmarshal(b, &v) == nil {
			if d := depth(v); d > MaxJSONDepth {
				t.Fatalf("accepted depth %d", d)
			}
		}
	})
}

func depth(v any) int {
	m := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			m = max(m, depth(e))
		}
		return m + 1
	case map[string]any:
		for _, e := range x {
			m = max(m, depth(e))
		}
		return m + 1
	}
	return 0
}

// TestDevicesOnlyServesNoAdminRoute: what the Core serves to connections
// a relay carries: device routes, and no admin route under any spelling,
// not even with an administrator's credentials or a public admin page.
func TestDevicesOnlyServesNoAdminRoute(t *testing.T) {
	srv := testRouterWith(t, func(rt *Router) http.Handler { return rt.DevicesOnly() })
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct {
		name, target, header string
		want                 int
	}{
		{"fail/admin-with-credentials", "/api/v1/users", "Authorization: ok\r\n", 404},
		{"fail/public-admin-page", "/api/v1/openapi.json", "", 404},
		{"fail/odd-spelling", "/device/../api/v1/users", "Authorization: ok\r\n", 404},
		{"fail/encoded-dots", "/device/%2e%2e/api/v1/users", "Authorization: ok\r\n", 404},
		{"fail/double-slash", "//api/v1/users", "Authorization: ok\r\n", 404},
		{"fail/device-route-without-device", "/device/v1/checkin", "", 401},
		{"ok/health", "/healthz", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rawGet(t, addr, tc.target, tc.header); got != tc.want {
				t.Fatalf("GET %s = %d, want %d", tc.target, got, tc.want)
			}
		})
	}
}
