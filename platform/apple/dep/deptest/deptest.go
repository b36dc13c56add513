// Package deptest is an in-process fake of Apple's device assignment
// (ADE/DEP) API for tests, modelled on Apple's documentation and on the
// shapes of Apple's depsim simulator: GET /session with OAuth1 HMAC-SHA1
// verification of the server token, GET /account, POST /server/devices
// (fetch, cursor and paging), POST /devices/sync (the changes since a
// cursor), POST /profile (define), PUT /profile/devices (assign). It also
// makes server tokens the way Apple Business Manager does: the OAuth1
// tokens' JSON, MIME-wrapped, CMS-encrypted to the MDM server's
// certificate, S/MIME-wrapped (.p7m).
//
// Apple: https://developer.apple.com/documentation/devicemanagement/device-assignment
package deptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/micromdm/nanodep/godep"
	"github.com/smallstep/pkcs7"
)

// Token is a server token the fake accepts.
type Token struct {
	ConsumerKey    string    `json:"consumer_key"`
	ConsumerSecret string    `json:"consumer_secret"`
	AccessToken    string    `json:"access_token"`
	AccessSecret   string    `json:"access_secret"`
	Expiry         time.Time `json:"access_token_expiry"`
}

// event is one change of the device list, as /devices/sync reports it.
type event struct {
	dev godep.DeviceJson
}

// Server is a running fake of Apple's ADE API.
type Server struct {
	URL   string
	Token Token

	srv *httptest.Server

	mu       sync.Mutex
	devices  []godep.DeviceJson // the current list, in assignment order
	events   []event            // every change, in order
	sessions map[string]bool
	profiles map[string]*godep.ProfileJson
	assigned map[string]string // serial → profile UUID
	gen      int               // cursors of an older generation are EXPIRED_CURSOR
	requests map[string]int    // "METHOD /path" → count
}

// NewServer starts a fake with a fresh server token; it is closed when the
// test ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{
		Token: Token{ConsumerKey: "CK_" + rand.Text()[:16], ConsumerSecret: "CS_" + rand.Text(),
			AccessToken: "AT_" + rand.Text()[:16], AccessSecret: "AS_" + rand.Text(), Expiry: time.Now().Add(365 * 24 * time.Hour).UTC().Truncate(time.Second)},
		sessions: map[string]bool{}, profiles: map[string]*godep.ProfileJson{}, assigned: map[string]string{}, requests: map[string]int{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /session", s.session)
	mux.HandleFunc("GET /account", s.authed(s.account))
	mux.HandleFunc("POST /server/devices", s.authed(s.fetch))
	mux.HandleFunc("POST /devices/sync", s.authed(s.sync))
	mux.HandleFunc("POST /profile", s.authed(s.defineProfile))
	mux.HandleFunc("PUT /profile/devices", s.authed(s.assignProfile))
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests[r.Method+" "+r.URL.Path]++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL
	tb.Cleanup(s.srv.Close)
	return s
}

// Requests counts the requests to "METHOD /path".
func (s *Server) Requests(route string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[route]
}

// AddDevices assigns devices to the server (op_type added).
func (s *Server) AddDevices(devs ...godep.DeviceJson) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range devs {
		s.devices = append(s.devices, d)
		s.events = append(s.events, event{dev: withOp(d, godep.DeviceJsonOpTypeAdded)})
	}
}

// RemoveDevice unassigns a device from the server (op_type deleted).
func (s *Server) RemoveDevice(serial string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range s.devices {
		if d.SerialNumber == serial {
			s.devices = append(s.devices[:i], s.devices[i+1:]...)
			s.events = append(s.events, event{dev: withOp(d, godep.DeviceJsonOpTypeDeleted)})
			return
		}
	}
}

// ExpireCursors makes the fake refuse every cursor issued so far as older
// than 7 days (Apple: EXPIRED_CURSOR).
func (s *Server) ExpireCursors() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
}

// Profile returns a defined profile.
func (s *Server) Profile(uuid string) *godep.ProfileJson {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[uuid]
}

// Assigned returns the profile UUID assigned to serial.
func (s *Server) Assigned(serial string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assigned[serial]
}

// Device is a device as Apple lists it.
func Device(serial, model string, family godep.DeviceJsonDeviceFamily, os godep.DeviceJsonOs) godep.DeviceJson {
	desc := strings.ToUpper(model) + " 128GB"
	color := "SPACE GRAY"
	assignedBy := "abm-admin@example.com"
	return godep.DeviceJson{SerialNumber: serial, Model: model, Description: &desc, Color: &color, DeviceFamily: &family,
		Os: &os, DeviceAssignedBy: &assignedBy}
}

