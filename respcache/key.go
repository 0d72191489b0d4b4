package respcache

import (
	"bytes"
	"crypto/sha256"
	"hash"
	"slices"
)

// Digest writes to h a canonical digest of a JSON value: the same for
// any member order and whitespace, different for different values. It
// reads body once, in time and memory linear in its size: each object's
// members are digested one by one and written sorted by key, so no
// sorted copy of the body is ever built. The body must be valid JSON
// (wire.Check) with unique members; depth is bounded by that check, and
// by maxDepth here for any other caller.
func Digest(h hash.Hash, body []byte) bool {
	d := digester{data: body}
	i, ok := d.value(h, skipWS(body, 0), 0)
	return ok && skipWS(body, i) == len(body)
}

const maxDepth = 512

type digester struct {
	data    []byte
	hashers []hash.Hash // one per object depth, reused member by member
	members []member    // the members of the open objects, innermost last
	sum     []byte
}

// The structure written between values (package-level: a hash.Hash
// argument escapes, a literal would allocate per call).
var (
	tokOpenArray   = []byte{'['}
	tokCloseArray  = []byte{']'}
	tokComma       = []byte{','}
	tokOpenObject  = []byte{'{'}
	tokCloseObject = []byte{'}'}
)

type member struct {
	key []byte // raw, quotes and escapes included
	sum [sha256.Size]byte
}

// value digests the value at i into h and returns the index past it.
func (d *digester) value(h hash.Hash, i, depth int) (int, bool) {
	data := d.data
	if i >= len(data) || depth > maxDepth {
		return 0, false
	}
	switch data[i] {
	case '{':
		return d.object(h, i, depth)
	case '[':
		h.Write(tokOpenArray)
		i = skipWS(data, i+1)
		for n := 0; i < len(data) && data[i] != ']'; n++ {
			if n > 0 {
				if data[i] != ',' {
					return 0, false
				}
				h.Write(tokComma)
				i = skipWS(data, i+1)
			}
			var ok bool
			if i, ok = d.value(h, i, depth+1); !ok {
				return 0, false
			}
			i = skipWS(data, i)
		}
		if i >= len(data) {
			return 0, false
		}
		h.Write(tokCloseArray)
		return i + 1, true
	case '"':
		end := stringEnd(data, i)
		if end < 0 {
			return 0, false
		}
		h.Write(data[i:end])
		return end, true
	default: // numbers, true, false, null: their bytes as sent
		j := i
		for j < len(data) && !delim[data[j]] {
			j++
		}
		if j == i {
			return 0, false
		}
		h.Write(data[i:j])
		return j, true
	}
}

// object digests each member's value on its own, then writes the
// members sorted by key: `{` key sum key sum … `}`.
func (d *digester) object(h hash.Hash, i, depth int) (int, bool) {
	data := d.data
	for len(d.hashers) <= depth {
		d.hashers = append(d.hashers, sha256.New())
	}
	mh := d.hashers[depth]
	first := len(d.members)
	i = skipWS(data, i+1)
	for n := 0; i < len(data) && data[i] != '}'; n++ {
		if n > 0 {
			if data[i] != ',' {
				return 0, false
			}
			i = skipWS(data, i+1)
		}
		if i >= len(data) || data[i] != '"' {
			return 0, false
		}
		end := stringEnd(data, i)
		if end < 0 {
			return 0, false
		}
		key := data[i:end]
		i = skipWS(data, end)
		if i >= len(data) || data[i] != ':' {
			return 0, false
		}
		mh.Reset()
		var ok bool
		if i, ok = d.value(mh, skipWS(data, i+1), depth+1); !ok {
			return 0, false
		}
		d.sum = mh.Sum(d.sum[:0])
		d.members = append(d.members, member{key: key, sum: [sha256.Size]byte(d.sum)})
		i = skipWS(data, i)
	}
	if i >= len(data) {
		return 0, false
	}
	ms := d.members[first:]
	slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	h.Write(tokOpenObject)
	for k := range ms {
		h.Write(ms[k].key)
		h.Write(ms[k].sum[:])
	}
	h.Write(tokCloseObject)
	d.members = d.members[:first]
	return i + 1, true
}

// delim marks the bytes that end a number or literal.
var delim = [256]bool{',': true, ']': true, '}': true, ' ': true, '\t': true, '\r': true, '\n': true}

func skipWS(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index past the string starting at i, or -1.
func stringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return -1
}
