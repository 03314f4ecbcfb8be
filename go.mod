module amos.example/amosd

go 1.26

require go.etcd.io/bbolt v1.5.0

require (
	github.com/cenkalti/backoff/v4 v4.3.0 // indirect
	github.com/godbus/dbus/v5 v5.2.4 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
