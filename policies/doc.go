// Package policies is Groundgate's policy engine: it loads policy files
// (YAML), picks the policy for each request, and renders the policy's meta
// prompt into the request.
//
// # Files
//
// A policy file holds exactly one policy: a YAML mapping with the keys
// name, description, priority, default, feature, match, upstream,
// meta_prompt, vars, teams, context, budgets, filters and post (README.md
// describes each; schema.json is the same format as a JSON Schema). Files
// are decoded strictly: an unknown field, a wrong type, a null, a
// duplicate key, an invalid value or a template that does not compile is
// an error naming file, line and field, e.g.
//
//	policies/ask.yaml:12: field "temprature" not found in policy.upstream
//
// A policy is versioned by the sha256 of its file's bytes (Policy.Hash); a
// Set by the sorted hashes of its files (Set.Hash), so renaming a file
// changes nothing.
//
// # Precedence
//
// Set.Policies lists the policies in precedence order, and Set.Match
// walks them in that order; the first that matches wins:
//
//  1. Non-default policies before default ones (default: true). A default
//     policy only wins when no other policy matches.
//  2. Higher priority first (priority: an integer, 0 when omitted; may
//     be negative).
//  3. More specific first. Specificity compares the dimensions a policy
//     constrains, most significant first: feature, then key, then team,
//     then model, then route, then api. A policy with a feature beats any
//     policy without one; among those, one that lists keys beats one that
//     does not, and so on. A list that contains the bare pattern "*"
//     constrains nothing.
//  4. Policy name, in byte order. Names are unique within a set, so the
//     order is total: exactly one policy wins, never a tie. (The final
//     tiebreak is the name, not the file name, so that precedence, like
//     the set's hash, depends on content only.)
//
// # Matching
//
// A policy matches when every dimension it lists matches (lists are
// alternatives; '*' in a pattern matches any run of characters; no list
// means any value) and its feature rule holds:
//
//   - A request that names a feature (header x-groundgate-feature, any
//     case) can only match policies of that feature. A feature no policy
//     defines is refused: `unknown feature "x"`, never the default policy.
//     A feature whose policies all fail to match is refused too.
//   - A request without the header selects a feature by asking for one of
//     its model aliases (match.aliases); the alias then stands in for
//     match.model. Otherwise it matches only policies without a feature.
//   - When the winning policy has a feature, its teams section decides:
//     a team listed under disabled, or not listed under enabled (when
//     enabled is given), is refused with a reason that names the feature,
//     the team and the policy.
//   - When nothing matches and no default policy applies, the request is
//     refused. Refused decisions have Denied set, Policy nil and a Reason
//     for the 403 body.
//
// Decision.Trace explains, per policy in precedence order, why it matched
// or not; its lines are built at load, so tracing costs one slice per
// request.
//
// # Meta prompts
//
// A meta prompt is a text/template compiled at load. Its dot is a View:
// .Principal.Name, .Principal.Team, .Feature, .Policy, .Records,
// .Articles, .Now, .Vars and .User. Retrieved and user-supplied text is
// fenced by default: records, articles and .User reach the template only
// as RecordView, ArticleView and Text values, which print fenced and
// escaped (see Fence and Escape), and the functions that transform text
// (upper, lower, trim, truncate, join, default) keep it untrusted. There
// is no function that unfences. Identifiers (record numbers, article
// refs) are reduced to a safe character set and print bare. Every
// .Vars.name a template uses must be declared in the policy's vars, and
// each template is run at load against sample data and against empty
// data, so misspelt fields and unguarded indexes fail at load, with the
// file line.
//
// ApplySystemPrompt places the rendered prompt in the request body per the
// policy's mode (prepend, append, replace) with gjson and byte splicing,
// never a full unmarshal.
package policies
