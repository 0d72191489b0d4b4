package simulator

import (
	"strconv"

	"github.com/groundgate/groundgate/wire"
)

// The simulator writes every response body with append-style helpers into
// a byte slice: no maps, no reflection, no encoding/json on the hot path.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal (with quotes).
func appendJSONString(dst []byte, s string) []byte { return wire.AppendString(dst, s) }

// appendInt appends the decimal form of n.
func appendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// appendNullableString appends s as a JSON string, or null when s is "".
func appendNullableString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s)
}
