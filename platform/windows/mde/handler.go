package mde

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/custos-uem/custos/activation"
	"github.com/custos-uem/custos/errs"
	"github.com/custos-uem/custos/httpx"
	"github.com/custos-uem/custos/pki"
)

// Activator is the part of activation.Service enrollment uses.
type Activator interface {
	CheckCredentials(ctx context.Context, login, password string, platform activation.Platform) error
	Activate(ctx context.Context, in activation.ActivateInput) (*activation.Activation, error)
	EnrollAnySubject(ctx context.Context, token string, csr []byte) (*activation.Enrollment, error)
}

// Defaults of Config.
const (
	// DefaultPollInterval is the steady polling of an enrolled device:
	// pushes (WNS) wake it for anything urgent, polling only guarantees
	// that nothing is lost when a push is.
	DefaultPollInterval = 8 * time.Hour
	// FirstPollInterval and FirstPolls: right after enrollment the device
	// polls more often, to pick up its configuration.
	FirstPollInterval = 15 * time.Minute
	FirstPolls        = 8
	// EnrollmentVersion is the MS-MDE2 version we answer Discover with
	// (4.0 or 5.0 both describe this flow; 5.0 adds nothing we need).
	EnrollmentVersion = "4.0"
	// RenewPeriodDays: the device renews this many days before expiry.
	RenewPeriodDays = 42
	// ServerName is the w7 NAME the device shows under Access work or
	// school.
	ServerName = "Custos"
)

// Config is the server side of enrollment.
type Config struct {
	// PublicURL is the Core's base URL (https://host[:port]); the policy,
	// enrollment and sign-in URLs are built from it.
	PublicURL string
	// AuthPolicy is OnPremise (default) or Federated.
	AuthPolicy string
	// ProviderID and ManagementURL are the OMA-DM account the document
	// installs (platform/windows: ProviderID, PublicURL+PathManagement).
	ProviderID    string
	ManagementURL string
	// PollInterval is the steady polling interval (default 8 h).
	PollInterval time.Duration
	// WNSPackageFamilyName, when set, provisions WNS push.
	WNSPackageFamilyName string
}

// Handler serves discovery, enrollment policy and enrollment.
type Handler struct {
	Config     Config
	Activation Activator
	// CA is the root the document installs; it signs every device
	// certificate.
	CA *x509.Certificate
	// CertValidity is the device certificates' validity (policy only).
	CertValidity time.Duration
	// Federated issues and checks the tokens of the federated sign-in
	// page; required with AuthPolicy Federated.
	Federated *Federated
	// Limiter, when set, rate-limits every endpoint per client address.
	Limiter *httpx.IPLimiter
	Now     func() time.Time
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) base() string { return strings.TrimSuffix(h.Config.PublicURL, "/") }

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch c.AuthPolicy {
	case "", AuthOnPremise, AuthFederated:
	default:
		return fmt.Errorf("windows enrollment: auth policy %q: want %s or %s", c.AuthPolicy, AuthOnPremise, AuthFederated)
	}
	if c.PollInterval < 0 || (c.PollInterval > 0 && c.PollInterval < time.Minute) {
		return fmt.Errorf("windows enrollment: poll interval %v: at least one minute", c.PollInterval)
	}
	if strings.ContainsAny(c.WNSPackageFamilyName, "<>&\"' ") || len(c.WNSPackageFamilyName) > MaxField {
		return fmt.Errorf("windows enrollment: %q is not a package family name", c.WNSPackageFamilyName)
	}
	return nil
}

func (h *Handler) authPolicy() string {
	if h.Config.AuthPolicy == "" {
		return AuthOnPremise
	}
	return h.Config.AuthPolicy
}

// Result is this server's DiscoverResult.
func (h *Handler) Result() DiscoverResult {
	return ResultFor(h.base(), h.authPolicy())
}

// ResultFor is the DiscoverResult of a Core at base URL (the relay
// answers discovery for its Cores with it).
func ResultFor(base, policy string) DiscoverResult {
	base = strings.TrimSuffix(base, "/")
	return DiscoverResult{AuthPolicy: policy, EnrollmentVersion: EnrollmentVersion,
		EnrollmentPolicyServiceURL: base + PathPolicy, EnrollmentServiceURL: base + PathEnroll,
		AuthenticationServiceURL: base + PathAuth}
}

// Router is where Register puts its routes (httpx.Router): all public,
// the credentials in the messages being their authentication.
type Router interface {
	Public(pattern string, h http.Handler)
}

// Register puts the routes on rt.
func (h *Handler) Register(rt Router) {
	limit := func(f http.HandlerFunc) http.Handler {
		if h.Limiter == nil {
			return f
		}
		// A refusal in the protocol's own form, so the device shows a
		// "try later" rather than a parse error.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !h.Limiter.Allow(r.RemoteAddr) {
				w.Header().Set("Retry-After", "1")
				WriteFault(w, r, "", httpx.ErrRateLimited)
				return
			}
			f(w, r)
		})
	}
	// Windows probes the discovery URL with GET before it POSTs
	// (mdm-enrollment-of-windows-devices, "Discovery"): 200, no body.
	rt.Public("GET "+PathDiscovery, http.HandlerFunc(DiscoveryProbe))
	rt.Public("POST "+PathDiscovery, limit(h.discover))
	rt.Public("POST "+PathPolicy, limit(h.getPolicies))
	rt.Public("POST "+PathEnroll, limit(h.enroll))
	if h.Federated != nil {
		rt.Public("GET "+PathAuth, limit(h.authPage))
		rt.Public("POST "+PathAuth, limit(h.authSubmit))
	}
}

