package agent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/custos-uem/custos/agent"
)

func TestOpenDir(t *testing.T) {
	tests := []struct {
		name    string
		dir     func(t *testing.T) string
		wantErr string
	}{
		{name: "fail/empty path", dir: func(t *testing.T) string { return "" }, wantErr: "no state directory"},
		{name: "fail/a file", dir: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, wantErr: "not a directory"},
		{name: "ok/created 0700 with parents", dir: func(t *testing.T) string { return filepath.Join(t.TempDir(), "a", "b") }},
		{name: "ok/existing 0755 tightened", dir: func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "open")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir(t)
			ds, err := agent.OpenDir(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(ds.Dir())
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v, %v", fi.Mode().Perm(), err)
			}
		})
	}
}

func TestStoreItems(t *testing.T) {
	ds, err := agent.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]agent.Store{"dir": ds, "mem": agent.NewMemStore()} {
		t.Run(name, func(t *testing.T) {
			for _, bad := range []string{"../key.pem", "other.json", "", "/etc/passwd", "state.json/.."} {
				if err := s.Write(bad, []byte("x")); err == nil || !strings.Contains(err.Error(), "unknown item") {
					t.Errorf("Write(%q) = %v", bad, err)
				}
				if _, err := s.Read(bad); err == nil || !strings.Contains(err.Error(), "unknown item") {
					t.Errorf("Read(%q) = %v", bad, err)
				}
			}
			if _, err := s.Read(agent.ItemCert); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Read of a missing item = %v, want fs.ErrNotExist", err)
			}
			if _, err := agent.LoadState(s); !errors.Is(err, agent.ErrNotActivated) || !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("LoadState on an empty store = %v", err)
			}
			if err := s.Write(agent.ItemState, []byte("{not json")); err != nil {
				t.Fatal(err)
			}
			if _, err := agent.LoadState(s); err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("LoadState on corrupt state = %v", err)
			}
			in := []byte("secret")
			if err := s.Write(agent.ItemKey, in); err != nil {
				t.Fatal(err)
			}
			in[0] = 'X' // the store keeps its own copy
			out, err := s.Read(agent.ItemKey)
			if err != nil || string(out) != "secret" {
				t.Fatalf("Read = %q, %v", out, err)
			}
			out[0] = 'Y'
			if again, _ := s.Read(agent.ItemKey); string(again) != "secret" {
				t.Fatalf("Read returned shared memory: %q", again)
			}
		})
	}
	fi, err := os.Stat(filepath.Join(ds.Dir(), agent.ItemKey))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, %v", fi.Mode().Perm(), err)
	}
}

// TestDirStoreAtomic: readers racing a writer see one whole state or the
// other, never a mix or a torn file, and no temporary file stays behind.
func TestDirStoreAtomic(t *testing.T) {
	ds, err := agent.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	states := []*agent.State{
		{DeviceID: "A", SoftwareHash: strings.Repeat("a", 20_000)},
		{DeviceID: "B", SoftwareHash: strings.Repeat("b", 10)},
	}
	if err := agent.SaveState(ds, states[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 40; i++ {
			if err := agent.SaveState(ds, states[i%2]); err != nil {
				t.Error(err)
				return
			}
		}
		close(stop)
	}()
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := ds.Read(agent.ItemState)
				if err != nil {
					t.Error(err)
					return
				}
				var st agent.State
				if err := json.Unmarshal(b, &st); err != nil {
					t.Errorf("torn state (%d bytes): %v", len(b), err)
					return
				}
				if !(st.DeviceID == "A" && st.SoftwareHash == states[0].SoftwareHash || st.DeviceID == "B" && st.SoftwareHash == states[1].SoftwareHash) {
					t.Errorf("mixed state %q", st.DeviceID)
					return
				}
			}
		}()
	}
	wg.Wait()
	entries, _ := os.ReadDir(ds.Dir())
	for _, e := range entries {
		if e.Name() != agent.ItemState {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestDirStoreReadLimit(t *testing.T) {
	ds, err := agent.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(ds.Dir(), agent.ItemCert))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Truncate(f.Name(), agent.MaxStoreItem+1); err != nil {
		t.Fatal(err)
	}
	if _, err := ds.Read(agent.ItemCert); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Read of an oversized item = %v", err)
	}
	if err := os.Truncate(f.Name(), agent.MaxStoreItem); err != nil {
		t.Fatal(err)
	}
	if b, err := ds.Read(agent.ItemCert); err != nil || len(b) != agent.MaxStoreItem || !bytes.Equal(b[:4], []byte{0, 0, 0, 0}) {
		t.Fatalf("Read at the limit: %d bytes, %v", len(b), err)
	}
}
