package pgtest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestStart: the server answers on its port, a new database is empty and writable, and
// the server is gone once the test ends.
func TestStart(t *testing.T) {
	var port int
	t.Run("server", func(t *testing.T) {
		s := Start(t, Options{})
		port = s.Port()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if _, err := conn.Exec(ctx, "CREATE TABLE y (a INT)"); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM y").Scan(&n); err != nil || n != 0 {
			t.Fatalf("count %d, %v", n, err)
		}
		var durable string
		if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&durable); err != nil || durable != "off" {
			t.Errorf("fsync %q, %v: want off for a test server", durable, err)
		}
	})
	if port == 0 {
		t.Skip("no server was started")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, "postgres://amos@127.0.0.1:"+itoa(port)+"/postgres?sslmode=disable&connect_timeout=2"); err == nil {
		conn.Close(ctx)
		t.Errorf("the server still answers on port %d after its test ended", port)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
