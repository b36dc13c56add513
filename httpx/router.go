package httpx

import (
	"net/http"
	"path"
	"strings"

	"github.com/custos-uem/custos/errs"
)

// Router is deny-by-default: a request reaches a handler only if it matches
// a route registered as public, or if it passes the authentication of the
// class it belongs to. Authentication runs before routing, so a path spelled
// oddly (//api, /api/..;/x, %2e%2e) can never slip past it into a handler:
// it is either an exact public route or it must authenticate.
type Router struct {
	public *http.ServeMux
	device *http.ServeMux
	admin  *http.ServeMux
	// DeviceAuth authenticates requests under /device/ that are not public;
	// AdminAuth every other non-public request. Each wraps the handler it
	// is given and must answer the request itself when authentication
	// fails.
	DeviceAuth func(http.Handler) http.Handler
	AdminAuth  func(http.Handler) http.Handler

	deviceH, adminH http.Handler
}

// NewRouter returns an empty router. deviceAuth and adminAuth must not be
// nil.
func NewRouter(deviceAuth, adminAuth func(http.Handler) http.Handler) *Router {
	rt := &Router{public: http.NewServeMux(), device: http.NewServeMux(), admin: http.NewServeMux(), DeviceAuth: deviceAuth, AdminAuth: adminAuth}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, errs.E(errs.NotFound, "route_not_found", "no such route"))
	})
	rt.device.Handle("/", notFound)
	rt.admin.Handle("/", notFound)
	rt.deviceH = deviceAuth(rt.device)
	rt.adminH = adminAuth(rt.admin)
	return rt
}

// Public registers a route that needs no authentication. pattern is a
// net/http pattern with a method ("GET /healthz").
func (rt *Router) Public(pattern string, h http.Handler) { rt.public.Handle(pattern, h) }

// Device registers a route that needs a device client certificate.
func (rt *Router) Device(pattern string, h http.Handler) { rt.device.Handle(pattern, h) }

// Admin registers a route that needs an administrator.
func (rt *Router) Admin(pattern string, h http.Handler) { rt.admin.Handle(pattern, h) }

// Canonical reports whether the request path is spelled in its one
// canonical form: no escapes, no empty, "." or ".." segments, no ";".
func Canonical(r *http.Request) bool {
	p := r.URL.Path
	if r.URL.RawPath != "" || p == "" || p[0] != '/' || strings.ContainsAny(p, ";\\") {
		return false
	}
	if strings.Contains(r.RequestURI, "%") && strings.Contains(strings.SplitN(r.RequestURI, "?", 2)[0], "%") {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && p != "/" {
		c += "/"
	}
	return c == p
}

func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if Canonical(r) {
		if h, pattern := rt.public.Handler(r); pattern != "" {
			setRoute(r.Context(), pattern)
			h.ServeHTTP(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/device/") {
			_, pattern := rt.device.Handler(r)
			setRoute(r.Context(), pattern)
			rt.deviceH.ServeHTTP(w, r)
			return
		}
		_, pattern := rt.admin.Handler(r)
		setRoute(r.Context(), pattern)
	}
	// Everything else, odd spellings included, must be an administrator.
	// An authenticated administrator with an odd path gets the mux's own
	// answer (a redirect to the clean path, or 404).
	rt.adminH.ServeHTTP(w, r)
}

// DevicesOnly returns a handler that serves the device routes, and of the
// public routes only those for devices (/device/…, /EnrollmentServer/…,
// /pki/…, /healthz);
// everything else, the admin API included, is 404. It is what the Core
// serves to connections that reach it through a relay: the admin API
// stays inside the company network.
func (rt *Router) DevicesOnly() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		// /EnrollmentServer/ is Windows discovery, whose path Windows fixes
		// (MS-MDE2 §3.1).
		if Canonical(r) && (strings.HasPrefix(p, "/device/") || strings.HasPrefix(p, "/EnrollmentServer/") || strings.HasPrefix(p, "/pki/") || p == "/healthz") {
			rt.ServeHTTP(w, r)
			return
		}
		WriteError(w, r, errs.E(errs.NotFound, "route_not_found", "no such route"))
	})
}
