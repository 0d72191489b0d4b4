// Package grounding decides what customer-service context reaches the
// model for one chat request, before the model is called: which CRM
// records the request is about, which of them the caller may see, which
// knowledge-article passages answer it, and how all of it fits the
// policy's token budget. It has no Caddy dependency; context sources are
// Caddy guest modules (llm_gateway.context.*) that implement its
// interfaces.
//
// # Flow of one request
//
//  1. A policy's context section (ContextSpec, decoded strictly from the
//     policy YAML with policies.RawSection.Decode) is compiled once into a
//     Plan (Compile).
//  2. Keys: the Plan's Extractor finds record keys (RecordKey: entity,
//     column, value) in a request header, the request's metadata object,
//     its user field, or by pattern in the last user message (and, with
//     an articles section, the user messages within its query lookback).
//     Built-in kinds: case (incident.ticketnumber, CAS-01234-X1Y2Z3), account
//     (account.accountnumber, ACC-123456), email (contact.emailaddress1)
//     and article (knowledgearticle.articlepublicnumber, KA-01234); any
//     "<entity>.<column>" with a pattern. Values are validated against
//     the pattern, normalised and deduplicated; at most MaxKeys per request.
//  3. Records: Resolve looks the keys up in a RecordSource under the
//     principal's Scope, follows one hop of related records (a case's
//     customer and contact) and, on request, the notes of the cases
//     found, keeping only the entities the policy lists.
//  4. Articles: the query is built from the conversation as the policy's
//     articles.query says (BuildQuery: recent turns weighted by recency,
//     the messages where the index looks for entity names, filters and
//     boosts from metadata, headers and the records in play), optionally
//     rewritten by a small chat deployment (Rewriter), and an Index is
//     searched with it (a QueryIndex with the whole Query, others with its
//     text).
//  5. Pack ranks, deduplicates and trims records and chunks to the
//     budget, numbers the chunks doc1…docN and keeps the mapping (Doc)
//     for citations.
//
// Plan.Ground runs steps 2–5 (lookup and search concurrently) and returns
// the packed context plus the keys, the denied records and the query.
//
// # Access control
//
// A Scope lists the accounts (id or account number), business units and
// teams (id or name) whose records a principal may see, as Dataverse
// security roles scope records by owner. A nil *Scope is unrestricted
// (trusted back-office keys only); a non-nil empty Scope sees no customer
// record. RecordSource implementations return only records the scope
// allows and report the others as Denied; Resolve checks every record
// again, so a faulty source cannot leak another customer's data. A Denied
// carries the key, entity, id and reason, never the record's content: the
// caller writes it to the audit log and answers without that context.
//
// # Budget, chunks and citations
//
// ChunkArticle splits an article by headings, then paragraphs, sentences
// and words, into chunks of at most a token cap (counted with the
// tokens package, exactly as the model counts). Pack measures each record
// and chunk exactly as a meta prompt template prints {{.Records}} and
// {{.Articles}} (fenced and escaped by package policies) and packs them
// first-fit, records first, chunks in rank order, so that Packed.Tokens —
// the exact count — never exceeds the budget. Packed.Articles[i].Ref is
// "doc<i+1>" and Packed.Docs[i] maps it to the article id, number, title,
// URL, chunk id and content, which post-processing uses to check
// [docN] markers and to build Azure "On Your Data" style citations.
//
// # Files
//
// ParseArticleFile reads knowledge articles from Markdown with YAML front
// matter (knowledgearticle column names), HTML, or JSON (Dataverse rows or
// Web API responses); HTMLToText converts knowledgearticle.content.
package grounding
