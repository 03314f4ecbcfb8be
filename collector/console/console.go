// Package console serves the collector's web console at /console/: server-rendered
// pages of the month's claims for a maker or the payer, behind a session that a
// maker's or the payer's token opens (docs/console.md).
package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"amos.example/amosd/collector"
)

// Prefix is the path the console is served under.
const Prefix = "/console/"

// SessionLifetime is how long a session lasts after sign-in; it is not extended.
const SessionLifetime = 12 * time.Hour

// MaxSessions bounds the sessions kept at once; a sign-in beyond it is refused (503)
// until some expire or sign out.
const MaxSessions = 10000

// Cookie names.
const (
	sessionCookie = "amos_console"
	preCookie     = "amos_console_pre" // the sign-in form's CSRF nonce
	langCookie    = "amos_lang"
)

// Options configure a Handler.
type Options struct {
	Collector *collector.Collector
	// MakerTokens maps maker_id to the SHA-256 of its bearer token.
	MakerTokens map[string][32]byte
	// PayerToken is the SHA-256 of the payer's token; nil for none.
	PayerToken *[32]byte
	// Now is the clock of sessions and of the default month; time.Now if nil.
	Now func() time.Time
	// Logf receives one line per server-side failure (never a token); nil for none.
	Logf func(format string, args ...any)
}

// Handler serves the console. Its sessions live in its memory only: a restart signs
// everybody out.
type Handler struct {
	c      *collector.Collector
	makers []makerToken
	payer  *[32]byte
	now    func() time.Time
	logf   func(string, ...any)
	mux    *http.ServeMux
	pages  *pages
	preKey [32]byte // signs the sign-in form's CSRF token

	mu       sync.Mutex
	sessions map[string]*session
}

type makerToken struct {
	id   string
	hash [32]byte
}

// principal is who a session belongs to: a maker, or the payer.
type principal struct {
	maker string
	payer bool
}

type session struct {
	who     principal
	csrf    string
	expires time.Time
}

