// Package wire parses and writes the OpenAI and Azure OpenAI wire formats
// the gateway speaks: it reads a request once with gjson (never a full
// unmarshal), reports malformed input with its position, and writes
// errors in OpenAI's shape.
package wire
