package policy

import (
	"encoding/json"
	"fmt"

	"github.com/custos-uem/custos/secret"
)

// Secret settings (the secrets table of validate.go) are stored sealed
// when the Service has a Box: the database holds "sealed:v1:…", devices get
// the plain value in their payload, and reads through the API show
// RedactedSecret either way. A secret the administrator did not change
// keeps its sealed text, so that re-sealing does not make an unchanged
// policy a new revision.

// mapSecrets rewrites each secret setting of raw that is a non-empty
// string with f; raw is returned unchanged when nothing changes.
func mapSecrets(kind Kind, raw json.RawMessage, f func(key, v string) (string, error)) (json.RawMessage, error) {
	keys := secrets[kind]
	if len(keys) == 0 {
		return raw, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	changed := false
	for _, k := range keys {
		var s string
		if v, ok := m[k]; !ok || json.Unmarshal(v, &s) != nil || s == "" {
			continue
		}
		out, err := f(k, s)
		if err != nil {
			return nil, err
		}
		if out != s {
			b, _ := json.Marshal(out)
			m[k], changed = b, true
		}
	}
	if !changed {
		return raw, nil
	}
	return canonical(mustMarshal(m))
}

// openSecrets returns settings with their secrets in plain text.
func (s *Service) openSecrets(kind Kind, raw json.RawMessage) (json.RawMessage, error) {
	if s.Box == nil {
		return raw, nil
	}
	out, err := mapSecrets(kind, raw, func(_, v string) (string, error) { return s.Box.Open(v) })
	if err != nil {
		return nil, fmt.Errorf("policy: open secret settings: %w", err)
	}
	return out, nil
}

// sealSecrets returns plain settings with their secrets sealed, reusing
// the sealed text of prevSealed for a secret whose plain value is the one
// in prevPlain.
func (s *Service) sealSecrets(kind Kind, plain, prevPlain, prevSealed json.RawMessage) (json.RawMessage, error) {
	if s.Box == nil {
		return plain, nil
	}
	var pp, ps map[string]json.RawMessage
	_ = json.Unmarshal(prevPlain, &pp)
	_ = json.Unmarshal(prevSealed, &ps)
	return mapSecrets(kind, plain, func(key, v string) (string, error) {
		var old string
		if json.Unmarshal(pp[key], &old) == nil && old == v {
			var sealed string
			if json.Unmarshal(ps[key], &sealed) == nil && secret.IsSealed(sealed) {
				return sealed, nil
			}
		}
		return s.Box.Seal(v), nil
	})
}
