module amos.example/amosd

go 1.26

require (
	github.com/cenkalti/backoff/v4 v4.3.0
	github.com/godbus/dbus/v5 v5.2.4
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.45.0
)