// DiscoveryProbe answers the GET that precedes Discover.
func DiscoveryProbe(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

// ReadRequest reads, checks and decodes one SOAP request of action under
// limit; on failure it has answered the fault.
func ReadRequest(w http.ResponseWriter, r *http.Request, limit int64, action string) (*Envelope, bool) {
	b, err := readBody(w, r, limit)
	if err != nil {
		WriteFault(w, r, "", err)
		return nil, false
	}
	env, err := DecodeEnvelope(b)
	if err != nil {
		WriteFault(w, r, "", err)
		return nil, false
	}
	if strings.TrimSpace(env.Header.Action) != action {
		WriteFault(w, r, clean(env.Header.MessageID), ErrWrongAction)
		return nil, false
	}
	return env, true
}

func (h *Handler) discover(w http.ResponseWriter, r *http.Request) {
	env, ok := ReadRequest(w, r, MaxDiscoverBody, ActionDiscover)
	if !ok {
		return
	}
	msgID := clean(env.Header.MessageID)
	if env.Body.Discover == nil {
		WriteFault(w, r, msgID, ErrMissing)
		return
	}
	// Any address gets the same answer: discovery on the Core names the
	// Core itself, and whether the user exists is decided by the
	// credentials at the next step (no enumeration here).
	WriteSOAP(w, http.StatusOK, MarshalDiscoverResponse(msgID, activityOf(r), h.Result()))
}

// credentials is who a request authenticates as.
type credentials struct {
	login, password string
	// federated is the hash of a federated token, when that was used.
	federated []byte
}

// ErrNoCredentials: the request carries no credential of the configured
// policy.
var ErrNoCredentials = errs.E(errs.Unauthenticated, "activation_password_invalid", "the login or activation password is wrong")

// credentialsOf extracts the credentials of the configured policy.
func (h *Handler) credentialsOf(ctx context.Context, env *Envelope) (*credentials, error) {
	sec := env.Header.Security
	if sec == nil {
		return nil, ErrNoCredentials
	}
	switch h.authPolicy() {
	case AuthOnPremise:
		ut := sec.UsernameToken
		if ut == nil {
			return nil, ErrNoCredentials
		}
		login, pw := clean(ut.Username), strings.TrimSpace(ut.Password)
		if login == "" || pw == "" || len(pw) > activation.MaxPasswordLen {
			return nil, ErrNoCredentials
		}
		return &credentials{login: login, password: pw}, nil
	case AuthFederated:
		bt := sec.Binary
		if bt == nil || h.Federated == nil || strings.TrimSpace(bt.ValueType) != ValueTypeUserToken {
			return nil, ErrNoCredentials
		}
		return h.Federated.lookup(ctx, bt.Value)
	}
	return nil, ErrNotSupported
}

func (h *Handler) getPolicies(w http.ResponseWriter, r *http.Request) {
	env, ok := ReadRequest(w, r, MaxPolicyBody, ActionGetPolicies)
	if !ok {
		return
	}
	msgID := clean(env.Header.MessageID)
	if env.Body.GetPolicies == nil {
		WriteFault(w, r, msgID, ErrMissing)
		return
	}
	cred, err := h.credentialsOf(r.Context(), env)
	if err == nil {
		// The password is checked (and a failure counted) but not
		// consumed: that happens with the certificate, at the next step.
		err = h.Activation.CheckCredentials(r.Context(), cred.login, cred.password, activation.Windows)
	}
	if err != nil {
		WriteFault(w, r, msgID, err)
		return
	}
	validity := h.CertValidity
	if validity <= 0 {
		validity = pki.DeviceValidity
	}
	WriteSOAP(w, http.StatusOK, MarshalGetPoliciesResponse(msgID, Policy{MinKeyBits: pki.MinRSABits,
		ValiditySeconds: int64(validity / time.Second), RenewalSeconds: int64(RenewPeriodDays * 24 * time.Hour / time.Second)}))
}

// Context item names of MS-MDE2 §2.2.9.3 we use.
const (
	CtxDeviceID       = "DeviceID"
	CtxHWDevID        = "HWDevID"
	CtxEnrollmentType = "EnrollmentType"
	CtxDeviceName     = "DeviceName"
	CtxOSVersion      = "OSVersion"
	CtxOSEdition      = "OSEdition"
	CtxDeviceType     = "DeviceType"
)

// editions names the OSEdition (product type, GetProductInfo) values seen
// most; others show as their number.
var editions = map[string]string{
	"4": "Enterprise", "27": "Enterprise N", "48": "Pro", "49": "Pro N", "98": "Home N", "99": "Home China",
	"100": "Home Single Language", "101": "Home", "121": "Education", "122": "Education N",
	"125": "Enterprise LTSC", "161": "Pro for Workstations", "164": "Pro Education",
}

// Model describes a device from its context.
func Model(ctx map[string]string) string {
	ed := ctx[CtxOSEdition]
	if ed == "" {
		return "Windows"
	}
	if name, ok := editions[ed]; ok {
		return "Windows " + name
	}
	return "Windows (edition " + ed + ")"
}

func (h *Handler) enroll(w http.ResponseWriter, r *http.Request) {
	env, ok := ReadRequest(w, r, MaxEnrollBody, ActionRST)
	if !ok {
		return
	}
	msgID := clean(env.Header.MessageID)
	rst := env.Body.RST
	if rst == nil || rst.BinarySecurityToken == nil {
		WriteFault(w, r, msgID, ErrMissing)
		return
	}
	if strings.TrimSpace(rst.RequestType) == RequestTypeRenew {
		// Renewal (ROBO) needs the Certificate policy, which this server
		// does not offer yet.
		WriteFault(w, r, msgID, ErrNotSupported)
		return
	}
	if strings.TrimSpace(rst.BinarySecurityToken.ValueType) != ValueTypePKCS10 {
		WriteFault(w, r, msgID, errs.E(errs.Invalid, "csr_malformed", "the security token is not a PKCS#10 request"))
		return
	}
	ctxItems := rst.Context()
	hw := ctxItems[CtxHWDevID]
	if hw == "" {
		hw = ctxItems[CtxDeviceID]
	}
	if hw == "" {
		e := errs.E(errs.Invalid, "soap_missing_field", "the AdditionalContext names no HWDevID or DeviceID")
		WriteFault(w, r, msgID, e)
		return
	}
	// The CSR is checked before anything is created: a bad request
	// leaves no activating device and consumes nothing.
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(rst.BinarySecurityToken.Value), ""))
	if err != nil || len(der) == 0 {
		WriteFault(w, r, msgID, pki.ErrCSRMalformed)
		return
	}
	if _, err := pki.ParseCSR(der); err != nil {
		WriteFault(w, r, msgID, err)
		return
	}
	ctx := r.Context()
	cred, err := h.credentialsOf(ctx, env)
	if err != nil {
		WriteFault(w, r, msgID, err)
		return
	}
	if cred.federated != nil {
		// The federated token is single use: consumed before it is acted
		// on, so two requests racing with it cannot both enroll.
		if cred, err = h.Federated.consume(ctx, cred.federated); err != nil {
			WriteFault(w, r, msgID, err)
			return
		}
	}
	name := ctxItems[CtxDeviceName]
	a, err := h.Activation.Activate(ctx, activation.ActivateInput{
		Login: cred.login, Password: cred.password, Platform: activation.Windows,
		OSVersion: ctxItems[CtxOSVersion], HardwareID: hw, Model: Model(ctxItems), Name: name,
	})
	if err != nil {
		WriteFault(w, r, msgID, err)
		return
	}
	e, err := h.Activation.EnrollAnySubject(ctx, a.SessionToken, der)
	if err != nil {
		WriteFault(w, r, msgID, err)
		return
	}
	doc, err := h.provisioning(e.Certificate, ctxItems, name)
	if err != nil {
		WriteFault(w, r, msgID, err)
		return
	}
	now := h.now().UTC()
	WriteSOAP(w, http.StatusOK, MarshalRSTResponse(msgID, base64.StdEncoding.EncodeToString(doc.Marshal()),
		now.Format("2006-01-02T15:04:05.000Z"), now.Add(5*time.Minute).Format("2006-01-02T15:04:05.000Z")))
}

