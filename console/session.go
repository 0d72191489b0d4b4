package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Operators sign in with their client key once; the console then keeps a
// signed session cookie: name, expiry and an HMAC keyed by a secret
// derived from that key. Nothing is stored server-side, every instance
// with the same keys accepts it, and changing or removing the key ends
// its sessions. Forms carry a token derived from the session (CSRF); the
// cookie is SameSite=Strict and HttpOnly as well.

const (
	cookieName  = "gg_console"
	sessionLife = 12 * time.Hour
)

type session struct {
	name  string
	token string // the cookie value
	csrf  string
}

func sign(key []byte, msg string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func (c *Console) newSessionCookie(r *http.Request, name string, key []byte) *http.Cookie {
	exp := time.Now().Add(sessionLife).Unix()
	payload := base64.RawURLEncoding.EncodeToString([]byte(name)) + "." + strconv.FormatInt(exp, 10)
	return &http.Cookie{
		Name: cookieName, Value: payload + "." + sign(key, "session|"+payload),
		Path: Prefix, MaxAge: int(sessionLife / time.Second), HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	}
}

// sessionOf returns the request's valid session, or nil.
func (c *Console) sessionOf(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return nil
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 {
		return nil
	}
	nameB, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil
	}
	exp, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || time.Now().Unix() > exp {
		return nil
	}
	key, ok := c.gw.SessionKey(string(nameB))
	if !ok {
		return nil
	}
	payload := parts[0] + "." + parts[1]
	if !hmac.Equal([]byte(parts[2]), []byte(sign(key, "session|"+payload))) {
		return nil
	}
	return &session{name: string(nameB), token: ck.Value, csrf: sign(key, "csrf|"+ck.Value)[:32]}
}

// validCSRF checks a form's token against the session.
func (s *session) validCSRF(r *http.Request) bool {
	if s.csrf == "" { // signed in with a key header: no cookie to forge
		return true
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrf))
}
