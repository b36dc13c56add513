package relay

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/platform/windows/mde"
)

// Windows discovery (seed, "Data flow: Activating a Windows 10 device",
// steps 3–4: "the discovery service checks that the server ID is valid and
// redirects the device"). Windows finds its enrollment server at
// https://enterpriseenrollment.<email domain>/EnrollmentServer/Discovery.svc
// (MS-MDE2 §3.1); pointing that name at the relay lets the relay answer
// for every Core it serves: it maps the email address to a server exactly
// as /discovery/v1/lookup does, and answers a DiscoverResponse with that
// Core's enrollment URLs, which the Core sends with its routes.
//
// Windows' MDM client cannot use an HTTP CONNECT tunnel: the enrollment
// and management URLs are the Core's public URL, which devices must reach
// directly (docs/windows.md).

// windowsDiscovery is what the relay answers for one server.
type windowsDiscovery struct {
	publicURL, policy string
}

// MaxPublicURL bounds the URL a Core announces.
const MaxPublicURL = 2048

// ErrWindowsNoRoute is the one answer for an address that routes nowhere,
// to a disabled or unlinked server, or to a Core that announced no URL:
// the fault does not tell them apart (no enumeration).
var ErrWindowsNoRoute = errs.E(errs.NotFound, "no_route", "no enrollment server accepts this address")

// setWindowsDiscovery records the Core's announced URL and policy; empty
// values leave the previous ones.
func (r *Relay) setWindowsDiscovery(serverID, publicURL, policy string) error {
	if publicURL == "" {
		return nil
	}
	u, err := url.Parse(publicURL)
	if err != nil || len(publicURL) > MaxPublicURL || u.Scheme != "https" || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" {
		return errs.E(errs.Invalid, "invalid_public_url", "the public URL must be an https URL without credentials, query or fragment")
	}
	switch policy {
	case "", mde.AuthOnPremise:
		policy = mde.AuthOnPremise
	case mde.AuthFederated:
	default:
		return errs.E(errs.Invalid, "invalid_auth_policy", "the Windows auth policy must be OnPremise or Federated")
	}
	r.windows.Store(serverID, windowsDiscovery{publicURL: strings.TrimSuffix(publicURL, "/"), policy: policy})
	return nil
}

func (r *Relay) windowsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+mde.PathDiscovery, mde.DiscoveryProbe)
	mux.HandleFunc("POST "+mde.PathDiscovery, r.windowsDiscover)
}

// windowsDiscover answers a Discover for the server the address routes
// to.
func (r *Relay) windowsDiscover(w http.ResponseWriter, req *http.Request) {
	if r.lim != nil && !r.lim.Allow(req.RemoteAddr) {
		w.Header().Set("Retry-After", "1")
		mde.WriteFault(w, req, "", httpx.ErrRateLimited)
		return
	}
	env, ok := mde.ReadRequest(w, req, mde.MaxDiscoverBody, mde.ActionDiscover)
	if !ok {
		return
	}
	msgID := strings.TrimSpace(env.Header.MessageID)
	if len(msgID) > mde.MaxField {
		msgID = ""
	}
	if env.Body.Discover == nil {
		mde.WriteFault(w, req, msgID, mde.ErrMissing)
		return
	}
	d, err := r.windowsTarget(req, env.Body.Discover.Request.EmailAddress)
	if err != nil {
		mde.WriteFault(w, req, msgID, err)
		return
	}
	mde.WriteSOAP(w, http.StatusOK, mde.MarshalDiscoverResponse(msgID, httpx.RequestID(req.Context()), mde.ResultFor(d.publicURL, d.policy)))
}

// windowsTarget finds the server of addr: routed, registered and enabled
// (Store.Route answers only those), linked (a live link on some relay),
// with an announced URL. Every miss is ErrWindowsNoRoute after the same
// keyed hash and query as a hit.
func (r *Relay) windowsTarget(req *http.Request, address string) (windowsDiscovery, error) {
	addr := strings.ToLower(strings.TrimSpace(address))
	at := strings.LastIndexByte(addr, '@')
	if len(addr) > MaxAddress || at <= 0 || at == len(addr)-1 {
		return windowsDiscovery{}, ErrWindowsNoRoute
	}
	ctx := req.Context()
	serverID, err := r.cfg.Store.Route(ctx, r.AddressHash(addr), addr[at+1:])
	if errors.Is(err, errs.ErrNotFound) {
		return windowsDiscovery{}, ErrWindowsNoRoute
	}
	if err != nil {
		return windowsDiscovery{}, errs.Wrap(errs.Unavailable, "discovery_unavailable", "discovery is unavailable; try again", err)
	}
	links, err := r.cfg.Store.Links(ctx, serverID, r.cfg.Now().Add(-LinkTTL))
	if err != nil {
		return windowsDiscovery{}, errs.Wrap(errs.Unavailable, "discovery_unavailable", "discovery is unavailable; try again", err)
	}
	v, ok := r.windows.Load(serverID)
	if len(links) == 0 || !ok {
		return windowsDiscovery{}, ErrWindowsNoRoute
	}
	return v.(windowsDiscovery), nil
}
