// Package api is the administrator REST API: JSON under /api/v1,
// authenticated by bearer API tokens (auth.Service.Middleware as the
// router's AdminAuth), deny-by-default at the mux.
//
// One route table (routes.go) drives both the registration of the handlers
// and the OpenAPI 3.1 document served at /api/v1/openapi.json, so the two
// cannot drift. Handlers only translate HTTP to domain calls on the
// services; every mutating route writes exactly one audit entry — after
// the action, successful or not, before the answer — naming the
// administrator, their address, the object, the request ID and the
// outcome.
//
// Conventions:
//
//   - Request bodies are JSON, read under a limit per endpoint (the Max*Body
//     constants), unknown fields refused, nesting at most httpx.MaxJSONDepth.
//   - Errors are {"error": {"code", "message", "request_id", "fields"}}
//     with a stable code; an unknown object is 404 with a code naming its
//     kind (user_not_found …).
//   - Lists are {"items": […], "next": "…"}: pass next as ?after= (?before=
//     for the audit trail) to get the following page; next is "" on the
//     last page. ?limit= takes 1 to 500 (default 100).
//   - Durations (expires_in) are Go duration strings: "720h", "90m".
//   - Secrets are shown once: the value of a new API token and of a new
//     activation password appear only in the answer that created them;
//     hashes never appear at all. Policy secrets (a Wi-Fi passphrase, a VPN
//     shared secret) are stored and sent to devices, never shown: reads
//     say "***".
//
// # Roles and permissions
//
// Every route names one auth.Permission (the route table's Permission,
// shown in the OpenAPI document as x-custos-permission). Before the
// handler runs, the administrator's role (auth.Admin.Role: a built-in
// role or a custom one, GET /roles) must have it; otherwise the answer is
// 403 permission_denied naming the permission (error.fields.permission)
// and the audit trail gets an entry "<action>.denied" (the route's audit
// action, or its operation ID for a read) with outcome denied. A route
// that names no permission is refused to everybody. Queueing wipe_work,
// wipe_device or raw commands needs auth.WipeSend besides
// auth.CommandsSend, one device or many. Nobody grants what they lack: a
// role created or changed, an administrator created or a role bound to a
// directory group must carry only permissions the caller has.
//
// # Scope of an administrator
//
// An administrator may be limited to the devices of the users in a set of
// groups, nested groups included (auth.Admin.ScopeGroups; empty means
// every device, as for the bootstrap administrator), next to what their
// role allows; the scope is what keeps a regional administrator off the
// rest of the fleet:
//
//   - Every route addressing a device (get, remove, its commands,
//     configuration and compliance) checks the scope next to the fetch. A
//     device outside it is 404 device_not_found, never 403, so that its
//     existence is not revealed; a command of such a device is 404
//     command_not_found.
//   - A bulk send naming any device outside the scope is refused whole:
//     404 device_not_found naming no IDs, nothing queued.
//   - GET /devices lists only the devices in scope.
//   - Deleting a user (which removes their devices) needs the user in
//     scope (else 404 user_not_found).
//   - A scoped administrator sees and revokes only their own tokens, and
//     reads only their own entries of the audit trail (which names objects
//     of every scope).
//   - Only an unscoped administrator creates administrators (403
//     admin_scoped otherwise), and so issues tokens for anyone else; a
//     scoped one could otherwise create a wider administrator.
//   - Only an unscoped administrator binds roles to directory groups.
//   - Only an unscoped administrator changes groups (members, subgroups,
//     the groups themselves): a scope is made of groups, so changing them
//     would widen it.
//
// Users, activation profiles and policies are not scoped, and groups are
// readable by all: a scoped administrator's role says whether they manage
// them (groups excepted, above).
package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/audit"
	"github.com/custos-uem/custos/auth"
	"github.com/custos-uem/custos/command"
	"github.com/custos-uem/custos/compliance"
	"github.com/custos-uem/custos/device"
	"github.com/custos-uem/custos/directory"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/apple/dep"
	"github.com/custos-uem/custos/platform/apple/pushcert"
	"github.com/custos-uem/custos/policy"
	"github.com/custos-uem/custos/user"
)

// Prefix of every API path.
const Prefix = "/api/v1"

// Request body limits, one per kind of body. Each is well above the largest
// valid body (field limits of the domain packages) and far below what
// would cost the server memory.
const (
	MaxUserBody     = 4 << 10  // email, username, display name, profile ID
	MaxGroupBody    = 8 << 10  // name, description (2 KiB), profile ID
	MaxMemberBody   = 1 << 10  // one user ID
	MaxProfileBody  = 16 << 10 // name, description (2 KiB), a type per platform
	MaxPasswordBody = 1 << 10  // a password of at most 128 characters, a duration
	MaxTokenBody    = 1 << 10  // a name of at most 64 bytes, a duration
	// MaxIDLen bounds an object ID in a path or query (ours are 36-byte
	// UUIDs).
	MaxIDLen = 64
	// DefaultLimit and MaxLimit bound ?limit=.
	DefaultLimit = 100
	MaxLimit     = 500
)

