package console

import (
	"sync"

	"github.com/groundgate/groundgate/post"
)

// recentAnswers remembers who got the latest answers, by request id and
// response id, so feedback sent right after an answer finds it before
// the audit sink has written the record (it writes off the hot path).
// Ids are unique, so one process-wide set serves every config.
type recentAnswers struct {
	mu   sync.Mutex
	byID map[string]*Answer
	ring []string // insertion order, for eviction
	next int
}

// Answer is who got an answer, as feedback needs it.
type Answer struct {
	RequestID  string
	ResponseID string
	Principal  string
	Team       string
	Feature    string
	Model      string
	Status     int
}

const recentSize = 1 << 14

var recent = &recentAnswers{byID: make(map[string]*Answer, recentSize), ring: make([]string, recentSize)}

// Remember notes an interaction's answer for feedback. The gateway calls
// it as it hands the record to the audit sink.
func Remember(in *post.Interaction) {
	a := &Answer{RequestID: in.RequestID, ResponseID: in.ResponseID, Principal: in.Principal, Team: in.Team,
		Feature: in.Feature, Model: in.Model, Status: in.Status}
	recent.add(in.RequestID, a)
	if in.ResponseID != "" {
		recent.add(in.ResponseID, a)
	}
}

func (r *recentAnswers) add(id string, a *Answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.ring[r.next]; old != "" {
		delete(r.byID, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % len(r.ring)
	r.byID[id] = a
}

func (r *recentAnswers) get(id string) *Answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}