func (h *Handler) provisioning(cert *x509.Certificate, ctxItems map[string]string, name string) (*ProvDoc, error) {
	poll := h.Config.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	secrets := make([]string, 3)
	for i := range secrets {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		secrets[i] = base64.StdEncoding.EncodeToString(b)
	}
	if name == "" {
		name = cert.Subject.CommonName
	}
	p := &Provisioning{
		CA: h.CA, Cert: cert, DeviceStore: strings.EqualFold(ctxItems[CtxEnrollmentType], "Device"),
		ProviderID: h.Config.ProviderID, ServerName: ServerName, ManagementURL: h.Config.ManagementURL,
		PollMinutes: int(poll / time.Minute), FirstPollMinutes: int(FirstPollInterval / time.Minute), FirstPolls: FirstPolls,
		RenewPeriodDays: RenewPeriodDays, EntDeviceName: name, PFN: h.Config.WNSPackageFamilyName,
		ClientSecret: secrets[0], ServerSecret: secrets[1], Nonce: secrets[2],
	}
	return p.Build(), nil
}

// activityOf is the ActivityId of an answer: the request ID, or a fresh
// random one outside httpx.Observe.
func activityOf(r *http.Request) string {
	if id := httpx.RequestID(r.Context()); id != "" {
		return id
	}
	return strings.ToLower(rand.Text())
}
