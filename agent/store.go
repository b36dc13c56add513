package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/custos-uem/custos/pki"
	wire "github.com/custos-uem/custos/platform/agent"
)

// Items of a Store. A Store holds exactly these; any other name is refused.
const (
	ItemState    = "state.json"    // State, JSON
	ItemKey      = "key.pem"       // the device's private key, PKCS#8 PEM; owner-only
	ItemCert     = "cert.pem"      // the device's client certificate, PEM
	ItemCA       = "ca.pem"        // the CA that issued it (step 8c), PEM
	ItemServerCA = "server_ca.pem" // what was trusted for the Core's TLS certificate at activation, PEM
)

// MaxStoreItem bounds what a Store reads back for one item: a state with
// MaxItems configuration items fits many times over.
const MaxStoreItem = 8 << 20

// ErrNotActivated is returned (wrapped) when the Store holds no complete
// activation: no state, key or certificate, or a key and certificate that do
// not belong together (an activation interrupted after step 7).
var ErrNotActivated = errors.New("this device is not activated")

// Store keeps an agent's state between runs. Implementations must be safe
// for concurrent use.
type Store interface {
	// Read returns the content of the named item (one of the Item*
	// constants). An item never written returns an error wrapping
	// fs.ErrNotExist.
	Read(name string) ([]byte, error)
	// Write replaces the named item atomically: a concurrent reader, or the
	// next run after a crash, sees the old content or the new one, never a
	// mix. ItemKey is stored readable by the owner only.
	Write(name string, data []byte) error
}