func withOp(d godep.DeviceJson, op godep.DeviceJsonOpType) godep.DeviceJson {
	now := time.Now().UTC().Truncate(time.Second)
	d.OpType, d.OpDate = &op, &now
	return d
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiError answers as Apple does: a status and a quoted code.
func apiError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "%q", code)
}

// session checks the OAuth1 signature (RFC 5849 §3.4.2 HMAC-SHA1) of the
// server token and opens a session.
func (s *Server) session(w http.ResponseWriter, r *http.Request) {
	params, ok := parseOAuth(r.Header.Get("Authorization"))
	if !ok || params["oauth_signature_method"] != "HMAC-SHA1" {
		apiError(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	if params["oauth_consumer_key"] != s.Token.ConsumerKey || params["oauth_token"] != s.Token.AccessToken {
		apiError(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	if time.Now().After(s.Token.Expiry) {
		apiError(w, http.StatusForbidden, "T_C_NOT_SIGNED") // Apple refuses an expired token's session
		return
	}
	sig := params["oauth_signature"]
	delete(params, "oauth_signature")
	want := signature(r.Method, s.URL+r.URL.Path, params, s.Token.ConsumerSecret, s.Token.AccessSecret)
	if !hmac.Equal([]byte(sig), []byte(want)) {
		apiError(w, http.StatusUnauthorized, "UNAUTHORIZED")
		return
	}
	tok := "session-" + rand.Text()
	s.mu.Lock()
	s.sessions[tok] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"auth_session_token": tok})
}

func parseOAuth(h string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		return nil, false
	}
	out := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, false
		}
		v, err := url.PathUnescape(strings.Trim(v, `"`))
		if err != nil {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

// signature is the HMAC-SHA1 signature of RFC 5849 §3.4.
func signature(method, baseURL string, params map[string]string, consumerSecret, tokenSecret string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var norm []string
	for _, k := range keys {
		norm = append(norm, enc(k)+"="+enc(params[k]))
	}
	base := method + "&" + enc(baseURL) + "&" + enc(strings.Join(norm, "&"))
	mac := hmac.New(sha1.New, []byte(enc(consumerSecret)+"&"+enc(tokenSecret)))
	mac.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// enc is RFC 5849 §3.6 percent-encoding.
func enc(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		ok := s.sessions[r.Header.Get("X-ADM-Auth-Session")]
		s.mu.Unlock()
		if !ok {
			apiError(w, http.StatusUnauthorized, "UNAUTHORIZED")
			return
		}
		h(w, r)
	}
}

func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"server_name": "Custos test server", "server_uuid": "677cc2e7-8b3c-4a2e-9f51-6a7e4c2b1d00",
		"org_name": "Example Org", "org_email": "it@example.com", "org_phone": "+1 555 0100", "org_address": "1 Example Way",
		"facilitator_id": "abm-admin@example.com", "admin_id": "abm-admin@example.com", "org_id": "123456", "org_type": "org", "org_version": "v2"})
}

type pageReq struct {
	Cursor string `json:"cursor"`
	Limit  int    `json:"limit"`
}

func readReq(r *http.Request, v any) error {
	return json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v)
}

// fetch pages through the current device list; the cursor of its last
// page marks the event log, which /devices/sync continues from.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request) {
	var req pageReq
	if err := readReq(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "MALFORMED_REQUEST_BODY")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	off := 0
	if req.Cursor != "" {
		n, ok := s.parseCursor(w, req.Cursor, "f")
		if !ok {
			return
		}
		off = n
	}
	limit := req.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	end := min(off+limit, len(s.devices))
	off = min(off, end)
	resp := godep.FetchDeviceResponseJson{Devices: append([]godep.DeviceJson{}, s.devices[off:end]...), FetchedUntil: time.Now().UTC()}
	for i := range resp.Devices {
		s.decorate(&resp.Devices[i])
	}
	if end < len(s.devices) {
		resp.MoreToFollow = true
		resp.Cursor = fmt.Sprintf("f:%d:%d", s.gen, end)
	} else {
		resp.Cursor = fmt.Sprintf("s:%d:%d", s.gen, len(s.events))
	}
	writeJSON(w, http.StatusOK, resp)
}

