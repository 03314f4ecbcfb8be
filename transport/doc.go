// Package transport uploads record batches to the collector over the sync protocol of
// docs/protocol.md and provides the retry schedule that the sync loop waits by.
//
// A Client sends one or more POST {server_url}/v1/records requests per Upload, over
// HTTP/1.1 with TLS 1.2 or later and the CA pinned from ca_file (system roots are never
// consulted, and nothing ever falls back to plain HTTP). It reports per record whether
// the server acknowledged it (accepted or duplicate), refused it for good (dead-letter,
// with the reason) or asked to keep it (retry), and classifies every other outcome with
// errors the loop branches on: *RetryAfterError and ErrTransient (keep everything, back
// off), ErrTLS (the server could not be authenticated; keep everything, back off, show
// it), ErrConfig (New only) and ErrInvalidRecord (a caller bug).
//
// HTTP/2 is never used. The HTTP/1.1 client is the package's own (http1.go), not
// net/http: amosd links no net/http, MIME, IDNA or gzip code (README.md's budget table binary budget).
//
// Backoff wraps github.com/cenkalti/backoff/v4 with the schedule of docs/protocol.md, a way to
// impose a server's Retry-After on the next wait, and an exportable state.
package transport