// State is what an agent remembers about its activation. It never holds a
// secret: the private key is a separate item.
type State struct {
	// ServerURL is the Core the device activated with (https://host[:port]).
	ServerURL string `json:"server_url"`
	// Relays are the relays (host:port) through which the device reaches
	// its Core when it has no direct route: each connection is an HTTP
	// CONNECT to the server's ID through the first relay that answers.
	Relays         []string `json:"relays,omitempty"`
	DeviceID       string   `json:"device_id,omitempty"`
	ActivationType string   `json:"activation_type,omitempty"`
	Platform       string   `json:"platform,omitempty"`
	HardwareID     string   `json:"hardware_id,omitempty"`
	// State is the device state the Core last reported ("enrolled",
	// "active"), "enrolling" between the key being saved and the
	// certificate arriving, or "refused" once the Core refused the
	// certificate (Refusal says how) until the device is activated again.
	State string `json:"state,omitempty"`
	// Refusal records the Core's refusal of the certificate, in state
	// "refused".
	Refusal *Refusal `json:"refusal,omitempty"`
	// ServerTrust says what verified the Core's TLS certificate at
	// activation: TrustCAFile, TrustSystem or TrustPool. The CA received
	// in step 8 is trusted in every case.
	ServerTrust string `json:"server_trust,omitempty"`
	// CertSerial and CertNotAfter describe the client certificate.
	CertSerial   string    `json:"cert_serial,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	// ConfigVersion and ConfigItems are the configuration last applied and
	// acknowledged.
	ConfigVersion string      `json:"config_version,omitempty"`
	ConfigItems   []wire.Item `json:"config_items,omitempty"`
	// PollSeconds is the check-in interval the Core asked for.
	PollSeconds int `json:"poll_seconds,omitempty"`
	// SoftwareHash is the hash of the last software list the Core
	// accepted; an unchanged list is not sent again.
	SoftwareHash string `json:"software_hash,omitempty"`
	// PushHash is the hash of the push registration the Core last accepted
	// (the token itself is not kept); a changed one is registered again.
	PushHash string `json:"push_hash,omitempty"`
	// Commands remembers the last MaxRemembered commands the device ran,
	// oldest first, so that a command delivered again is reported, not run
	// again (delivery is at least once).
	Commands []CommandRecord `json:"commands,omitempty"`
	// PendingResult is the result of the last command, kept until the Core
	// has taken it: it is sent with the next commands request, after a
	// lost answer or a restart as well.
	PendingResult *wire.CommandResult `json:"pending_result,omitempty"`
	ActivatedAt   time.Time           `json:"activated_at,omitzero"`
	LastCheckin   time.Time           `json:"last_checkin,omitzero"`
	// Simulation, when set, says this state belongs to a simulated device
	// and how to recreate it (agent/sim): the same seed is the same
	// hardware, so activating again on this state is the same device.
	Simulation *Simulation `json:"simulation,omitempty"`
}

// Simulation identifies a simulated device.
type Simulation struct {
	Platform string `json:"platform"`
	Seed     uint64 `json:"seed"`
}

// Server trust kinds for State.ServerTrust.
const (
	// TrustCAFile: the PEM given at activation (--ca) is saved as
	// ItemServerCA and trusted from then on.
	TrustCAFile = "ca_file"
	// TrustSystem: the system roots verified the Core at activation and
	// still do.
	TrustSystem = "system"
	// TrustPool: activation used an in-memory ServerCAs pool without its
	// PEM, so nothing was saved; a Client made later trusts the CA of step
	// 8 plus whatever ServerCAs it is given.
	TrustPool = "pool"
)

// LoadState reads the State from s. No state returns an error wrapping
// both ErrNotActivated and fs.ErrNotExist.
func LoadState(s Store) (*State, error) {
	b, err := s.Read(ItemState)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (no %s): %w", ErrNotActivated, ItemState, err)
		}
		return nil, err
	}
	st := new(State)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("agent: %s is corrupt: %w", ItemState, err)
	}
	return st, nil
}

// SaveState writes st to s.
func SaveState(s Store, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("agent: encode state: %w", err)
	}
	return s.Write(ItemState, append(b, '\n'))
}

func checkItem(name string) error {
	switch name {
	case ItemState, ItemKey, ItemCert, ItemCA, ItemServerCA:
		return nil
	}
	return fmt.Errorf("agent: store: unknown item %q", name)
}

// DirStore is a Store in a directory: one file per item, written with
// pki.WriteFileAtomic. The directory is kept at mode 0700 and the key at
// 0600.
type DirStore struct {
	dir string
}

// OpenDir returns the DirStore in dir, creating it (and its parents) with
// mode 0700 if needed. An existing directory open to group or others is
// tightened to 0700.
func OpenDir(dir string) (*DirStore, error) {
	if dir == "" {
		return nil, errors.New("agent: store: no state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("agent: store: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("agent: store: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("agent: store: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("agent: store: tighten %s to 0700: %w", dir, err)
		}
	}
	return &DirStore{dir: dir}, nil
}

// Dir returns the directory of the store.
func (d *DirStore) Dir() string { return d.dir }

// Read implements Store.
func (d *DirStore) Read(name string) ([]byte, error) {
	if err := checkItem(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.dir, name))
	if err != nil {
		return nil, fmt.Errorf("agent: store: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxStoreItem {
		return nil, fmt.Errorf("agent: store: %s is larger than %d bytes", name, MaxStoreItem)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxStoreItem+1))
	if err != nil {
		return nil, fmt.Errorf("agent: store: %w", err)
	}
	if len(b) > MaxStoreItem {
		return nil, fmt.Errorf("agent: store: %s is larger than %d bytes", name, MaxStoreItem)
	}
	return b, nil
}

// Write implements Store.
func (d *DirStore) Write(name string, data []byte) error {
	if err := checkItem(name); err != nil {
		return err
	}
	perm := os.FileMode(0o644)
	if name == ItemKey || name == ItemState {
		perm = 0o600
	}
	return pki.WriteFileAtomic(filepath.Join(d.dir, name), data, perm)
}

// MemStore is a Store in memory, for tests and benchmarks that run many
// agents in one process. The zero value is ready to use.
type MemStore struct {
	mu    sync.Mutex
	items map[string][]byte
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// Read implements Store; it returns a copy.
func (m *MemStore) Read(name string) ([]byte, error) {
	if err := checkItem(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.items[name]
	if !ok {
		return nil, fmt.Errorf("agent: store: %s: %w", name, fs.ErrNotExist)
	}
	return append([]byte(nil), b...), nil
}

// Write implements Store; it keeps a copy.
func (m *MemStore) Write(name string, data []byte) error {
	if err := checkItem(name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.items == nil {
		m.items = make(map[string][]byte, 5)
	}
	m.items[name] = append([]byte(nil), data...)
	return nil
}
