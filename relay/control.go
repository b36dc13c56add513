package relay

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/push"
	"github.com/custos-uem/custos/relay/mux"
)

// Control exchanges: the Core opens a stream whose metadata names the
// kind, writes one request and reads one answer.

// RoutesRequest replaces the server's activation routes: the addresses of
// its users who may activate (sent in clear over the link, stored by the
// relay only as keyed hashes) and its domains.
type RoutesRequest struct {
	Addresses []string `json:"addresses"`
	Domains   []string `json:"domains"`
	// PublicURL is the Core's https URL and WindowsAuthPolicy its Windows
	// enrollment policy: with them the relay answers Windows discovery
	// for the Core's users (relay/windows.go). Optional; relays that
	// predate them must be upgraded before the Cores that send them.
	PublicURL         string `json:"public_url,omitempty"`
	WindowsAuthPolicy string `json:"windows_auth_policy,omitempty"`
}

// PushRequest is one notification the Core hands the relay.
type PushRequest struct {
	Provider  string `json:"provider"`
	Token     string `json:"token"`
	Topic     string `json:"topic,omitempty"`
	PushMagic string `json:"push_magic,omitempty"`
}

// Result answers a control request.
type Result struct {
	Error *WireError `json:"error,omitempty"`
}

// controlTimeout bounds one control exchange on the relay.
const controlTimeout = 60 * time.Second

// serveControl answers one stream the Core opened.
func (r *Relay) serveControl(serverID string, st *mux.Stream) {
	defer st.Close()
	st.SetDeadline(time.Now().Add(controlTimeout))
	var meta StreamMeta
	if err := json.Unmarshal(st.Meta(), &meta); err != nil {
		st.Reset("bad metadata")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	var err error
	switch meta.Kind {
	case KindRoutes:
		var in RoutesRequest
		if err = readMsg(st, MaxControl, &in); err == nil {
			err = r.replaceRoutes(ctx, serverID, &in)
		}
	case KindPush:
		var in PushRequest
		if err = readMsg(st, MaxControl, &in); err == nil {
			err = r.push(ctx, &in)
		}
	default:
		st.Reset("unknown stream kind")
		return
	}
	if err != nil {
		r.log.Info("relay: control request failed", "server", serverID, "kind", meta.Kind, "err", err)
	}
	writeMsg(st, Result{Error: wireError(err)})
}

func (r *Relay) replaceRoutes(ctx context.Context, serverID string, in *RoutesRequest) error {
	if len(in.Addresses)+len(in.Domains) > MaxRoutesPerCall {
		return errs.E(errs.TooLarge, "too_many_routes", "too many addresses and domains in one request")
	}
	routes := make([]Route, 0, len(in.Addresses)+len(in.Domains))
	for _, a := range in.Addresses {
		routes = append(routes, Route{Kind: RouteAddress, Value: r.AddressHash(a)})
	}
	for _, d := range in.Domains {
		routes = append(routes, Route{Kind: RouteDomain, Value: d})
	}
	if err := r.cfg.Store.ReplaceRoutes(ctx, serverID, routes); err != nil {
		return err
	}
	return r.setWindowsDiscovery(serverID, in.PublicURL, in.WindowsAuthPolicy)
}

func (r *Relay) push(ctx context.Context, in *PushRequest) error {
	if r.cfg.Push == nil {
		return push.ErrNotConfigured
	}
	return r.cfg.Push.Send(ctx, push.Target{Provider: in.Provider, Token: in.Token, Topic: in.Topic, PushMagic: in.PushMagic})
}

// pushError maps a relay's answer back to the push package's errors, so
// the Core's notifier acts on it as on a direct send (drops the token on
// ErrUnregistered).
func pushError(w *WireError) error {
	if w == nil {
		return nil
	}
	for _, known := range []*errs.Error{push.ErrUnregistered, push.ErrNotConfigured, push.ErrInvalidTarget} {
		if w.Code == known.Code {
			return errors.Join(known, w)
		}
	}
	return w
}
