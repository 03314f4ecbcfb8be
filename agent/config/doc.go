// Package config is amosd's configuration: the JSON file's keys, their defaults and
// the checks that name the key and the problem (docs/config.md).
package config