// Deps are the services the API drives.
type Deps struct {
	Users      *user.Service
	Activation *activation.Service
	Devices    *device.Service
	// Auth authenticates and scopes administrators; its Scope store must
	// be set for scoped administrators to work (they are refused otherwise).
	Auth       *auth.Service
	Audit      *audit.Logger
	Commands   *command.Service
	Policies   *policy.Service
	Compliance *compliance.Engine
	// SendActivationEmail emails a user their new activation password;
	// nil when the Core has no SMTP server.
	SendActivationEmail func(ctx context.Context, u *user.User, password string, expires time.Time) error
	// Directory syncs the company directory; nil when there is none.
	Directory DirectorySyncer
	// ApplePush is the MDM push certificate and AppleDEP automated
	// enrollment (api/apple.go); nil answers their routes 409.
	ApplePush *pushcert.Service
	AppleDEP  *dep.Service
}

// DirectorySyncer is the company directory's sync (directory.Syncer).
type DirectorySyncer interface {
	Sync(ctx context.Context) (directory.Report, error)
	Last() (directory.Report, bool)
}

// API serves the administrator REST API.
type API struct {
	d       Deps
	openapi []byte
}

// New returns the API over d.
func New(d Deps) *API {
	a := &API{d: d}
	a.openapi = buildOpenAPI(routes)
	return a
}

// Register puts every route of the table on rt: the OpenAPI document is
// public, everything else requires an administrator.
func (a *API) Register(rt *httpx.Router) {
	for i := range routes {
		r := &routes[i]
		if r.Public {
			rt.Public(r.pattern(), a.handler(r))
		} else {
			rt.Admin(r.pattern(), a.handler(r))
		}
	}
}

// Patterns returns the net/http patterns Register registers, in table
// order.
func Patterns() []string {
	out := make([]string, len(routes))
	for i := range routes {
		out[i] = routes[i].pattern()
	}
	return out
}

// RouteInfo describes a route of the table for tests and documentation.
type RouteInfo struct {
	Pattern    string // as Patterns
	Public     bool
	Permission auth.Permission
	Action     string // the audit action of a mutating route
}

// Routes describes every route, in table order.
func Routes() []RouteInfo {
	out := make([]RouteInfo, len(routes))
	for i := range routes {
		r := &routes[i]
		out[i] = RouteInfo{Pattern: r.pattern(), Public: r.Public, Permission: r.Permission, Action: r.Action}
	}
	return out
}

// call is one request to a route: its handler reads the request through
// it and leaves the answer and the audit details on it.
type call struct {
	w     http.ResponseWriter
	r     *http.Request
	route *route
	admin *auth.Admin
	token *auth.Token
	// perms are what the administrator's role allows, resolved once per
	// request before the handler runs.
	perms auth.PermissionSet

	// set by handlers
	status   int
	body     any
	objectID string
	detail   map[string]any
}

func (c *call) ctx() context.Context { return c.r.Context() }

// decode reads the JSON body under the route's limit.
func (c *call) decode(v any) error {
	return httpx.DecodeJSON(c.w, c.r, c.route.BodyLimit, v)
}

// reply sets the answer; the wrapper writes it after the audit entry.
func (c *call) reply(status int, v any) error {
	c.status, c.body = status, v
	return nil
}

// note adds audit detail.
func (c *call) note(k string, v any) {
	if c.detail == nil {
		c.detail = map[string]any{}
	}
	c.detail[k] = v
}

// id returns the path value name, refusing malformed IDs as notFound (no
// object can have them).
func (c *call) id(name string, notFound *errs.Error) (string, error) {
	v := c.r.PathValue(name)
	if !validID(v) {
		return "", notFound
	}
	return v, nil
}

func validID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// require refuses (403 permission_denied) unless the caller's role has p:
// the second check of a handler whose action needs more than its route's
// permission.
func (c *call) require(p auth.Permission) error {
	if !c.perms.Has(p) {
		return auth.ErrPermissionDenied(p)
	}
	return nil
}

// authorize resolves the caller's permissions and checks the route's: a
// route that names none is refused to everybody.
func (a *API) authorize(c *call) error {
	perms, err := a.d.Auth.PermissionsOf(c.ctx(), c.admin)
	if err != nil {
		return err
	}
	c.perms = perms
	return c.require(c.route.Permission)
}

