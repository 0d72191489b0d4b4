package caddymodule

import (
	"github.com/groundgate/groundgate/policies"
)

// policyInfo is one policy as GET /groundgate/policies shows it: in the
// policy files' own field names, with what is not set left out (an
// empty match list matches anything), plus where it came from.
type policyInfo struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Source      string          `json:"source"`
	Line        int             `json:"line"`
	Hash        string          `json:"hash"`
	Priority    int             `json:"priority"`
	Default     bool            `json:"default"`
	Feature     string          `json:"feature,omitempty"`
	Match       *matchInfo      `json:"match,omitempty"`
	Upstream    *upstreamInfo   `json:"upstream,omitempty"`
	Teams       *teamsInfo      `json:"teams,omitempty"`
	MetaPrompt  *metaPromptInfo `json:"meta_prompt,omitempty"`
	// Sections names the other sections the policy switches on
	// (context, budgets, filters, post, cache).
	Sections []string `json:"sections,omitempty"`
}

type matchInfo struct {
	API     []string `json:"api,omitempty"`
	Route   []string `json:"route,omitempty"`
	Model   []string `json:"model,omitempty"`
	Key     []string `json:"key,omitempty"`
	Team    []string `json:"team,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
}

type upstreamInfo struct {
	Pool string `json:"pool"`
}

// teamsInfo keeps "enabled: []" (the feature is off for everyone) apart
// from no enabled list (every team).
type teamsInfo struct {
	Enabled  *[]string `json:"enabled,omitempty"`
	Disabled []string  `json:"disabled,omitempty"`
}

type metaPromptInfo struct {
	Mode string `json:"mode"`
}

func newPolicyInfo(p *policies.Policy) policyInfo {
	pi := policyInfo{Name: p.Name, Description: p.Description, Source: p.Source, Line: p.Line, Hash: p.Hash,
		Priority: p.Priority, Default: p.Default, Feature: p.Feature}
	m := p.Match
	if len(m.API)+len(m.Route)+len(m.Model)+len(m.Key)+len(m.Team)+len(m.Aliases) > 0 {
		pi.Match = &matchInfo{API: m.API, Route: m.Route, Model: m.Model, Key: m.Key, Team: m.Team, Aliases: m.Aliases}
	}
	if p.Pool != "" {
		pi.Upstream = &upstreamInfo{Pool: p.Pool}
	}
	if p.Teams.Enabled != nil || len(p.Teams.Disabled) > 0 {
		pi.Teams = &teamsInfo{Disabled: p.Teams.Disabled}
		if p.Teams.Enabled != nil {
			enabled := p.Teams.Enabled
			pi.Teams.Enabled = &enabled
		}
	}
	if p.Meta != nil {
		pi.MetaPrompt = &metaPromptInfo{Mode: string(p.Meta.Mode)}
	}
	for _, sec := range []struct {
		name string
		raw  policies.RawSection
	}{{"context", p.Context}, {"budgets", p.Budgets}, {"filters", p.Filters}, {"post", p.Post}, {"cache", p.Cache}} {
		if !sec.raw.IsZero() {
			pi.Sections = append(pi.Sections, sec.name)
		}
	}
	return pi
}

// servePolicies answers GET /groundgate/policies: the active policies in
// precedence order with their content hashes and sources.
func (g *Gateway) servePolicies(ex *exchange) error {
	if err := g.operator(ex); err != nil {
		return err
	}
	out := map[string]any{"hash": "", "policies": []policyInfo{}}
	if g.policies != nil {
		set := g.policies.cur.Load().set
		infos := make([]policyInfo, 0, len(set.Policies()))
		for _, p := range set.Policies() {
			infos = append(infos, newPolicyInfo(p))
		}
		out = map[string]any{"hash": set.Hash(), "policies": infos}
	}
	return ex.writeJSON(out)
}
