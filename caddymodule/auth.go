package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/groundgate/groundgate/grounding"
	"github.com/groundgate/groundgate/wire"
)

// KeyConfig is one client key and the principal it stands for. Give the
// key either as its SHA-256 (so the config never holds it) or as the name
// of an environment variable that holds it.
type KeyConfig struct {
	// Name identifies the principal in logs, metrics and policies.
	Name string `json:"name"`
	// Team is the principal's team, used by policies and budgets.
	Team string `json:"team,omitempty"`
	// SHA256 is the hex SHA-256 of the key.
	SHA256 string `json:"sha256,omitempty"`
	// Env names an environment variable holding the key, read at
	// provisioning; an unset or empty variable is an error.
	Env string `json:"env,omitempty"`
	// Scope says which customer records the key may see in grounding
	// context (by account, business unit or team, as Dataverse security
	// roles scope records). Absent: no customer records, only knowledge
	// articles.
	Scope *KeyScope `json:"scope,omitempty"`
}

// KeyScope lists what a key's records may belong to.
type KeyScope struct {
	// All lets the key see every record (trusted back-office keys only).
	All bool `json:"all,omitempty"`
	// Accounts by id or account number.
	Accounts []string `json:"accounts,omitempty"`
	// BusinessUnits by id or name (owningbusinessunit).
	BusinessUnits []string `json:"business_units,omitempty"`
	// Teams by id or name (owningteam).
	Teams []string `json:"teams,omitempty"`
}

type principal struct {
	name  string
	team  string
	scope *grounding.Scope // nil: every record
}

// recordScope turns the config into grounding's scope: nil means every
// record, an empty scope no customer record.
func (ks *KeyScope) recordScope() *grounding.Scope {
	if ks == nil {
		return &grounding.Scope{}
	}
	if ks.All {
		return nil
	}
	return &grounding.Scope{Accounts: ks.Accounts, BusinessUnits: ks.BusinessUnits, Teams: ks.Teams}
}

// keyring finds a principal by the SHA-256 of the presented key: lookups
// never compare secrets byte by byte, and the config holds no key.
type keyring map[[sha256.Size]byte]*principal

func newKeyring(cfgs []KeyConfig) (keyring, error) {
	kr := make(keyring, len(cfgs))
	names := make(map[string]bool, len(cfgs))
	for i, kc := range cfgs {
		if kc.Name == "" {
			return nil, fmt.Errorf("keys[%d]: name is required", i)
		}
		if names[kc.Name] {
			return nil, fmt.Errorf("key %q is defined twice", kc.Name)
		}
		names[kc.Name] = true
		var sum [sha256.Size]byte
		switch {
		case kc.SHA256 != "" && kc.Env != "":
			return nil, fmt.Errorf("key %q: give sha256 or env, not both", kc.Name)
		case kc.SHA256 != "":
			b, err := hex.DecodeString(kc.SHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("key %q: sha256 must be 64 hex digits", kc.Name)
			}
			copy(sum[:], b)
		case kc.Env != "":
			v := os.Getenv(kc.Env)
			if v == "" {
				return nil, fmt.Errorf("key %q: environment variable %s is empty or unset", kc.Name, kc.Env)
			}
			sum = sha256.Sum256([]byte(v))
		default:
			return nil, fmt.Errorf("key %q: sha256 or env is required", kc.Name)
		}
		if _, dup := kr[sum]; dup {
			return nil, fmt.Errorf("key %q: the same key is already configured for another principal", kc.Name)
		}
		if kc.Scope != nil && kc.Scope.All && len(kc.Scope.Accounts)+len(kc.Scope.BusinessUnits)+len(kc.Scope.Teams) > 0 {
			return nil, fmt.Errorf("key %q: scope all excludes accounts, business_units and teams", kc.Name)
		}
		kr[sum] = &principal{name: kc.Name, team: kc.Team, scope: kc.Scope.recordScope()}
	}
	return kr, nil
}

// authenticate reads the key from `Authorization: Bearer` (OpenAI
// clients) or `api-key` (Azure clients).
func (kr keyring) authenticate(r *http.Request) (*principal, error) {
	key := r.Header.Get("api-key")
	if key == "" {
		if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
			key = strings.TrimSpace(auth[7:])
		}
	}
	if key == "" {
		return nil, &wire.Error{Status: http.StatusUnauthorized, Type: wire.TypeInvalidRequest, Code: "missing_api_key",
			Message: "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' or as an 'api-key' header."}
	}
	if p, ok := kr[sha256.Sum256([]byte(key))]; ok {
		return p, nil
	}
	return nil, &wire.Error{Status: http.StatusUnauthorized, Type: wire.TypeInvalidRequest, Code: "invalid_api_key",
		Message: "Incorrect API key provided: " + redactKey(key) + "."}
}

// redactKey shows only enough of a key for its owner to recognise it.
func redactKey(k string) string {
	if len(k) < 12 {
		return "****"
	}
	return k[:3] + "****" + k[len(k)-4:]
}

// byName finds a principal by its key's name (for explain).
func (kr keyring) byName(name string) *principal {
	for _, p := range kr {
		if p.name == name {
			return p
		}
	}
	return nil
}
