//go:build race

package runtime

// raceDetector: the tests run under the race detector, which makes miniredis and the runtime
// several times slower; the largest tests scale down (see bulkJobs).
const raceDetector = true
