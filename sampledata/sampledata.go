// Package sampledata embeds the demo data of a consumer-electronics
// support desk (Contoso Electronics), so that the gateway grounds requests
// with no Dataverse, no search service and no files on disk.
//
// Everything is original, written for Groundgate; people, companies,
// addresses, phone numbers and emails are fictitious (.example domains).
//
//   - accounts.json, contacts.json, incidents.json, annotations.json:
//     Dataverse Web API responses ({"@odata.context": …, "value": […]})
//     with the entities' logical column names, formatted-value and
//     lookup-logical-name annotations, and owning business unit and team.
//     10 accounts, 24 contacts, 30 cases (ticketnumber CAS-01001-K7M2Q9 …)
//     and 19 notes.
//   - knowledgearticles/KA-01001.md … KA-01060.md: 60 knowledge articles
//     (TVs, soundbars, headphones, smart speakers, phones, chargers,
//     firmware, accounts, warranty, returns, shipping, billing), Markdown
//     with YAML front matter using knowledgearticle column names. KA-01060
//     is an internal (agents-only) article.
//
// The records source (llm_gateway.context.records) and the local index
// (llm_gateway.context.local_index) read FS when no path is configured.
// eval/questions.json (not embedded) is the labelled question set of the
// local index's retrieval benchmark.
package sampledata

import "embed"

// FS holds the sample data files listed in the package documentation.
//
//go:embed accounts.json contacts.json incidents.json annotations.json knowledgearticles/*.md
var FS embed.FS

// ArticlesDir is the directory of FS holding the knowledge articles.
const ArticlesDir = "knowledgearticles"