// sync reports the changes since the cursor.
func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	var req pageReq
	if err := readReq(r, &req); err != nil {
		apiError(w, http.StatusBadRequest, "MALFORMED_REQUEST_BODY")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.parseCursor(w, req.Cursor, "s")
	if !ok {
		return
	}
	if n > len(s.events) {
		apiError(w, http.StatusBadRequest, "INVALID_CURSOR")
		return
	}
	limit := req.Limit
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	end := min(n+limit, len(s.events))
	resp := godep.FetchDeviceResponseJson{FetchedUntil: time.Now().UTC(), MoreToFollow: end < len(s.events), Cursor: fmt.Sprintf("s:%d:%d", s.gen, end)}
	for _, e := range s.events[n:end] {
		d := e.dev
		s.decorate(&d)
		resp.Devices = append(resp.Devices, d)
	}
	writeJSON(w, http.StatusOK, resp)
}

// decorate adds the profile the fake assigned.
func (s *Server) decorate(d *godep.DeviceJson) {
	if uuid := s.assigned[d.SerialNumber]; uuid != "" {
		st := godep.DeviceJsonProfileStatusAssigned
		d.ProfileUuid, d.ProfileStatus = &uuid, &st
	}
}

// parseCursor reads a cursor "<kind>:<generation>:<position>", answering
// INVALID_CURSOR or EXPIRED_CURSOR itself when it is not usable.
func (s *Server) parseCursor(w http.ResponseWriter, c, kind string) (int, bool) {
	parts := strings.Split(c, ":")
	if len(parts) != 3 || parts[0] != kind {
		apiError(w, http.StatusBadRequest, "INVALID_CURSOR")
		return 0, false
	}
	gen, err1 := strconv.Atoi(parts[1])
	n, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || n < 0 || gen > s.gen {
		apiError(w, http.StatusBadRequest, "INVALID_CURSOR")
		return 0, false
	}
	if gen < s.gen {
		apiError(w, http.StatusBadRequest, "EXPIRED_CURSOR")
		return 0, false
	}
	return n, true
}

func (s *Server) defineProfile(w http.ResponseWriter, r *http.Request) {
	var p godep.ProfileJson
	if err := readReq(r, &p); err != nil || p.ProfileName == nil || *p.ProfileName == "" || p.Url == nil {
		apiError(w, http.StatusBadRequest, "CONFIG_NAME_REQUIRED")
		return
	}
	if u, err := url.Parse(*p.Url); err != nil || u.Scheme != "https" {
		apiError(w, http.StatusBadRequest, "FLAGS_URL_INVALID") // Apple requires an https url
		return
	}
	var u [16]byte
	rand.Read(u[:])
	uuid := strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:]))
	s.mu.Lock()
	s.profiles[uuid] = &p
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, godep.DefineProfileResponseJson{ProfileUuid: &uuid, Devices: map[string]godep.DefineProfileResponseJsonDevicesValue{}})
}

func (s *Server) assignProfile(w http.ResponseWriter, r *http.Request) {
	var req godep.ProfileServiceRequestJson
	if err := readReq(r, &req); err != nil || req.ProfileUuid == nil {
		apiError(w, http.StatusBadRequest, "MALFORMED_REQUEST_BODY")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.profiles[*req.ProfileUuid] == nil {
		apiError(w, http.StatusBadRequest, "PROFILE_NOT_FOUND")
		return
	}
	out := godep.AssignProfileResponseJson{ProfileUuid: req.ProfileUuid, Devices: map[string]godep.AssignProfileResponseJsonDevicesValue{}}
	for _, serial := range req.Devices {
		st := godep.AssignProfileResponseJsonDevicesValueNOTACCESSIBLE
		for _, d := range s.devices {
			if d.SerialNumber == serial {
				st = godep.AssignProfileResponseJsonDevicesValueSUCCESS
				s.assigned[serial] = *req.ProfileUuid
			}
		}
		out.Devices[serial] = st
	}
	writeJSON(w, http.StatusOK, out)
}

// TokenP7M makes the .p7m Apple Business Manager gives for the MDM server
// whose certificate is certPEM, carrying tok.
func TokenP7M(tb testing.TB, certPEM []byte, tok Token) []byte {
	tb.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		tb.Fatal("deptest: no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	js, _ := json.Marshal(tok)
	inner := "Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n-----BEGIN MESSAGE-----\r\n" + string(js) + "\r\n-----END MESSAGE-----\r\n"
	der, err := pkcs7.Encrypt([]byte(inner), []*x509.Certificate{cert})
	if err != nil {
		tb.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("Content-Type: application/pkcs7-mime; name=\"smime.p7m\"; smime-type=enveloped-data\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n")
	b.WriteString("Content-Description: S/MIME Encrypted Message\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(der)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.Bytes()
}
