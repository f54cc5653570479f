//go:build !race

package runtime

// raceDetector: see race_test.go.
const raceDetector = false
