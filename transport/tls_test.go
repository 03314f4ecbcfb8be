package transport

import (
	"amos.example/amosd/rigs/testenv"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// httptestServer starts a collector over plain http.
func httptestServer(t *testing.T, col *collector) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(col)
	srv.Config.ErrorLog = discardLog()
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// TestWrongCA pins another CA than the server's: the upload must fail with ErrTLS and
// reach no handler, even when the system roots (SSL_CERT_FILE) would trust the server.
func TestWrongCA(t *testing.T) {
	s := startTLS(t, true)
	other := newPKI(t)
	t.Setenv("SSL_CERT_FILE", s.pki.CAFile) // the system roots trust the server
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	c, err := New(Config{ServerURL: s.URL, CAFile: other.CAFile, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := makeRecords(t, 2)
	res, err := upload(t, c, recs)
	testenv.WantErr(t, err, ErrTLS)
	if strings.Contains(err.Error(), "transient") || res.Requests != 1 || res.Settled() != 0 {
		t.Errorf("error %q, result %+v", err, res)
	}
	if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("error %q does not name the cause", err)
	}
	if n, _ := s.col.counts(); n != 0 {
		t.Fatalf("the server handled %d requests", n)
	}
}

// TestWrongName: a certificate of the pinned CA for another name is refused too.
func TestWrongName(t *testing.T) {
	s := startTLS(t, true)
	url := strings.Replace(s.URL, "127.0.0.1", "localhost", 1) // the certificate has no "localhost"
	recs, _ := makeRecords(t, 1)
	_, err := upload(t, s.client(t, url), recs)
	testenv.WantErr(t, err, ErrTLS)
}

// TestHTTPSToPlainServer: an https URL answered in plain HTTP fails with ErrTLS and is
// not retried in plain HTTP.
func TestHTTPSToPlainServer(t *testing.T) {
	col := newCollector()
	srv := httptestServer(t, col)
	ca := newPKI(t)
	c, err := New(Config{ServerURL: strings.Replace(srv.URL, "http:", "https:", 1), CAFile: ca.CAFile, Timeout: testTimeout})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := makeRecords(t, 1)
	_, err = upload(t, c, recs)
	testenv.WantErr(t, err, ErrTLS)
	if n, _ := col.counts(); n != 0 {
		t.Fatalf("the plain server handled %d requests", n)
	}
}

// TestSessionResumption: the second Upload opens a new connection (Upload closes its
// idle ones, and this server closes after each answer anyway) and resumes the session.
func TestSessionResumption(t *testing.T) {
	for _, keepAlive := range []bool{true, false} {
		s := startTLS(t, keepAlive)
		c := s.client(t, "")
		recs, _ := makeRecords(t, 3)
		for i := range recs {
			mustUpload(t, c, recs[i:i+1])
		}
		s.col.mu.Lock()
		resumed := slices.Clone(s.col.resumed)
		s.col.mu.Unlock()
		if want := []bool{false, true, true}; !slices.Equal(resumed, want) {
			t.Errorf("keep-alive %v: DidResume %v, want %v", keepAlive, resumed, want)
		}
	}
}

// TestKeepAlive: the requests of one Upload share one connection.
func TestKeepAlive(t *testing.T) {
	s := startTLS(t, true)
	recs, _ := makeRecords(t, 600)
	res := mustUpload(t, s.client(t, ""), recs)
	if res.Requests != 3 {
		t.Fatalf("%d requests, want 3", res.Requests)
	}
	if n := s.count.accepted.Load(); n != 1 {
		t.Errorf("%d connections for one Upload, want 1", n)
	}
}