// handler wraps a route's handler: it checks the administrator is there
// (the router's AdminAuth put them in the context; refusing here too keeps
// the API deny-by-default even if it were mounted on a plain mux) and
// that their role has the route's permission, runs it, records the audit
// entry of a mutating route or of any refusal for want of a permission,
// then answers.
func (a *API) handler(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r, route: rt}
		var err error
		if !rt.Public {
			var ok bool
			if c.admin, ok = auth.AdminFromContext(r.Context()); !ok {
				httpx.WriteError(w, r, auth.ErrNoToken)
				return
			}
			c.token, _ = auth.TokenFromContext(r.Context())
			err = a.authorize(c)
		}
		if err == nil {
			err = rt.Handle(a, c)
		}
		_, denied := auth.DeniedPermission(err)
		if rt.Action != "" || denied {
			a.record(c, err)
		}
		if err != nil {
			httpx.WriteError(w, r, err)
			return
		}
		if c.status == http.StatusNoContent {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if c.status == 0 {
			c.status = http.StatusOK
		}
		httpx.WriteJSON(w, c.status, c.body)
	})
}

func (a *API) record(c *call, err error) {
	e := audit.Entry{
		Actor: c.admin.ID, ActorIP: auth.ClientIP(c.r), Action: c.route.Action, ObjectType: c.route.Object,
		ObjectID: c.objectID, Outcome: audit.OutcomeOK, Detail: c.detail,
	}
	if e.ObjectID == "" && validID(c.r.PathValue("id")) {
		e.ObjectID = c.r.PathValue("id")
	}
	if e.Detail == nil {
		e.Detail = map[string]any{}
	}
	e.Detail["admin"] = c.admin.Username
	if c.token != nil {
		e.Detail["token_id"] = c.token.ID
	}
	e.Detail["role"] = c.admin.Role
	if p, ok := auth.DeniedPermission(err); ok {
		// A refusal for want of a permission is its own action, so that
		// the trail can be searched for them (?action=policy.update.denied).
		e.Action = c.route.auditAction() + ".denied"
		if e.ObjectType == "" {
			e.ObjectType = "route"
		}
		e.Outcome = audit.OutcomeDenied
		e.Detail["error"] = "permission_denied"
		e.Detail["permission"] = string(p)
		e.Detail["method"] = c.r.Method
		e.Detail["path"] = truncate(c.r.URL.Path, 256)
	} else if err != nil {
		code, _, _ := errs.Public(err)
		e.Outcome = audit.OutcomeFailed
		e.Detail["error"] = code
	}
	a.d.Audit.Record(c.ctx(), e)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// list is the shape of every listing.
type list[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items, Next: next}
}

// Query errors.
var (
	errBadLimit = func() *errs.Error {
		e := errs.E(errs.Invalid, "invalid_limit", fmt.Sprintf("limit must be between 1 and %d", MaxLimit))
		e.Fields = map[string]string{"limit": fmt.Sprintf("1 to %d", MaxLimit)}
		return e
	}()
)

func badQuery(name, why string) error {
	e := errs.E(errs.Invalid, "invalid_query", "a query parameter is invalid")
	e.Fields = map[string]string{name: why}
	return e
}

// limit parses ?limit=.
func (c *call) limit() (int, error) {
	s := c.r.URL.Query().Get("limit")
	if s == "" {
		return DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		return 0, errBadLimit
	}
	return n, nil
}

// queryID parses an optional ID-valued query parameter.
func (c *call) queryID(name string) (string, error) {
	v := c.r.URL.Query().Get(name)
	if v != "" && !validID(v) {
		return "", badQuery(name, "not an ID")
	}
	return v, nil
}

// page parses ?after= and ?limit=.
func (c *call) page() (user.Page, error) {
	after, err := c.queryID("after")
	if err != nil {
		return user.Page{}, err
	}
	n, err := c.limit()
	if err != nil {
		return user.Page{}, err
	}
	return user.Page{After: after, Limit: n}, nil
}

// nextAfter returns the cursor after a page of n items of limit.
func nextAfter(n, limit int, lastID func() string) string {
	if n < limit || n == 0 {
		return ""
	}
	return lastID()
}

// parseTTL parses an expires_in duration: "" means def.
func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		e := errs.E(errs.Invalid, "invalid_expires_in", `expires_in must be a positive Go duration such as "720h" or "90m"`)
		e.Fields = map[string]string{"expires_in": `a positive duration such as "720h"`}
		return 0, e
	}
	return d, nil
}

// notFound translates a store's errs.ErrNotFound into e, keeping the cause.
func notFound(err error, e *errs.Error) error {
	if errors.Is(err, errs.ErrNotFound) {
		return errs.Wrap(e.Kind, e.Code, e.Message, err)
	}
	return err
}

// decodeOptional is decode for a body that may be empty (all fields
// optional): an empty body is {}.
func (c *call) decodeOptional(v any) error {
	if c.r.ContentLength == 0 {
		return nil
	}
	return c.decode(v)
}
