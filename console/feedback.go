package console

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/groundgate/groundgate/analytics"
	"github.com/groundgate/groundgate/wire"
)

// FeedbackRequest is the body of POST /groundgate/feedback.
type FeedbackRequest struct {
	// ResponseID is the answer's id: the chat completion's "id", or the
	// X-Request-Id the gateway sent with it.
	ResponseID string
	// Rating is "up" or "down" ("" when only a score is given).
	Rating string
	// Score, 0 to 1, when given.
	Score *float64
	// Comment, optional, at most 2000 characters.
	Comment string
}

const maxComment = 2000

// parseFeedback reads and checks a JSON body.
func parseFeedback(body []byte) (FeedbackRequest, error) {
	var f FeedbackRequest
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return f, wire.BadRequest("", "invalid_json", "The body must be a JSON object: {\"response_id\": \"…\", \"rating\": \"up\"|\"down\", \"score\": 0-1, \"comment\": \"…\"}.")
	}
	var bad error
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "response_id":
			if v.Type != gjson.String {
				bad = wire.BadRequest("response_id", "invalid_type", "response_id must be a string.")
			}
			f.ResponseID = v.Str
		case "rating":
			if v.Type != gjson.String && v.Type != gjson.Null {
				bad = wire.BadRequest("rating", "invalid_type", `rating must be "up" or "down".`)
			}
			f.Rating = v.Str
		case "score":
			if v.Type == gjson.Null {
				break
			}
			if v.Type != gjson.Number {
				bad = wire.BadRequest("score", "invalid_type", "score must be a number from 0 to 1.")
			}
			s := v.Num
			f.Score = &s
		case "comment":
			if v.Type != gjson.String && v.Type != gjson.Null {
				bad = wire.BadRequest("comment", "invalid_type", "comment must be a string.")
			}
			f.Comment = v.Str
		default:
			bad = wire.BadRequest(k.Str, "unknown_parameter", "Unrecognized request argument supplied: "+k.Str+".")
		}
		return bad == nil
	})
	if bad != nil {
		return f, bad
	}
	return f, f.check()
}

func (f *FeedbackRequest) check() error {
	f.ResponseID = strings.TrimSpace(f.ResponseID)
	switch {
	case f.ResponseID == "":
		return wire.BadRequest("response_id", "missing_required_parameter", "response_id is required: the answer's id (the completion's \"id\" or its X-Request-Id).")
	case len(f.ResponseID) > 200:
		return wire.BadRequest("response_id", "invalid_value", "response_id is too long.")
	case f.Rating != "" && f.Rating != "up" && f.Rating != "down":
		return wire.BadRequest("rating", "invalid_value", `rating must be "up" or "down", not "`+wire.OneLine(f.Rating, 20)+`".`)
	case f.Score != nil && (math.IsNaN(*f.Score) || *f.Score < 0 || *f.Score > 1):
		return wire.BadRequest("score", "invalid_value", "score must be from 0 to 1.")
	case f.Rating == "" && f.Score == nil:
		return wire.BadRequest("rating", "missing_required_parameter", `Give a rating ("up" or "down"), a score (0 to 1), or both.`)
	case utf8.RuneCountInString(f.Comment) > maxComment:
		return wire.BadRequest("comment", "invalid_value", "comment is longer than 2000 characters.")
	case !utf8.ValidString(f.Comment):
		return wire.BadRequest("comment", "invalid_value", "comment is not valid UTF-8.")
	}
	return nil
}

// parseFeedbackForm reads the console's feedback form.
func parseFeedbackForm(r *http.Request) (FeedbackRequest, error) {
	f := FeedbackRequest{Rating: r.PostFormValue("rating"), Comment: strings.TrimSpace(r.PostFormValue("comment")), ResponseID: "-"}
	if v := strings.TrimSpace(r.PostFormValue("score")); v != "" {
		s, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return f, wire.BadRequest("score", "invalid_value", "score must be a number from 0 to 1.")
		}
		f.Score = &s
	}
	return f, f.check()
}

// FeedbackResponse is what POST /groundgate/feedback answers (201).
type FeedbackResponse struct {
	ID         int64    `json:"id"`
	Object     string   `json:"object"` // "feedback"
	ResponseID string   `json:"response_id"`
	RequestID  string   `json:"request_id"`
	Rating     string   `json:"rating,omitempty"`
	Score      *float64 `json:"score,omitempty"`
	Comment    string   `json:"comment,omitempty"`
	CreatedAt  int64    `json:"created_at"`
}

