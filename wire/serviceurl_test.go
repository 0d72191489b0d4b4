package wire

import (
	"strings"
	"testing"
)

func TestServiceURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://org.crm.dynamics.com":       "",
		"http://127.0.0.1:8081":              "",
		"http://localhost/x":                 "",
		"http://[::1]:9/":                    "",
		"http://org.crm.dynamics.com":        "must use https",
		"ftp://host":                         "must be an https URL",
		"org.crm.dynamics.com":               "is not a URL like https://host",
		"https://user:pw@host/p?code=secret": "is not a URL like https://host",
	} {
		_, err := ServiceURL(raw)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", raw, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", raw, err, want)
		case err != nil && (strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "secret")):
			t.Errorf("%s: the error shows credentials: %v", raw, err)
		}
	}
}