// New returns the Handler.
func New(o Options) (*Handler, error) {
	if o.Collector == nil {
		return nil, errors.New("console: no collector")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	p, err := parsePages()
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	h := &Handler{c: o.Collector, payer: o.PayerToken, now: o.Now, logf: o.Logf, mux: http.NewServeMux(),
		pages: p, sessions: map[string]*session{}}
	if _, err := rand.Read(h.preKey[:]); err != nil {
		return nil, fmt.Errorf("console: random key: %w", err)
	}
	for id, hash := range o.MakerTokens {
		h.makers = append(h.makers, makerToken{id, hash})
	}
	slices.SortFunc(h.makers, func(a, b makerToken) int { return strings.Compare(a.id, b.id) })
	h.mux.HandleFunc("GET /console/{$}", h.home)
	h.mux.HandleFunc("GET /console/static/", h.static)
	h.mux.HandleFunc("GET /console/signin", h.signinForm)
	h.mux.HandleFunc("POST /console/signin", h.signin)
	h.mux.HandleFunc("POST /console/signout", h.withSession(h.signout))
	h.mux.HandleFunc("GET /console/claims", h.withSession(h.claims))
	h.mux.HandleFunc("GET /console/devices/{id}", h.withSession(h.device))
	h.mux.HandleFunc("GET /console/payer", h.withSession(h.payerView))
	h.mux.HandleFunc("POST /console/held/{id}", h.withSession(h.decide))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.mux.ServeHTTP(w, r)
}

// randomID returns 32 random bytes, base64url.
func randomID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("console: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// lookUp checks a token against every maker's and the payer's hash, in constant
// time, always all of them.
func (h *Handler) lookUp(token string) (principal, bool) {
	sum := sha256.Sum256([]byte(token))
	var p principal
	found := 0
	for _, m := range h.makers {
		if subtle.ConstantTimeCompare(sum[:], m.hash[:]) == 1 {
			p, found = principal{maker: m.id}, 1
		}
	}
	if h.payer != nil && subtle.ConstantTimeCompare(sum[:], h.payer[:]) == 1 {
		p, found = principal{payer: true}, 1
	}
	return p, found == 1 && token != ""
}

// newSession stores a session for p and returns its id.
func (h *Handler) newSession(p principal) (string, *session, error) {
	id, err := randomID()
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomID()
	if err != nil {
		return "", nil, err
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.sessions) >= MaxSessions {
		for k, s := range h.sessions {
			if !now.Before(s.expires) {
				delete(h.sessions, k)
			}
		}
		if len(h.sessions) >= MaxSessions {
			return "", nil, errTooManySessions
		}
	}
	s := &session{who: p, csrf: csrf, expires: now.Add(SessionLifetime)}
	h.sessions[id] = s
	return id, s, nil
}

var errTooManySessions = errors.New("console: too many sessions")

// current returns the request's session, nil if none or expired.
func (h *Handler) current(r *http.Request) (string, *session) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return "", nil
	}
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sessions[c.Value]
	if s == nil {
		return "", nil
	}
	if !now.Before(s.expires) {
		delete(h.sessions, c.Value)
		return "", nil
	}
	return c.Value, s
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, age time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: Prefix, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
	if age > 0 {
		c.MaxAge, c.Expires = int(age.Seconds()), h.now().Add(age)
	} else {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// withSession answers 303 to the sign-in page without a session, 403 to a POST
// whose csrf field is not the session's.
func (h *Handler) withSession(next func(http.ResponseWriter, *http.Request, *request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, s := h.current(r)
		if s == nil {
			if r.Method != http.MethodGet {
				http.Error(w, "not signed in", http.StatusForbidden)
				return
			}
			http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
			if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
				return
			}
		}
		next(w, r, &request{id: id, s: s, L: h.locale(w, r)})
	}
}

// request is what a page handler knows of the request besides it.
type request struct {
	id string
	s  *session
	L  *locale
}

// preToken is the sign-in form's CSRF token for the nonce of its cookie.
func (h *Handler) preToken(nonce string) string {
	m := hmac.New(sha256.New, h.preKey[:])
	m.Write([]byte(nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) home(w http.ResponseWriter, r *http.Request) {
	_, s := h.current(r)
	switch {
	case s == nil:
		http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
	case s.who.payer:
		http.Redirect(w, r, Prefix+"payer", http.StatusSeeOther)
	default:
		http.Redirect(w, r, Prefix+"claims", http.StatusSeeOther)
	}
}

func (h *Handler) signinForm(w http.ResponseWriter, r *http.Request) {
	h.renderSignin(w, r, h.locale(w, r), http.StatusOK, "")
}

// renderSignin shows the sign-in form, for the nonce of the browser's cookie when it has
// one (so that forms open in several tabs all work), else a fresh one; the token is
// never put back.
func (h *Handler) renderSignin(w http.ResponseWriter, r *http.Request, l *locale, status int, problem string) {
	var nonce string
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) == 43 {
		nonce = c.Value
	} else if nonce, err = randomID(); err != nil {
		h.fail(w, l, err)
		return
	}
	h.setCookie(w, r, preCookie, nonce, 10*time.Minute)
	h.render(w, status, "signin", &page{L: l, Title: l.T("signin"), CSRF: h.preToken(nonce), Problem: problem, Path: r.URL.Path})
}

func (h *Handler) signin(w http.ResponseWriter, r *http.Request) {
	l := h.locale(w, r)
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(preCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(h.preToken(c.Value))) != 1 {
		http.Error(w, "missing or wrong CSRF token", http.StatusForbidden)
		return
	}
	p, ok := h.lookUp(strings.TrimSpace(r.PostFormValue("token")))
	if !ok {
		h.renderSignin(w, r, l, http.StatusUnauthorized, l.T("bad_token"))
		return
	}
	// A sign-in always makes a new session: none chosen before it is ever trusted.
	if old, s := h.current(r); s != nil {
		h.drop(old)
	}
	id, _, err := h.newSession(p)
	if errors.Is(err, errTooManySessions) {
		http.Error(w, "too many sessions; try again later", http.StatusServiceUnavailable)
		return
	} else if err != nil {
		h.fail(w, l, err)
		return
	}
	h.setCookie(w, r, preCookie, "", 0)
	h.setCookie(w, r, sessionCookie, id, SessionLifetime)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

func (h *Handler) drop(id string) {
	h.mu.Lock()
	delete(h.sessions, id)
	h.mu.Unlock()
}

func (h *Handler) signout(w http.ResponseWriter, r *http.Request, q *request) {
	h.drop(q.id)
	h.setCookie(w, r, sessionCookie, "", 0)
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// fail answers 500 and logs err, which never holds a token.
func (h *Handler) fail(w http.ResponseWriter, l *locale, err error) {
	h.logf("amos-collector: console: %v", err)
	http.Error(w, l.T("server_error"), http.StatusInternalServerError)
}

// denied answers 403.
func denied(w http.ResponseWriter, l *locale) {
	http.Error(w, l.T("forbidden"), http.StatusForbidden)
}
