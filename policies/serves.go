package policies

// MayServe reports whether the policy can apply to requests on route
// (RouteChat, RouteEmbeddings) for the model alias: its route and model
// patterns allow them, or the alias selects its feature. Configuration
// checks use it to find the aliases a policy's settings must work with.
func (p *Policy) MayServe(route, model string) bool {
	if !matchAny(p.Match.Route, route) {
		return false
	}
	return matchAny(p.Match.Model, model) || containsString(p.Match.Aliases, model)
}
