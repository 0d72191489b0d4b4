package wire

import (
	"errors"
	"fmt"
	"net"
	"net/url"
)

// ServiceURL checks the URL of a service the gateway sends keys or tokens
// to: absolute, without user info, https, or plain http to a loopback
// host only (a local test server), so credentials never cross a network
// in clear text. Errors quote the URL redacted (RedactURL) and read after
// the name of the setting, e.g. "url must use https (...)".
func ServiceURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%q is not a URL like https://host", RedactURL(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return nil, errors.New("must use https (plain http is allowed to loopback test servers only)")
		}
	default:
		return nil, errors.New("must be an https URL")
	}
	return u, nil
}

// IsLoopback reports whether host is localhost or a loopback address.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
