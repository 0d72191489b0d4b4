package console

import (
	"context"
	"net/http"
	"time"

	"github.com/groundgate/groundgate/policies"
)

// Gateway is what the console reads from and asks of the gateway that
// mounts it. The gateway implements it over its live configuration, so
// every page shows the config in force (and the one after a reload).
type Gateway interface {
	// Authenticate resolves the request's client key (Authorization:
	// Bearer or api-key) to its principal; the error is the gateway's
	// OpenAI-shaped one.
	Authenticate(r *http.Request) (Principal, error)
	// Principals lists the configured keys' principals, sorted by name.
	Principals() []Principal
	// SessionKey is the secret that signs name's console sessions
	// (derived from its key, so every instance with the same keys accepts
	// them) and whether name is an operator.
	SessionKey(name string) ([]byte, bool)
	// Policies is the policy set in force; nil without policy files.
	Policies() *policies.Set
	// Pools lists the upstream pools with their deployments' state.
	Pools() []Pool
	// Budgets lists each policy's rate limits and quotas with what
	// remains of them now, per subject the gateway knows.
	Budgets(ctx context.Context) []Budget
	// Explain runs the gateway's explain endpoint (POST
	// /groundgate/explain{path}?principal=...) as operator, for
	// principal, with the feature header when feature is not "". It
	// returns the endpoint's status and body.
	Explain(ctx context.Context, operator, principal, path, feature string, body []byte) (int, []byte)
}

// Principal is a client key's identity.
type Principal struct {
	Name string
	Team string
}

// Pool is an upstream pool.
type Pool struct {
	Name      string
	Upstreams []Upstream
}

// Upstream is one deployment of a pool.
type Upstream struct {
	Name       string
	Kind       string // azure or openai
	Deployment string
	URL        string // chat completions
	// EmbeddingsURL is where embeddings requests go.
	EmbeddingsURL string
	Priority      int
	Weight        int
	// Breaker is the circuit breaker's state: closed, half-open or open.
	Breaker string
	// CoolingFor is what remains of a 429's retry-after (0: none).
	CoolingFor time.Duration
}

// Budget is one limit of a policy for one subject.
type Budget struct {
	Policy  string
	Per     string // key, team, policy, model, deployment, global
	Subject string // the key, team, model or deployment ("" for policy and global)
	Window  string // minute, day, month
	Unit    string // requests, tokens, usd
	Max     int64
	// Remaining is what is left now; Reset when it is whole again.
	Remaining int64
	Reset     time.Duration
	// Err says why Remaining could not be read (store unavailable).
	Err string
}
