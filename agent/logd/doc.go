// Package logd writes amosd's log lines to Android's log daemon over its datagram
// socket, or to stderr (docs/config.md, the key log).
package logd