func (c *Console) serveFeedbackAPI(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		(&wire.Error{Status: http.StatusMethodNotAllowed, Type: wire.TypeInvalidRequest, Code: "method_not_allowed",
			Message: "Invalid method for URL (" + r.Method + " " + FeedbackPath + "): use POST.", Header: http.Header{"Allow": {"POST"}}}).Write(w)
		return
	}
	p, err := c.gw.Authenticate(r)
	if err != nil {
		writeErr(w, err)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<10+1))
	if err != nil {
		writeErr(w, wire.BadRequest("", "invalid_body", "The body could not be read."))
		return
	}
	if len(body) > 16<<10 {
		writeErr(w, &wire.Error{Status: http.StatusRequestEntityTooLarge, Type: wire.TypeInvalidRequest, Code: "request_too_large", Message: "The feedback body is larger than 16 KiB."})
		return
	}
	f, err := parseFeedback(body)
	if err != nil {
		writeErr(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	db, err := c.db()
	if err != nil {
		writeErr(w, &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "feedback_unavailable", Message: "Feedback cannot be stored now: " + err.Error()})
		return
	}
	out, err := c.addFeedback(ctx, db, p.Name, f)
	if err != nil {
		writeErr(w, err)
		return
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

// addFeedback joins the rating to the answer's interaction, if principal
// is the one who got the answer.
func (c *Console) addFeedback(ctx context.Context, db analytics.Backend, principal string, f FeedbackRequest) (*FeedbackResponse, error) {
	if db == nil {
		return nil, &wire.Error{Status: http.StatusServiceUnavailable, Type: wire.TypeServer, Code: "feedback_unavailable",
			Message: "Feedback is stored with the audit records and needs the SQLite audit sink, or the Dataverse sink with analytics on; this gateway has neither."}
	}
	fb := analytics.Feedback{Time: c.now(), Principal: principal, Comment: f.Comment, Score: f.Score}
	switch f.Rating {
	case "up":
		fb.Rating = 1
	case "down":
		fb.Rating = -1
	}
	var owner string
	in, err := db.Find(ctx, f.ResponseID)
	switch {
	case err == nil:
		owner = in.Principal
		fb.AuditID, fb.RequestID, fb.Team, fb.Feature, fb.Model = in.ID, in.RequestID, in.Team, in.Feature, in.Model
		if a := recent.get(f.ResponseID); a != nil {
			fb.ResponseID = a.ResponseID
		}
	case errors.Is(err, analytics.ErrNotFound):
		// Not written yet (the audit sink writes off the hot path)?
		a := recent.get(f.ResponseID)
		if a == nil {
			return nil, &wire.Error{Status: http.StatusNotFound, Type: wire.TypeInvalidRequest, Code: "response_not_found", Param: "response_id",
				Message: "No answer has the id " + wire.OneLine(f.ResponseID, 80) + "."}
		}
		owner = a.Principal
		fb.RequestID, fb.ResponseID, fb.Team, fb.Feature, fb.Model = a.RequestID, a.ResponseID, a.Team, a.Feature, a.Model
	default:
		return nil, err
	}
	if owner != principal {
		return nil, &wire.Error{Status: http.StatusForbidden, Type: wire.TypePermission, Code: "not_your_answer", Param: "response_id",
			Message: "Only the principal who received this answer may rate it."}
	}
	if fb.ResponseID == "" && f.ResponseID != fb.RequestID {
		fb.ResponseID = f.ResponseID
	}
	id, err := db.AddFeedback(ctx, fb)
	if err != nil {
		return nil, err
	}
	return &FeedbackResponse{ID: id, Object: "feedback", ResponseID: f.ResponseID, RequestID: fb.RequestID, Rating: f.Rating,
		Score: f.Score, Comment: f.Comment, CreatedAt: fb.Time.Unix()}, nil
}

func statusOf(err error) int {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Status
	}
	return http.StatusInternalServerError
}

func writeErr(w http.ResponseWriter, err error) {
	var we *wire.Error
	if !errors.As(err, &we) {
		we = &wire.Error{Status: http.StatusInternalServerError, Type: wire.TypeServer, Message: "The feedback could not be stored."}
	}
	we.Write(w)
}
