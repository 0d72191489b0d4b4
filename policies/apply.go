package policies

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/groundgate/groundgate/wire"
	"github.com/tidwall/gjson"
)

// ApplySystemPrompt returns body (an OpenAI chat request JSON) with prompt
// placed per mode:
//
//   - prepend: a new system message before the first message;
//   - append: a system message right after the client's last leading
//     system or developer message (first when there is none);
//   - replace: every client system and developer message removed and the
//     prompt as the first message.
//
// It reads body with gjson (no unmarshal) and splices the messages array:
// bytes outside it are copied unchanged, and so is every message kept. In
// replace mode the kept messages are re-joined with "," (whitespace
// between them is not kept). body must be a valid JSON object whose
// "messages" is an array given once; otherwise it returns an error and
// nil. An empty prompt returns body unchanged (in replace mode, with the
// client's system messages still removed).
func ApplySystemPrompt(body []byte, prompt string, mode Mode) ([]byte, error) {
	switch mode {
	case ModePrepend, ModeAppend, ModeReplace:
	case "":
		mode = ModePrepend
	default:
		return nil, fmt.Errorf("unknown meta prompt mode %q", mode)
	}
	if len(body) == 0 {
		return nil, errors.New("request body is empty")
	}
	// gjson works on strings; view body as one without copying. body is
	// only read here and nothing retains the view past the call.
	js := unsafe.String(unsafe.SliceData(body), len(body))
	if !gjson.Valid(js) {
		return nil, errors.New("request body is not valid JSON")
	}
	start := 0
	for start < len(js) && js[start] <= ' ' {
		start++
	}
	if js[start] != '{' {
		return nil, errors.New("request body is not a JSON object")
	}
	root := gjson.Parse(js)
	root.Index = start // gjson.Parse leaves it 0; children offsets build on it
	var msgs gjson.Result
	n := 0
	root.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "messages" {
			msgs = v
			n++
		}
		return true
	})
	switch {
	case n == 0:
		return nil, errors.New(`request body has no "messages"`)
	case n > 1:
		// Readers disagree on which duplicate wins; refuse rather than
		// inject into a copy the upstream may ignore.
		return nil, errors.New(`request body gives "messages" more than once`)
	case !msgs.IsArray():
		return nil, errors.New(`"messages" is not an array`)
	}
	if prompt == "" && mode != ModeReplace {
		return body, nil
	}
	if msgs.Index <= 0 || msgs.Index+len(msgs.Raw) > len(js) || js[msgs.Index:msgs.Index+len(msgs.Raw)] != msgs.Raw {
		return nil, errors.New("cannot locate \"messages\" in the request body") // not reached for valid JSON
	}

	arrStart, arrEnd := msgs.Index, msgs.Index+len(msgs.Raw) // '[' and one past ']'

	type elem struct {
		start, end int
		system     bool
	}
	var stack [32]elem
	elems := stack[:0]
	msgs.ForEach(func(_, v gjson.Result) bool {
		elems = append(elems, elem{start: v.Index, end: v.Index + len(v.Raw), system: isSystemMessage(v)})
		return true
	})

	// One allocation: the body plus the message, escaped in place. The
	// estimate covers a few escapes; append grows it if the prompt needs
	// more.
	out := make([]byte, 0, len(body)+len(prompt)+len(prompt)/16+64)
	switch mode {
	case ModePrepend, ModeAppend:
		at := arrStart + 1 // just inside '['
		before, after := "", ""
		if len(elems) > 0 {
			at, after = elems[0].start, "," // before the first message
		}
		if mode == ModeAppend {
			last := -1
			for i, e := range elems {
				if !e.system {
					break
				}
				last = i
			}
			if last >= 0 {
				at, before, after = elems[last].end, ",", ""
			}
		}
		out = append(out, body[:at]...)
		out = append(out, before...)
		out = appendSystemMessage(out, prompt)
		out = append(out, after...)
		return append(out, body[at:]...), nil
	default: // replace
		out = append(out, body[:arrStart]...)
		out = append(out, '[')
		first := true
		if prompt != "" {
			out = appendSystemMessage(out, prompt)
			first = false
		}
		for _, e := range elems {
			if e.system {
				continue
			}
			if !first {
				out = append(out, ',')
			}
			first = false
			out = append(out, body[e.start:e.end]...)
		}
		out = append(out, ']')
		return append(out, body[arrEnd:]...), nil
	}
}

// isSystemMessage reports whether a message has role system or developer.
// A message that gives "role" twice counts as a system message if either
// says so: readers disagree on which duplicate wins.
func isSystemMessage(m gjson.Result) bool {
	if !m.IsObject() {
		return false
	}
	sys := false
	m.ForEach(func(k, v gjson.Result) bool {
		if k.Str == "role" && v.Type == gjson.String && (v.Str == "system" || v.Str == "developer") {
			sys = true
			return false
		}
		return true
	})
	return sys
}

func appendSystemMessage(dst []byte, prompt string) []byte {
	dst = append(dst, `{"role":"system","content":`...)
	dst = wire.AppendString(dst, prompt)
	return append(dst, '}')
}
