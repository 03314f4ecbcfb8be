// Package keystoretest serves the development keystore (amos-keystored's
// internal/devkeystore) on a test bus from the test's own process, and waits for a
// name's owner. (Not in testenv: it imports sources, whose tests import testenv.)
package keystoretest
