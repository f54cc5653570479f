// Package tests holds zasync's end-to-end tests: the seed documents and the zc.async
// scenarios, driven through the public runtime API, on miniredis and, when
// ZASYNC_TEST_REDIS is set, on that real Redis as well.
package tests
